"""POST /ingest stores and publishes a pushed post once; GET /api/sources shows each source's health."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.app import IngestService
from shared import http_guards
from shared.db import session_scope
from shared.ids import post_id
from shared.models import Post
from tests.ingest.conftest import posts_on_stream

PUSHED = {
    "source": "telegram-bridge",
    "title": "Attaque à Ménaka",
    "text": "Des hommes armés ont attaqué un poste à l'est de Ménaka ce matin.",
    "url": "https://t.me/s/example_channel/4242?utm_source=bridge",
    "published_at": "2026-11-23T08:15:00+01:00",
    "lang": "fr",
}


LIMIT = 64 * 1024


@pytest.fixture
async def http(service: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    http_guards.install(app, LIMIT)  # as watchfloor.runtime builds every app, with a small limit
    app.include_router(service.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        yield client


async def test_pushed_post_is_stored_and_published_once(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    first = await http.post("/ingest", json=PUSHED)
    assert first.status_code == 202
    expected_id = post_id("telegram-bridge", "https://t.me/s/example_channel/4242")  # canonical url, no guid
    assert first.json() == {"post_id": expected_id, "duplicate": False}
    again = await http.post("/ingest", json=PUSHED)
    assert again.status_code == 202 and again.json() == {"post_id": expected_id, "duplicate": True}

    on_stream = await posts_on_stream(redis_url)
    assert [m["post_id"] for m in on_stream] == [expected_id]
    assert on_stream[0]["published_at"] == "2026-11-23T07:15:00Z" and on_stream[0]["lang"] == "fr"
    async with session_scope(sessions) as s:
        rows = list((await s.execute(sa.select(Post))).scalars())
        push = await store.get_source(s, "telegram-bridge")
    assert [(r.id, r.title, r.queued_at is not None) for r in rows] == [(expected_id, "Attaque à Ménaka", True)]
    assert (push.kind, push.posts_seen) == ("push", 1)


async def test_pushed_posts_without_url_or_guid_are_told_apart_by_text(http: httpx.AsyncClient, redis_url: str) -> None:
    a = await http.post("/ingest", json={"source": "sms-relay", "text": "Explosion entendue à Gao"})
    b = await http.post("/ingest", json={"source": "sms-relay", "text": "Tirs signalés à Tessalit"})
    c = await http.post("/ingest", json={"source": "sms-relay", "text": "Explosion entendue à Gao"})
    assert [r.json()["duplicate"] for r in (a, b, c)] == [False, False, True]
    assert len(await posts_on_stream(redis_url)) == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"text": None}, "text", "Field required"),
        ({"source": "Telegram Bridge!"}, "source", "String should match pattern"),
        ({"published_at": "2026-11-23T08:15:00"}, "published_at", "Input should have timezone info"),
        ({"url": "javascript:alert(1)"}, "url", "url must start with http:// or https://"),
        ({"lang": "French!"}, "lang", "lang must be a language tag"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
    ids=["text missing", "bad source id", "naive published_at", "not an http url", "bad lang", "unknown field"],
)
async def test_bad_input_is_422_naming_the_field(
    http: httpx.AsyncClient, redis_url: str, change: dict, field: str, message: str
) -> None:
    body = {k: v for k, v in {**PUSHED, **change}.items() if v is not None}
    response = await http.post("/ingest", json=body)
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"][-1] == field and message in problem["msg"]
    assert await posts_on_stream(redis_url) == []


async def test_sources_listing_shows_health(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://veille-sahel.example/rss", name="veille-sahel")
        # not due before the listing is read: the running poller would otherwise try it (and fail: no such host)
        await store.make_due(s, "veille-sahel", now + timedelta(hours=1))
        await store.add_source(s, "https://moved.example/rss", name="moved")
        await store.record_poll(s, "moved", now=now, next_poll_at=now, error="feed returned HTML, not a feed")
    await http.post("/ingest", json=PUSHED)
    listing = {s["id"]: s for s in (await http.get("/api/sources")).json()}
    assert {k: v["status"] for k, v in listing.items()} == {
        "moved": "failing", "telegram-bridge": "ok", "veille-sahel": "pending"}
    assert listing["moved"]["last_error"] == "feed returned HTML, not a feed"
    assert listing["moved"]["consecutive_failures"] == 1
    assert listing["telegram-bridge"]["kind"] == "push" and listing["telegram-bridge"]["posts_seen"] == 1


async def test_push_needs_a_token_of_role_ingest_once_an_admin_token_exists(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    from shared import access, store_access

    assert (await http.post("/ingest", json=PUSHED)).status_code == 202  # open mode: no token yet, loopback
    tokens = {}
    async with session_scope(sessions) as s:
        for role in ("ingest", "viewer", "admin"):  # the admin token ends open mode
            new = access.new_token(role)
            await store_access.create_token(s, name=f"bridge-{role}", role=role, digest=new.digest,
                                            prefix=new.prefix, created_by="test")
            tokens[role] = new.secret
    other = {**PUSHED, "url": "https://t.me/s/example_channel/4243"}
    refused = await http.post("/ingest", json=other)
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["detail"]
    in_url = await http.post(f"/ingest?token={tokens['ingest']}", json=other)
    assert in_url.status_code == 401 and "never in the URL" in in_url.json()["detail"]
    assert tokens["ingest"].startswith("wf_i_")
    accepted = await http.post("/ingest", json=other, headers={"Authorization": f"Bearer {tokens['ingest']}"})
    assert accepted.status_code == 202
    third = {**PUSHED, "source": "viewer-relay", "url": "https://t.me/s/example_channel/4244"}
    by_viewer = await http.post("/ingest", json=third, headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert by_viewer.status_code == 202  # a higher role may push too (under a source of its own)
    assert len(await posts_on_stream(redis_url)) == 3


async def test_a_push_source_belongs_to_the_token_that_pushed_to_it_first(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    """A bridge cannot speak as another: a source is tied to the token's name (`pushed_by`), so one outlet's
    story pushed under a second source name is that token's doing, not a second outlet's."""
    from shared import access, store_access

    assert (await http.post("/ingest", json=PUSHED)).status_code == 202   # open mode: made without an owner
    tokens = {}
    async with session_scope(sessions) as s:
        for name, role in (("tg-bridge", "ingest"), ("other-bridge", "ingest"), ("lead", "admin")):
            new = access.new_token(role)
            await store_access.create_token(s, name=name, role=role, digest=new.digest, prefix=new.prefix,
                                            created_by="test")
            tokens[name] = {"Authorization": f"Bearer {new.secret}"}
        await store.add_source(s, "https://veille.example/rss", name="veille-sahel")

    def post(n: int, source: str = "telegram-bridge") -> dict:
        return {**PUSHED, "source": source, "url": f"https://t.me/s/example_channel/{5000 + n}"}

    assert (await http.post("/ingest", json=post(1), headers=tokens["tg-bridge"])).status_code == 202  # claims it
    refused = await http.post("/ingest", json=post(2), headers=tokens["other-bridge"])
    assert refused.status_code == 403
    assert refused.json()["detail"] == ("source telegram-bridge is pushed by token 'tg-bridge': push under a "
                                        "source id of your own, or with that token")
    assert (await http.post("/ingest", json=post(3), headers=tokens["lead"])).status_code == 202     # an admin
    assert (await http.post("/ingest", json=post(4, "other-relay"), headers=tokens["other-bridge"])).status_code \
        == 202
    feed = await http.post("/ingest", json=post(5, "veille-sahel"), headers=tokens["tg-bridge"])
    assert feed.status_code == 403 and "polled feed source" in feed.json()["detail"]
    listing = {s["id"]: s["pushed_by"] for s in (await http.get("/api/sources", headers=tokens["lead"])).json()}
    assert listing == {"telegram-bridge": "tg-bridge", "other-relay": "other-bridge", "veille-sahel": None}
    async with session_scope(sessions) as s:
        by_source = dict((await s.execute(sa.select(Post.source_id, sa.func.count()).group_by(Post.source_id))).all())
    assert by_source == {"telegram-bridge": 3, "other-relay": 1}
    assert len(await posts_on_stream(redis_url)) == 4


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("text", r"attack at Gao \ud800 today", "unicode"), ("title", r"Gao\u0000", "nul character"),
     ("guid", r"\udfff", "unicode")],  # JSON escapes, as a client sends them
    ids=["surrogate in text", "NUL in title", "surrogate in guid"],
)
async def test_text_no_database_can_store_is_422_not_500(
    http: httpx.AsyncClient, redis_url: str, field: str, value: str, message: str
) -> None:
    body = ('{"source": "sms-relay", "text": "Explosion entendue à Gao", "' + field + '": "' + value + '"}').encode()
    response = await http.post("/ingest", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["field"] == field and message in problem["msg"].lower()
    assert await posts_on_stream(redis_url) == []


async def test_422_names_the_field_and_never_echoes_the_input(http: httpx.AsyncClient) -> None:
    secret_looking = "x" * 40_000
    response = await http.post("/ingest", json={**PUSHED, "lang": secret_looking})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "lang"
    assert secret_looking[:100] not in response.text and len(response.content) < 1000


async def test_body_over_the_limit_is_413_before_it_is_read(http: httpx.AsyncClient, redis_url: str) -> None:
    big = {**PUSHED, "text": "a" * (LIMIT + 1)}
    declared = await http.post("/ingest", json=big)
    assert declared.status_code == 413 and "WATCHFLOOR_MAX_REQUEST_BYTES" in declared.json()["detail"]

    async def chunks():  # no Content-Length: the limit counts what arrives and stops at the first chunk over
        yield b'{"source": "sms-relay", "text": "'
        for _ in range(100):
            yield b"a" * 4096
        yield b'"}'

    streamed = await http.post("/ingest", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert await posts_on_stream(redis_url) == []


async def test_concurrent_pushes_to_one_source_are_all_stored(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A bridge pushes in parallel: on PostgreSQL every request locked the source row twice (a count, then its
    rhythm), and two requests deadlocked on the upgrade; each is now answered 202 and counted once."""
    import asyncio

    posts = [{**PUSHED, "url": f"https://t.me/s/example_channel/{5000 + i}", "text": f"{PUSHED['text']} ({i})"}
             for i in range(40)]
    answers = await asyncio.gather(*(http.post("/ingest", json=p) for p in posts))
    assert [a.status_code for a in answers] == [202] * 40, [a.text for a in answers if a.status_code != 202][:2]
    async with session_scope(sessions) as s:
        push = await store.get_source(s, "telegram-bridge")
        stored = (await s.execute(sa.select(sa.func.count()).select_from(Post))).scalar_one()
    assert (stored, push.posts_seen) == (40, 40)


# -- groups and arrays (issue 11): concurrent pushes share a transaction; an array is answered item by item --


async def test_concurrent_pushes_share_transactions_and_each_is_answered_after_its_commit(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from services.ingest import push

    committed: list[int] = []
    real = push.PushGroups._commit

    async def counted(self, pushes, now):  # type: ignore[no-untyped-def]
        outcome = await real(self, pushes, now)
        committed.append(len(pushes))  # the transaction has committed when _commit returns
        return outcome

    monkeypatch.setattr(push.PushGroups, "_commit", counted)
    posts = [{**PUSHED, "url": f"https://t.me/s/example_channel/{5000 + i}"} for i in range(30)]

    async def post_and_check(body: dict) -> httpx.Response:
        response = await http.post("/ingest", json=body)
        async with session_scope(sessions) as s:  # answered: stored
            assert await s.get(Post, response.json()["post_id"]) is not None
        return response

    answers = await asyncio.gather(*(post_and_check(p) for p in posts))
    assert [a.status_code for a in answers] == [202] * 30
    assert not any(a.json()["duplicate"] for a in answers)
    assert sum(committed) == 30 and len(committed) < 30  # grouped
    async with session_scope(sessions) as s:
        assert (await store.get_source(s, "telegram-bridge")).posts_seen == 30
    assert len(await posts_on_stream(redis_url)) == 30


async def test_an_array_is_answered_item_by_item_in_order(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    first = {**PUSHED, "url": "https://t.me/s/example_channel/6001"}
    second = {**PUSHED, "url": "https://t.me/s/example_channel/6002"}
    bad = {**PUSHED, "url": "javascript:alert(1)"}
    response = await http.post("/ingest", json=[first, second, first, bad, {"text": "no source"}])
    assert response.status_code == 202
    items = response.json()
    expected = [post_id("telegram-bridge", f"https://t.me/s/example_channel/{n}") for n in (6001, 6002)]
    assert items[:3] == [{"status": 202, "post_id": expected[0], "duplicate": False},
                         {"status": 202, "post_id": expected[1], "duplicate": False},
                         {"status": 202, "post_id": expected[0], "duplicate": True}]  # a repeat inside the array
    assert items[3]["status"] == 422 and items[3]["detail"][0]["field"] == "url"
    assert "javascript" not in response.text  # never echoes the input
    assert items[4]["status"] == 422 and items[4]["detail"][0]["field"] == "source"
    assert sorted(m["post_id"] for m in await posts_on_stream(redis_url)) == sorted(expected)
    async with session_scope(sessions) as s:
        assert (await store.get_source(s, "telegram-bridge")).posts_seen == 2
    again = await http.post("/ingest", json=[second])
    assert again.json() == [{"status": 202, "post_id": expected[1], "duplicate": True}]


async def test_an_array_item_refused_by_its_source_fails_alone(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://veille.example/rss", name="veille-sahel")  # polled: takes no pushes
    to_feed = {**PUSHED, "source": "veille-sahel", "url": "https://t.me/s/example_channel/6101"}
    fine = {**PUSHED, "url": "https://t.me/s/example_channel/6102"}
    response = await http.post("/ingest", json=[to_feed, fine])
    items = response.json()
    assert [i["status"] for i in items] == [403, 202]
    assert "polled" in items[0]["detail"]
    assert [m["url"] for m in await posts_on_stream(redis_url)] == ["https://t.me/s/example_channel/6102"]


@pytest.mark.parametrize("count", [0, 501], ids=["empty array", "over 500 posts"])
async def test_an_array_of_no_posts_or_too_many_is_422(http: httpx.AsyncClient, redis_url: str, count: int) -> None:
    body = [{**PUSHED, "text": f"post {i}", "url": None} for i in range(count)]
    response = await http.post("/ingest", json=[{k: v for k, v in b.items() if v is not None} for b in body])
    assert response.status_code == 422 and "1 to 500 posts" in response.json()["detail"][0]["msg"]
    assert await posts_on_stream(redis_url) == []


async def test_an_array_over_the_byte_limit_is_413(http: httpx.AsyncClient, redis_url: str) -> None:
    body = [{**PUSHED, "url": f"https://t.me/s/example_channel/{i}", "text": "a" * 1000} for i in range(100)]
    response = await http.post("/ingest", json=body)
    assert response.status_code == 413
    assert await posts_on_stream(redis_url) == []


async def test_a_post_that_fails_its_group_fails_alone(
    http: httpx.AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.insert_posts

    async def insert_posts(session, posts):  # type: ignore[no-untyped-def]
        if any("BOOM" in p.text for p, _ in posts):
            raise ValueError("a constraint the post breaks")
        return await real(session, posts)

    monkeypatch.setattr(store, "insert_posts", insert_posts)
    good = [{**PUSHED, "url": f"https://t.me/s/example_channel/{7000 + i}"} for i in range(3)]
    boom = {**PUSHED, "url": "https://t.me/s/example_channel/7999", "text": "BOOM at Gao"}
    response = await http.post("/ingest", json=[good[0], boom, good[1], good[2]])
    items = response.json()
    assert [i["status"] for i in items] == [202, 500, 202, 202]
    assert "a constraint the post breaks" in items[1]["detail"]
    assert len(await posts_on_stream(redis_url)) == 3


async def test_a_group_is_published_in_one_pipeline_each_entry_with_its_own_ids(
    http: httpx.AsyncClient, redis_url: str
) -> None:
    import redis.asyncio as aioredis
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    body = [{**PUSHED, "url": f"https://t.me/s/example_channel/{8000 + i}"} for i in range(3)]
    items = (await http.post("/ingest", json=body)).json()
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange("wf:posts")
    finally:
        await client.aclose()
    headers = [BinaryMessageFormatV1.parse(fields[b"__data__"])[1] for _, fields in entries]
    assert [(h["post_id"], h["source_id"]) for h in headers] == [(i["post_id"], "telegram-bridge") for i in items]


async def test_a_lone_pushed_posts_mark_comes_within_a_second_and_it_is_never_published_twice(
    http: httpx.AsyncClient, service: IngestService, sessions: async_sessionmaker[AsyncSession], redis_url: str
) -> None:
    """A group's queued mark waits for the next group's transaction; with no next group, it is written by one
    of its own within `MARK_WITHIN_S`. Meanwhile the outbox's requeue does not publish the row again."""
    assert (await http.post("/ingest", json=PUSHED)).status_code == 202
    assert await service.outbox.requeue(datetime.now(UTC) + timedelta(hours=1), timedelta(0)) == 0  # mark waits

    async def queued() -> bool:
        async with session_scope(sessions) as s:
            return all(r.queued_at is not None for r in (await s.execute(sa.select(Post))).scalars())

    for _ in range(40):
        if await queued():
            break
        await asyncio.sleep(0.05)
    assert await queued()
    assert len(await posts_on_stream(redis_url)) == 1
