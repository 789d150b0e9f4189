"""Politeness per host, against real Redis, both databases and a real feed server (timestamps at the server):
two pollers keep the spacing between requests to one host; a 429 with Retry-After holds every source of that
host; a hold longer than a poll may wait defers the host's sources instead of failing them. And a poll that
drops items over the cap says so in the source's health until a poll under the cap clears it."""

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.api import SourceHealth
from services.ingest.app import IngestService
from services.ingest.parse import Entry
from services.ingest.politeness import HostSpacing
from services.ingest.poller import kept_entries
from services.ingest.settings import IngestSettings
from shared.consumer import make_broker
from shared.db import session_scope
from shared.models import Post
from tests.ingest.conftest import feed_bytes
from tests.servers import FeedServer
from watchfloor.cli import main


@asynccontextmanager
async def ingest(db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession],
                 **overrides: Any) -> AsyncIterator[IngestService]:
    """One ingest service (as one process would run it) with its own Redis connection and poller."""
    settings = IngestSettings(database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05,
                              fetch_timeout_seconds=2.0, requeue_after_seconds=0.0, **overrides)
    broker = make_broker(redis_url)
    client = redis.asyncio.Redis.from_url(redis_url)
    svc = IngestService(settings, broker, client, sessions)
    async with broker:
        await broker.start()
        try:
            yield svc
        finally:
            await svc.stop()
    await client.aclose()


async def add(sessions: async_sessionmaker[AsyncSession], url: str, name: str) -> None:
    async with session_scope(sessions) as s:
        await store.add_source(s, url, name=name)


async def health(sessions: async_sessionmaker[AsyncSession], source_id: str) -> SourceHealth:
    async with session_scope(sessions) as s:
        found = await store.get_source(s, source_id)
    assert found is not None
    return SourceHealth.of(found)


async def test_two_pollers_keep_the_spacing_between_requests_to_one_host(
    db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    for n in range(5):
        await add(sessions, feed_server.route(f"/f{n}", feed_bytes("sahel_fr_ar.rss.xml")), f"s{n}")
    # Two slots each, so that both pollers claim some of the five sources and poll them at the same time.
    polite = {"host_spacing": {"127.0.0.1": 0.4}, "poll_concurrency": 2}
    async with ingest(db_url, redis_url, sessions, **polite) as one, \
            ingest(db_url, redis_url, sessions, **polite) as two:
        by_one, by_two = await asyncio.gather(one.drain(), two.drain())

    assert by_one and by_two, "both pollers polled"
    assert sorted(r.source_id for r in by_one + by_two) == [f"s{n}" for n in range(5)]
    assert all(r.error is None and r.new == 3 for r in by_one + by_two)
    arrivals = sorted(r.at for r in feed_server.requests)
    assert len(arrivals) == 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Turns are 0.4 s apart on Redis's clock; each request leaves after its client's own work (a process's
    # first connection costs tens of ms), so the server may see one gap shortened by that much.
    assert min(gaps) >= 0.4 - 0.1, gaps
    assert sum(gaps) / len(gaps) >= 0.4 - 0.02, gaps


async def test_retry_after_on_one_source_holds_every_source_of_the_host(
    db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    await add(sessions, feed_server.route("/limited", b"slow down", content_type="text/plain", status=429,
                                          headers={"Retry-After": "3"}), "limited")
    async with ingest(db_url, redis_url, sessions) as svc:  # no spacing on 127.0.0.1 (tests/conftest.py)
        report = await svc.poll_once("limited")
        assert report.error == "rate limited, retry after 3 s"
        for n in range(3):
            await add(sessions, feed_server.route(f"/f{n}", feed_bytes("sahel_fr_ar.rss.xml")), f"s{n}")
        others = await svc.drain()

    assert sorted((r.source_id, r.error, r.new) for r in others) == [(f"s{n}", None, 3) for n in range(3)]
    [refused] = feed_server.hits("/limited")
    later = [r.at - refused.at for n in range(3) for r in feed_server.hits(f"/f{n}")]
    assert len(later) == 3 and min(later) >= 3.0, later  # the hold starts once the 429 is read, after its arrival
    limited = await health(sessions, "limited")
    assert limited.status == "failing" and limited.last_error == "rate limited, retry after 3 s"
    assert limited.next_poll_at is not None and limited.next_poll_at >= limited.last_polled_at + timedelta(seconds=3)


async def test_a_hold_longer_than_a_poll_may_wait_defers_the_hosts_sources_without_failing_them(
    db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    await add(sessions, feed_server.route("/limited", b"", status=503, headers={"Retry-After": "120"}), "limited")
    async with ingest(db_url, redis_url, sessions, host_max_wait_seconds=1.0) as svc:
        assert (await svc.poll_once("limited")).error == "HTTP 503 Service Unavailable, retry after 120 s"
        await add(sessions, feed_server.route("/calm", feed_bytes("sahel_fr_ar.rss.xml")), "calm")
        before = datetime.now(UTC)
        [deferred] = await svc.drain()

    assert deferred.source_id == "calm" and deferred.deferred and deferred.error is None
    assert feed_server.hits("/calm") == []
    calm = await health(sessions, "calm")
    assert (calm.status, calm.consecutive_failures, calm.last_error) == ("pending", 0, None)
    assert calm.next_poll_at is not None
    assert before + timedelta(seconds=110) < calm.next_poll_at < before + timedelta(seconds=125)


async def test_dropped_items_warn_in_health_once_and_a_poll_under_the_cap_clears_it(
    db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = feed_server.route("/rss", feed_bytes("sahel_fr_ar.rss.xml"))  # three items, three dates
    await add(sessions, url, "veille-sahel")
    expected = ("feed had 3 items, kept the newest 2; raise WATCHFLOOR_MAX_ENTRIES_PER_POLL or poll more often")
    async with ingest(db_url, redis_url, sessions, max_entries_per_poll=2) as svc:
        with caplog.at_level(logging.WARNING, logger="services.ingest"):
            first = await svc.poll_once("veille-sahel")
            again = await svc.poll_once("veille-sahel")
        assert (first.seen, first.dropped, first.new, again.new) == (2, 1, 2, 0)
        shown = await health(sessions, "veille-sahel")
        assert (shown.status, shown.last_warning) == ("ok", expected)
        assert shown.last_warning_at == shown.last_polled_at
        assert caplog.text.count("poll dropped items source=veille-sahel dropped=1") == 1  # once, not per poll
        async with session_scope(sessions) as s:
            kept = sorted((await s.execute(sa.select(Post.guid))).scalars())
        assert kept == ["veille-sahel-20261122-0007", "veille-sahel-20261123-0001"]  # the newest two
        monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
        listed = await asyncio.to_thread(CliRunner().invoke, main, ["source", "list"], catch_exceptions=False)
        assert f"warning: {expected}" in listed.output

        feed_server.route("/rss", feed_bytes("niamey_vbied.rss.xml"))  # two items: under the cap
        assert (await svc.poll_once("veille-sahel")).dropped == 0
    cleared = await health(sessions, "veille-sahel")
    assert (cleared.last_warning, cleared.last_warning_at) == (None, None)


def test_spacing_of_a_host_is_its_most_specific_entry() -> None:
    spacing = HostSpacing(1.0, {"t.me": 3, "api.gdeltproject.org": 5, "127.0.0.1": 0})
    assert [spacing.of(h) for h in ("t.me", "www.t.me", "api.gdeltproject.org", "gdeltproject.org",
                                    "127.0.0.1", "example.org")] == [3, 3, 5, 1.0, 0, 1.0]


def test_platform_spacing_is_built_in_and_overridden_by_the_setting() -> None:
    settings = IngestSettings(host_spacing={"t.me": 10})
    assert settings.spacing_per_host["t.me"] == 10
    assert settings.spacing_per_host["api.gdeltproject.org"] == 5
    with pytest.raises(ValueError, match="WATCHFLOOR_HOST_SPACING"):
        IngestSettings(host_spacing={"t.me": -1})


@pytest.mark.parametrize(("dated", "kept"), [(True, ["c", "a"]), (False, ["b", "c"])],
                         ids=["all dated: the newest, in feed order", "undated: the first ones"])
def test_kept_entries_are_the_newest(dated: bool, kept: list[str]) -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    entries = [Entry(guid=g, link=None, title=g, text="", published_at=day + timedelta(days=d) if dated else None)
               for g, d in (("b", 0), ("c", 2), ("a", 1))]
    got, warning = kept_entries(entries, 2)
    assert sorted(e.guid or "" for e in got) == sorted(kept)
    assert warning is not None and warning.startswith("feed had 3 items, kept the newest 2")
    assert kept_entries(entries, 3) == (entries, None)


async def test_while_redis_is_down_a_process_keeps_the_spacing_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    from services.ingest.politeness import HostGate
    from shared import outage

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = redis.asyncio.Redis(port=sock.getsockname()[1])
    gate = HostGate(dead, HostSpacing(0.3, {}), max_wait=5.0)
    outage.reset()
    try:
        with caplog.at_level(logging.ERROR, logger="shared.outage"):
            first = await gate.wait_turn("a.example")
            second = await gate.wait_turn("a.example")
            other = await gate.wait_turn("b.example")
        assert (first.wait, other.wait) == (0.0, 0.0)
        assert 0.25 <= second.wait <= 0.3 and not second.deferred
        assert caplog.text.count("redis unavailable") == 1  # reported once, as every Redis outage is
    finally:
        outage.reset()
        await dead.aclose()
