"""A poll against real Redis, both databases and a real feed server: posts land in `posts` and on wf:posts
exactly once; broken sources record their reason and back off while the others go on being polled."""

import asyncio
import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.app import IngestService
from services.ingest.normalise import to_post
from services.ingest.parse import Entry
from shared.db import session_scope
from shared.models import Post, Source
from tests.ingest.conftest import feed_bytes, posts_on_stream
from tests.servers import FeedServer


async def add(sessions: async_sessionmaker[AsyncSession], url: str, name: str) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, url, name=name)


async def source(sessions: async_sessionmaker[AsyncSession], source_id: str) -> Source:
    async with session_scope(sessions) as s:
        found = await store.get_source(s, source_id)
    assert found is not None
    return found


async def stored_posts(sessions: async_sessionmaker[AsyncSession]) -> list[Post]:
    async with session_scope(sessions) as s:
        return list((await s.execute(sa.select(Post).order_by(Post.id))).scalars())


async def test_feeds_land_in_posts_and_on_the_stream_exactly_once(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add(sessions, feed_server.route("/rss", feed_bytes("sahel_fr_ar.rss.xml"),
                                          headers={"ETag": '"r1"'}), "veille-sahel")
    await add(sessions, feed_server.route("/atom", feed_bytes("iswap_borno.atom.xml"),
                                          content_type="application/atom+xml"), "lake-chad")
    await add(sessions, feed_server.route("/json", feed_bytes("jnim_benin.feed.json"),
                                          content_type="application/feed+json"), "gog-watch")
    await add(sessions, feed_server.route("/noguid", feed_bytes("no_guids.rss.xml")), "ng-brief")
    with caplog.at_level(logging.INFO, logger="services.ingest"):
        reports = await service.drain()

    assert sorted((r.source_id, r.new, r.error) for r in reports) == [
        ("gog-watch", 2, None), ("lake-chad", 2, None), ("ng-brief", 2, None), ("veille-sahel", 3, None)]
    stored = await stored_posts(sessions)
    on_stream = await posts_on_stream(redis_url)
    assert len(stored) == 9
    assert sorted(m["post_id"] for m in on_stream) == [p.id for p in stored]
    assert all(p.queued_at is not None for p in stored)
    arabic = next(m for m in on_stream if m["guid"] == "veille-sahel-20261122-0007")
    assert arabic["lang"] == "ar" and arabic["title"] == "هجوم على قرية قرب تيلابيري في النيجر"
    assert arabic["schema"] == 1 and arabic["source_id"] == "veille-sahel"
    assert "polled source=veille-sahel new=3 seen=3 304=no" in caplog.text

    # Polling again publishes nothing: a 304 for the feed with an ETag, known ids for the others.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="services.ingest"):
        again = [await service.poll_once(sid) for sid in ("veille-sahel", "lake-chad", "gog-watch", "ng-brief")]
    assert [(r.new, r.not_modified) for r in again] == [(0, True), (0, False), (0, False), (0, False)]
    assert feed_server.hits("/rss")[-1].headers["if-none-match"] == '"r1"'
    assert "polled source=veille-sahel new=0 seen=0 304=yes" in caplog.text
    assert len(await posts_on_stream(redis_url)) == 9
    assert len(await stored_posts(sessions)) == 9
    health = await source(sessions, "veille-sahel")
    assert (health.etag, health.posts_seen, health.consecutive_failures) == ('"r1"', 3, 0)
    assert health.next_poll_at > datetime.now(UTC)


async def test_broken_sources_record_the_reason_and_the_others_go_on(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add(sessions, feed_server.route("/html", feed_bytes("not_a_feed.html"), content_type="text/html"), "moved")
    await add(sessions, feed_server.route("/broken", feed_bytes("broken.xml")), "broken")
    await add(sessions, feed_server.route("/gone", b"", status=404), "gone")
    await add(sessions, feed_server.route("/atom", feed_bytes("iswap_borno.atom.xml")), "lake-chad")
    with caplog.at_level(logging.INFO, logger="services.ingest"):
        await service.drain()
        for _ in range(2):
            await service.poll_once("moved")

    moved, broken, gone = [await source(sessions, s) for s in ("moved", "broken", "gone")]
    assert moved.last_error.startswith("feed returned HTML, not a feed") and moved.consecutive_failures == 3
    assert broken.last_error == "not well-formed XML: not well-formed (invalid token) at line 4"
    assert gone.last_error == "HTTP 404 Not Found"
    assert broken.consecutive_failures == gone.consecutive_failures == 1
    assert moved.last_success_at is None and moved.next_poll_at > datetime.now(UTC)  # backing off, not dropped
    # the good source was polled and published all the same
    assert len(await posts_on_stream(redis_url)) == 2
    # an identical failure is logged once at WARNING, not at every poll
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "source=moved" in r.getMessage()]
    assert len(warnings) == 1 and "reason='feed returned HTML" in warnings[0]

    # the feed is fixed: the next poll recovers it and resets its failures
    feed_server.route("/html", feed_bytes("sahel_fr_ar.rss.xml"))
    report = await service.poll_once("moved")
    assert (report.new, report.error) == (3, None)
    healed = await source(sessions, "moved")
    assert healed.consecutive_failures == 0 and healed.last_success_at is not None


async def test_running_service_picks_up_a_source_added_by_another_process(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
    engine,
) -> None:
    from shared.db import make_engine, make_sessionmaker

    await service.start()
    await asyncio.sleep(0.2)  # a few empty ticks
    cli_engine = make_engine(engine.url.render_as_string(hide_password=False))  # the CLI's own connection
    try:
        await add(make_sessionmaker(cli_engine), feed_server.route("/json", feed_bytes("jnim_benin.feed.json")),
                  "gog-watch")
    finally:
        await cli_engine.dispose()
    for _ in range(200):  # up to 10 s
        if len(await posts_on_stream(redis_url)) >= 2:
            break
        await asyncio.sleep(0.05)
    # requeue_after is 0 here, so a tick between a poll's commit and its publish may queue a post again
    # (at least once, by design); what matters is that both new posts of the added source went out
    assert len({p["post_id"] for p in await posts_on_stream(redis_url)}) == 2
    await service.stop()  # stops cleanly, and a second stop is harmless
    await service.stop()


async def test_posts_stored_but_never_published_are_published_on_the_next_tick(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], redis_url: str,
) -> None:
    # As if ingest crashed between committing the posts and publishing them.
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://a.example/rss", name="a")
        post = to_post(Entry(guid="g1", link=None, title="Attaque", text="x"), "a", datetime.now(UTC))
        assert await store.insert_post_if_new(s, post, "g1")
        await store.record_poll(s, "a", now=datetime.now(UTC), next_poll_at=datetime(2100, 1, 1, tzinfo=UTC))
    await service.poller.tick()
    await service.poller.tick()
    assert [m["post_id"] for m in await posts_on_stream(redis_url)] == [post.post_id]
    assert (await stored_posts(sessions))[0].queued_at is not None


async def test_many_sources_polled_concurrently_but_politely_per_host(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
) -> None:
    for n in range(12):  # more than poll_concurrency (8): two rounds, no "database is locked" on SQLite
        await add(sessions, feed_server.route(f"/f{n}", feed_bytes("sahel_fr_ar.rss.xml"), delay=0.1), f"s{n}")
    reports = await service.drain()
    assert sorted(r.source_id for r in reports) == sorted(f"s{n}" for n in range(12))
    assert all(r.error is None and r.new == 3 for r in reports)
    assert len(await posts_on_stream(redis_url)) == 36
    # All twelve feeds live on one host: never more than per_host_concurrency (2) fetches to it at once.
    assert feed_server.max_in_flight == 2


async def test_redis_outage_loses_no_post(
    settings, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
    service: IngestService, caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    import redis.asyncio

    from shared.consumer import make_broker

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}"
    await add(sessions, feed_server.route("/rss", feed_bytes("sahel_fr_ar.rss.xml")), "veille-sahel")
    offline = IngestService(settings, make_broker(dead), redis.asyncio.Redis.from_url(dead), sessions)
    with caplog.at_level(logging.WARNING, logger="services.ingest"):
        reports = await offline.drain()
    await offline.stop()
    assert [(r.new, r.error) for r in reports] == [(3, None)]  # stored; the publish failed
    assert "publish failed stream=wf:posts" in caplog.text
    assert all(p.queued_at is None for p in await stored_posts(sessions))
    # Redis is back (the real broker): the next tick publishes what was stored, once.
    await service.poller.tick()
    assert len(await posts_on_stream(redis_url)) == 3
    assert all(p.queued_at is not None for p in await stored_posts(sessions))


async def test_stop_interrupts_a_slow_poll_promptly(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    await add(sessions, feed_server.route("/slow", feed_bytes("sahel_fr_ar.rss.xml"), delay=1.5), "slow")
    await service.start()
    for _ in range(100):
        if feed_server.hits("/slow"):
            break
        await asyncio.sleep(0.02)
    assert feed_server.hits("/slow"), "the poll loop did not start polling"
    started = asyncio.get_running_loop().time()
    await service.stop()
    assert asyncio.get_running_loop().time() - started < 0.5
    assert await stored_posts(sessions) == []
