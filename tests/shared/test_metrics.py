"""`/metrics` as Prometheus reads it: names with their units, bounded labels, the lag and dead letters of each
consumer group read at scrape time, and a scrape that survives Redis or the database being away."""

import asyncio
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.ingest import store as ingest_store
from shared import metrics, streams
from shared.consumer import make_broker, publish, start_broker, subscribe
from shared.db import make_engine, make_sessionmaker, session_scope
from shared.health import state_reading
from shared.messages import PostMessage
from shared.models import Source
from shared.settings import CommonSettings

SETTINGS = CommonSettings(consumer_name="m", max_deliveries=3, claim_idle_ms=200)
DOWN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once
DOWN_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"

IN_PROCESS = {
    # name as exposed: (type, labels)
    "watchfloor_messages_handled_total": ("counter", {"stage", "outcome"}),
    "watchfloor_polls_total": ("counter", {"kind", "outcome"}),
    "watchfloor_posts_total": ("counter", {"kind", "fate"}),
    "watchfloor_webhook_deliveries_total": ("counter", {"subscription", "outcome"}),
    "watchfloor_classify_seconds": ("histogram", set()),
    "watchfloor_post_to_webhook_seconds": ("histogram", set()),
    "watchfloor_batch_seconds": ("histogram", {"stage"}),
    "watchfloor_batch_entries": ("histogram", {"stage"}),
}


def _post(n: int) -> PostMessage:
    return PostMessage(post_id=f"{n:064d}", source_id="test", title=f"post {n}", text="body",
                       fetched_at=datetime(2026, 1, 1, tzinfo=UTC))


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_every_metric_names_its_unit_says_why_and_has_bounded_labels() -> None:
    defined = {c._name: c for c in (metrics.messages_handled, metrics.polls, metrics.posts, metrics.deliveries,
                                    metrics.classify_seconds, metrics.post_to_webhook_seconds,
                                    metrics.batch_seconds, metrics.batch_entries)}
    exposed = {f.name: f for f in metrics.REGISTRY.collect() if f.name.startswith("watchfloor_")}
    assert set(exposed) == set(defined) == {n.removesuffix("_total") for n in IN_PROCESS}
    for name, (kind, labels) in IN_PROCESS.items():
        family = exposed[name.removesuffix("_total")]
        assert family.type == kind and len(family.documentation) > 60, name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_entries")), f"{name}: a histogram names its unit"
        declared = set(defined[family.name]._labelnames)
        assert declared == labels, name
        assert not {"post_id", "event_id", "alert_id", "url"} & declared, "an unbounded label"
    assert all(name.startswith("watchfloor_") and len(doc) > 40 for name, doc in metrics.STATE_METRICS.items())


def test_a_counted_message_and_poll_show_in_the_exposition() -> None:
    before = _samples(metrics.exposition(metrics.StateReading(version="t", services="x")))
    metrics.count_message("classify", "parked")
    metrics.count_poll("telegram", "ok", new=3, kept_out=1)
    metrics.count_delivery(7, "gave_up")
    after = _samples(metrics.exposition(metrics.StateReading(version="t", services="x")))

    def grew(name: str, **labels: str) -> float:
        return (_value(after, name, **labels) or 0) - (_value(before, name, **labels) or 0)

    assert grew("watchfloor_messages_handled_total", stage="classify", outcome="parked") == 1
    assert grew("watchfloor_polls_total", kind="telegram", outcome="ok") == 1
    assert grew("watchfloor_posts_total", kind="telegram", fate="new") == 3
    assert grew("watchfloor_posts_total", kind="telegram", fate="kept_out") == 1
    assert grew("watchfloor_webhook_deliveries_total", subscription="7", outcome="gave_up") == 1
    assert not any(name.endswith("_created") for name, _ in after)
    assert _value(after, "watchfloor_info", version="t", services="x") == 1


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_scrape_reads_each_groups_lag_pending_and_dead_letters(redis_url: str, redis: Redis, sessions) -> None:
    release, all_handled = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        await release.wait()
        handled.append(post.title)
        if len(handled) == 6:
            all_handled.set()

    broker = make_broker(redis_url)
    subscribe(broker, stage=streams.CLASSIFY, model=PostMessage, handle=handle, settings=SETTINGS, redis=redis,
              max_records=2)
    ok_before = metrics.messages_handled.labels(stage="classify", outcome="ok")._value.get()
    async with broker:
        await start_broker(broker, redis, watch_interval=3600)
        for n in range(6):
            await publish(broker, streams.POSTS, _post(n), SETTINGS)
        await redis.xadd(streams.POSTS, {"__data__": b"not json"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reading = await state_reading(broker, redis, sessions, version="t", services="classify", sources=False,
                                          subscriptions=False, stuck_after=60)
            [group] = reading.groups
            if group.pending:
                break
            await asyncio.sleep(0.02)
        scraped = _samples(metrics.exposition(reading))
        lag = _value(scraped, "watchfloor_stream_lag", stream=streams.POSTS, group="classify")
        pending = _value(scraped, "watchfloor_stream_pending", stream=streams.POSTS, group="classify")
        assert pending and lag and lag + pending == 7, scraped  # the handler holds what was read; the rest waits
        assert _value(scraped, "watchfloor_scrape_error", dependency="redis") == 0
        assert _value(scraped, "watchfloor_sources_failing") is None  # not asked: not this process's state

        release.set()
        await asyncio.wait_for(all_handled.wait(), 10)
        await asyncio.sleep(0.2)  # the last ack
        scraped = _samples(metrics.exposition(await state_reading(
            broker, redis, sessions, version="t", services="classify", sources=False, subscriptions=False,
            stuck_after=60)))
    assert _value(scraped, "watchfloor_stream_lag", stream=streams.POSTS, group="classify") == 0
    assert _value(scraped, "watchfloor_stream_pending", stream=streams.POSTS, group="classify") == 0
    assert _value(scraped, "watchfloor_dead_letters", stage="classify") == 1
    assert metrics.messages_handled.labels(stage="classify", outcome="ok")._value.get() - ok_before == 6


async def test_sources_failing_and_subscriptions_disabled_are_counted_at_scrape_time(redis_url: str, redis: Redis,
                                                                                     sessions) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessions) as s:
        for name in ("a", "b", "c"):
            await ingest_store.add_source(s, f"https://{name}.example/rss", name=name)
    async with session_scope(sessions) as s:
        for name, state in (("a", "failing"), ("b", "silent")):
            row = await s.get(Source, name)
            assert row is not None
            row.watch_state, row.watch_since = state, now
    reading = await state_reading(make_broker(redis_url), redis, sessions, version="t", services="ingest",
                                  sources=True, subscriptions=True, stuck_after=60)
    scraped = _samples(metrics.exposition(reading))
    assert _value(scraped, "watchfloor_sources_failing") == 1
    assert _value(scraped, "watchfloor_sources_silent") == 1
    assert _value(scraped, "watchfloor_subscriptions_disabled") == 0
    assert _value(scraped, "watchfloor_scrape_error", dependency="database") == 0


async def test_redis_away_the_scrape_answers_and_says_so(sessions) -> None:
    redis = Redis.from_url(DOWN_REDIS)
    broker = make_broker(DOWN_REDIS)
    subscribe(broker, stage=streams.ALERT, model=PostMessage, handle=lambda _p: asyncio.sleep(0), settings=SETTINGS,
              redis=redis)
    started = time.monotonic()
    reading = await state_reading(broker, redis, sessions, version="t", services="alert", sources=False,
                                  subscriptions=True, stuck_after=60)
    await redis.aclose()
    assert time.monotonic() - started < 3
    scraped = _samples(metrics.exposition(reading))
    assert _value(scraped, "watchfloor_scrape_error", dependency="redis") == 1
    assert _value(scraped, "watchfloor_scrape_error", dependency="database") == 0
    assert not [k for k in scraped if k[0] in ("watchfloor_stream_lag", "watchfloor_stream_pending",
                                                "watchfloor_dead_letters")]
    assert _value(scraped, "watchfloor_subscriptions_disabled") == 0


async def test_the_database_away_the_scrape_answers_and_says_so(redis_url: str, redis: Redis) -> None:
    engine = make_engine(DOWN_POSTGRES)
    try:
        reading = await state_reading(make_broker(redis_url), redis, make_sessionmaker(engine), version="t",
                                      services="ingest", sources=True, subscriptions=True, stuck_after=60)
    finally:
        await engine.dispose()
    scraped = _samples(metrics.exposition(reading))
    assert _value(scraped, "watchfloor_scrape_error", dependency="database") == 1
    assert _value(scraped, "watchfloor_sources_failing") is None
    assert _value(scraped, "watchfloor_subscriptions_disabled") is None


def test_the_state_collector_yields_exactly_the_state_metrics_documented() -> None:
    reading = metrics.StateReading(
        version="t", services="x", groups=[metrics.GroupReading("classify", streams.POSTS, "classify", 1, 2, 3)],
        sources={"failing": 1}, subscriptions_disabled=0, errors={"redis": False, "database": False})
    families = {f.name for f in metrics.StateCollector(reading).collect()}
    assert families == set(metrics.STATE_METRICS)
