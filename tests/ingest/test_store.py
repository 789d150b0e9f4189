"""Ingest's SQL on SQLite and PostgreSQL: sources, due/claim, health, idempotent posts, the outbox."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.normalise import to_post
from services.ingest.parse import Entry
from shared.db import session_scope
from shared.ids import source_id

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def test_add_source_ids_and_duplicates(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as s:
        named = await store.add_source(s, "https://veille-sahel.example/rss", name="Veille Sahel (FR)")
        anon = await store.add_source(s, "https://ng-brief.example/rss", interval=900)
    assert named.id == "veille-sahel-fr"
    assert anon.id == source_id("https://ng-brief.example/rss") and anon.interval_seconds == 900
    with pytest.raises(store.SourceError, match="already polled as source 'veille-sahel-fr'"):
        async with session_scope(sessions) as s:
            await store.add_source(s, "https://veille-sahel.example/rss", name="Another name")
    with pytest.raises(store.SourceError, match="exists already"):
        async with session_scope(sessions) as s:
            await store.add_source(s, "https://other.example/rss", name="veille sahel fr")
    with pytest.raises(store.SourceError, match="not an http"):
        async with session_scope(sessions) as s:
            await store.add_source(s, "ftp://x.example/feed")
    async with session_scope(sessions) as s:
        assert [x.id for x in await store.list_sources(s)] == sorted([named.id, anon.id])


async def test_claim_leases_a_due_source_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://a.example/rss", name="a")
    lease = NOW + timedelta(minutes=2)
    async with session_scope(sessions) as s:
        assert [x.id for x in await store.claim_due_sources(s, NOW, lease, 8)] == ["a"]
    async with session_scope(sessions) as s:  # a second poller (or tick) finds nothing due
        assert await store.claim_due_sources(s, NOW, lease, 8) == []
    async with session_scope(sessions) as s:  # the lease ran out: the poller holding it died
        assert [x.id for x in await store.due_sources(s, lease + timedelta(seconds=1))] == ["a"]


async def test_record_poll_health(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://a.example/rss", name="a")
    later = NOW + timedelta(minutes=5)
    async with session_scope(sessions) as s:
        await store.record_poll(s, "a", now=NOW, next_poll_at=later, etag='"e1"', last_modified="Mon", new_posts=3)
        await store.record_poll(s, "a", now=NOW, next_poll_at=later, error="HTTP 503 Service Unavailable")
        await store.record_poll(s, "a", now=NOW, next_poll_at=later, error="HTTP 503 Service Unavailable")
    async with session_scope(sessions) as s:
        src = await store.get_source(s, "a")
    assert (src.consecutive_failures, src.last_error, src.last_error_at) == (2, "HTTP 503 Service Unavailable", NOW)
    assert (src.etag, src.last_modified, src.posts_seen, src.last_success_at) == ('"e1"', "Mon", 3, NOW)
    async with session_scope(sessions) as s:  # a 304 without validators keeps the old ones
        await store.record_poll(s, "a", now=later, next_poll_at=later, keep_validators=True)
    async with session_scope(sessions) as s:
        src = await store.get_source(s, "a")
    assert (src.consecutive_failures, src.etag, src.last_success_at) == (0, '"e1"', later)


def _post(guid: str, source: str = "a"):
    return to_post(Entry(guid=guid, link=None, title="t", text="x"), source, NOW), guid


async def test_posts_are_stored_once_and_outbox_tracks_queueing(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://a.example/rss", name="a")
    async with session_scope(sessions) as s:
        new = await store.insert_new_posts(s, [_post("1"), _post("2"), _post("1")])
    assert [p.guid for p in new] == ["1", "2"]
    async with session_scope(sessions) as s:
        assert not await store.insert_post_if_new(s, *_post("2"))
        assert [p.guid for p in await store.insert_new_posts(s, [_post("2"), _post("3")])] == ["3"]
    async with session_scope(sessions) as s:
        stranded = await store.unqueued_posts(s, NOW)
        assert {p.guid for p in stranded} == {"1", "2", "3"}
        assert stranded[0].fetched_at == NOW
        await store.mark_queued(s, [new[0].post_id], NOW)
    async with session_scope(sessions) as s:
        assert {p.guid for p in await store.unqueued_posts(s, NOW)} == {"2", "3"}
        assert await store.unqueued_posts(s, NOW - timedelta(seconds=1)) == []


async def test_push_source_created_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as s:
        await store.ensure_push_source(s, "telegram-bridge")
        await store.ensure_push_source(s, "telegram-bridge")
    async with session_scope(sessions) as s:
        sources = await store.list_sources(s)
        assert [(x.id, x.kind, x.url) for x in sources] == [("telegram-bridge", "push", None)]
        assert await store.due_sources(s, NOW) == []  # a push source is never polled
    with pytest.raises(store.SourceError, match="lower-case letters"):
        async with session_scope(sessions) as s:
            await store.ensure_push_source(s, "Bad Name!")
