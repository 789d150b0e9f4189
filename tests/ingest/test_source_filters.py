"""Per-source language hint and keep/block patterns, end to end on real Redis, both databases and a real feed
server: `watchfloor source add|edit --lang --keep --block`, what reaches wf:posts, what `source list` and
GET /api/sources say, pushed posts, OPML round trip, and an existing database upgraded to 0007p."""

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from shared.db import make_engine, migrate, session_scope
from shared.models import FilteredPost, Post, Source
from tests.ingest.conftest import feed_bytes, posts_on_stream
from tests.servers import FeedServer


@pytest.fixture
async def http(service: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(service.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        yield client


async def _sources(http: httpx.AsyncClient) -> dict[str, dict]:
    response = await http.get("/api/sources")
    assert response.status_code == 200
    return {s["id"]: s for s in response.json()}


async def test_keep_and_block_patterns_decide_what_is_published_once_and_the_hint_fills_missing_languages(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
    wf, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
) -> None:
    """Five items: two about football (one in capitals), a security story that says sécurité in its title
    and one that says it only in its text, an Arabic item declaring `ar` and an English one declaring `en`."""
    url = feed_server.route("/feed.json", feed_bytes("sahel_mixed_5.feed.json"), content_type="application/feed+json")
    await wf("source", "add", url, "--name", "no-sport", "--as-is", "--block", "football", "--lang", "fr")
    copy = feed_server.route("/copy.json", feed_bytes("sahel_mixed_5.feed.json"), content_type="application/feed+json")
    await wf("source", "add", copy, "--name", "security-desk", "--as-is",
             "--keep", "securite|هجوم", "--lang", "ha")

    with caplog.at_level(logging.INFO, logger="services.ingest"):
        reports = {r.source_id: r for r in await service.drain()}
    assert {k: (r.new, r.kept_out, r.error) for k, r in reports.items()} == {
        "no-sport": (3, 2, None), "security-desk": (3, 2, None)}
    on_stream = await posts_on_stream(redis_url)
    published = sorted((m["source_id"], m["guid"], m["lang"]) for m in on_stream)
    assert published == [
        ("no-sport", "sahel-mixed-2", "fr"),        # no declared language: the source's hint
        ("no-sport", "sahel-mixed-4", "ar"),        # declared: kept
        ("no-sport", "sahel-mixed-5", "en"),
        ("security-desk", "sahel-mixed-2", "ha"),   # the hint, not CLD3's "fr": the operator's word wins
        ("security-desk", "sahel-mixed-3", "ha"),   # "sécurité" in its text only
        ("security-desk", "sahel-mixed-4", "ar"),   # هُجُومٌ with harakat matches هجوم
    ]
    assert "kept out source=no-sport posts=2 by block pattern 'football'" in caplog.text
    assert "kept out source=security-desk posts=2 matching no keep pattern" in caplog.text

    health = await _sources(http)
    assert {k: (health[k]["posts_seen"], health[k]["posts_filtered"], health[k]["last_filtered"])
            for k in ("no-sport", "security-desk")} == {
        "no-sport": (3, 2, "kept out 2 posts by block pattern 'football'"),
        "security-desk": (3, 2, "kept out 2 posts matching no keep pattern")}
    assert (health["no-sport"]["lang"], health["no-sport"]["keep"], health["no-sport"]["block"]) == (
        "fr", [], ["football"])
    assert health["security-desk"]["keep"] == ["securite|هجوم"]
    listed = (await wf("source", "list")).output
    assert "lang fr  block 'football'" in listed
    assert "kept out 2 posts in all; last: kept out 2 posts by block pattern 'football'" in listed
    async with sessions() as s:
        kept_out = sorted((r.source_id, r.dedup_key, r.reason) for r in (await s.execute(sa.select(FilteredPost)))
                          .scalars())
    assert kept_out == [
        ("no-sport", "sahel-mixed-1", "by block pattern 'football'"),
        ("no-sport", "sahel-mixed-3", "by block pattern 'football'"),
        ("security-desk", "sahel-mixed-1", "matching no keep pattern"),
        ("security-desk", "sahel-mixed-5", "matching no keep pattern")]

    # A second poll (the feed sends no validators: read in full) publishes nothing and counts nothing again.
    again = [await service.poll_once(sid) for sid in ("no-sport", "security-desk")]
    assert [(r.new, r.kept_out, r.not_modified) for r in again] == [(0, 0, False), (0, 0, False)]
    # Patterns cleared: posts kept out before stay out (seen once), only new posts are decided anew.
    await wf("source", "edit", "no-sport", "--no-block", "--no-lang")
    assert [(r.new, r.kept_out) for r in [await service.poll_once("no-sport")]] == [(0, 0)]
    assert len(await posts_on_stream(redis_url)) == 6
    health = await _sources(http)
    assert (health["no-sport"]["posts_filtered"], health["no-sport"]["block"], health["no-sport"]["lang"]) == (
        2, [], None)
    async with sessions() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Post))).scalar_one() == 6


async def test_a_push_source_takes_the_hint_and_patterns_an_admin_sets(
    service: IngestService, wf, http: httpx.AsyncClient, redis_url: str
) -> None:
    first = {"source": "sahel-bridge", "title": "Attaque à Diffa", "text": "Des hommes armés ont attaqué un poste."}
    assert (await http.post("/ingest", json=first)).json()["duplicate"] is False
    await wf("source", "edit", "sahel-bridge", "--lang", "ha", "--block", "foot(ball)?")
    hausa = {"source": "sahel-bridge", "title": "Harin Diffa", "text": "Wasu 'yan bindiga sun kai hari a Diffa."}
    declared = {**hausa, "title": "Diffa attack", "text": "Gunmen attacked a post in Diffa.", "lang": "en"}
    sport = {"source": "sahel-bridge", "title": "FOOT : Mena 2-1", "text": "Le Mena bat le Nigeria."}
    assert (await http.post("/ingest", json=hausa)).status_code == 202
    assert (await http.post("/ingest", json=declared)).status_code == 202
    kept = await http.post("/ingest", json=sport)
    assert kept.status_code == 202
    assert kept.json() | {"post_id": ""} == {"post_id": "", "duplicate": False,
                                             "kept_out": "by block pattern 'foot(ball)?'"}
    repeat = await http.post("/ingest", json=sport)
    assert repeat.json()["duplicate"] is True and "kept_out" not in repeat.json()

    on_stream = await posts_on_stream(redis_url)
    assert [(m["title"], m["lang"]) for m in on_stream[1:]] == [("Harin Diffa", "ha"), ("Diffa attack", "en")]
    assert len(on_stream) == 3
    bridge = (await _sources(http))["sahel-bridge"]
    assert (bridge["posts_seen"], bridge["posts_filtered"], bridge["last_filtered"]) == (
        3, 1, "kept out 1 post by block pattern 'foot(ball)?'")

    # Patterns gone, the post they kept out is still seen: a duplicate, not published (nor a new one with it).
    await wf("source", "edit", "sahel-bridge", "--no-block")
    fresh = {**sport, "title": "FOOT : Mena 3-0"}
    again = (await http.post("/ingest", json=[sport, fresh])).json()
    assert [(i["status"], i["duplicate"]) for i in again] == [(202, True), (202, False)]
    assert [m["title"] for m in (await posts_on_stream(redis_url))[3:]] == ["FOOT : Mena 3-0"]
    assert (await _sources(http))["sahel-bridge"]["posts_seen"] == 4


async def test_bad_hints_and_patterns_are_refused_with_the_reason_and_edit_replaces_or_clears(
    wf, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bad = await wf("source", "add", "http://127.0.0.1:9/feed.xml", "--as-is", "--lang", "xx", ok=False)
    assert "language 'xx' is not an ISO 639 language code" in bad.output
    bad = await wf("source", "add", "http://127.0.0.1:9/feed.xml", "--as-is", "--keep", "(a)\\1", ok=False)
    assert "keep pattern '(a)\\\\1': invalid escape sequence" in bad.output and "RE2 syntax" in bad.output
    assert (await wf("source", "list")).output.strip() == ""  # nothing stored

    await wf("source", "add", "http://127.0.0.1:9/feed.xml", "--as-is", "--name", "wire", "--lang", "fr-FR",
             "--keep", "niger", "--keep", "mali|burkina", "--block", "football")
    edited = await wf("source", "edit", "wire", "--keep", "sahel", "--lang", "bm")
    assert "lang bm" in edited.output
    async with sessions() as s:
        wire = await s.get(Source, "wire")
        assert (wire.lang, wire.keep_patterns, wire.block_patterns) == ("bm", ["sahel"], ["football"])
    for args, reason in [(("--lang", "zz"), "language 'zz' is not an ISO 639 language code"),
                         (("--block", "("), "block pattern '(': missing ): ("),
                         (("--keep", "a", "--no-keep"), "give --keep or --no-keep, not both"),
                         ((), "nothing to change")]:
        refused = await wf("source", "edit", "wire", *args, ok=False)
        assert reason in refused.output
    await wf("source", "edit", "wire", "--no-keep", "--no-block", "--no-lang")
    async with sessions() as s:
        wire = await s.get(Source, "wire")
        assert (wire.lang, wire.keep_patterns, wire.block_patterns) == (None, [], [])


async def test_opml_export_and_import_carry_the_hint_and_patterns(
    wf, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await wf("source", "add", "http://127.0.0.1:9/a.xml", "--as-is", "--name", "a", "--lang", "ar",
             "--keep", "هجوم|attaque", "--block", 'say "hello"')
    await wf("source", "add", "http://127.0.0.1:9/b.xml", "--as-is", "--name", "b")
    out = tmp_path / "sources.opml"
    await wf("source", "export", "-o", str(out))
    text = out.read_text(encoding="utf-8")
    assert "wf:lang=\"ar\"" in text and "wf:keep='[\"هجوم|attaque\"]'" in text
    assert ('<outline type="rss" text="b" title="b" xmlUrl="http://127.0.0.1:9/b.xml" wf:id="b" '
            'wf:interval="300"/>') in text  # nothing set: nothing written

    async with session_scope(sessions) as s:  # as in a fresh database
        await s.execute(sa.delete(Source))
    imported = await wf("source", "import", str(out))
    assert "2 added" in imported.output
    listed = (await wf("source", "list", "--json")).output.splitlines()
    rows = {json.loads(line)["id"]: json.loads(line) for line in listed}
    assert (rows["a"]["lang"], rows["a"]["keep"], rows["a"]["block"]) == ("ar", ["هجوم|attaque"], ['say "hello"'])
    assert (rows["b"]["lang"], rows["b"]["keep"], rows["b"]["block"]) == (None, [], [])

    bad = tmp_path / "bad.opml"
    bad.write_text(text.replace('wf:lang="ar"', 'wf:lang="xx"').replace("http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/c.xml"),
                   encoding="utf-8")
    refused = await wf("source", "import", str(bad), ok=False)
    assert "refused  http://127.0.0.1:9/c.xml  language 'xx' is not an ISO 639 language code" in refused.output


async def test_an_existing_database_upgrades_to_0007p_with_its_sources_unfiltered(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        await migrate(engine, "0005i")
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO sources (id, name, url, kind, interval_seconds, enabled, consecutive_failures,"
                " posts_seen, created_at) VALUES ('old', 'old', 'https://old.example/rss', 'feed', 300, true, 0,"
                " 7, CURRENT_TIMESTAMP)"))
        await migrate(engine)
        async with AsyncSession(engine) as s:
            old = await s.get(Source, "old")
            assert old is not None
            assert (old.lang, old.keep_patterns, old.block_patterns, old.posts_filtered, old.posts_seen) == (
                None, None, None, 0, 7)
    finally:
        await engine.dispose()
