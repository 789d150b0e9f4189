"""`/health` and `/health/ready` as ops read them: each consumer's backlog, and 503 when one is stuck."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from shared import streams
from shared.consumer import GroupWatch, make_broker, publish, start_broker, subscribe
from shared.health import liveness, readiness
from shared.messages import PostMessage
from shared.settings import CommonSettings


def _post(n: int) -> PostMessage:
    return PostMessage(post_id=f"{n:064d}", source_id="test", title=f"post {n}", text="body",
                       fetched_at=datetime(2026, 1, 1, tzinfo=UTC))


async def _until(predicate, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


SETTINGS = CommonSettings(consumer_name="h", max_deliveries=3, claim_idle_ms=200)


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def running(redis_url: str, redis: Redis):
    """A classify consumer whose handler waits for `release` (set by default); the group watch is off."""
    release = asyncio.Event()
    release.set()
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        await release.wait()
        handled.append(post.title)

    broker = make_broker(redis_url)
    subscribe(broker, stage=streams.CLASSIFY, model=PostMessage, handle=handle, settings=SETTINGS, redis=redis)
    async with broker:
        await start_broker(broker, redis, watch_interval=3600)
        yield broker, release, handled
        release.set()


async def test_ready_with_each_consumer_reported_then_not_while_its_group_is_gone(running, redis, sessions) -> None:
    broker, _release, handled = running
    await publish(broker, streams.POSTS, _post(1), SETTINGS)
    await _until(lambda: asyncio.sleep(0, result=handled == ["post 1"]))

    ok, report = await readiness(broker, redis, sessions, stuck_after=60)
    assert ok, report
    [c] = report["consumers"]
    assert (c["stream"], c["group"], c["alive"], c["group_exists"], c["pending"], c["lag"], c["handled"]) == (
        streams.POSTS, "classify", True, True, 0, 0, 1)
    assert c["last_handled_at"] is not None
    live = await liveness(broker, redis, stuck_after=60)
    assert live["status"] == "ok" and live["consumers"][0]["handled"] == 1

    await redis.flushdb()  # Redis back without its data; the watch is off, so nothing brings the group back
    await _until(lambda: _not_ready(broker, redis, sessions))
    ok, report = await readiness(broker, redis, sessions, stuck_after=60)
    assert any(p.startswith("consumer classify: ") for p in report["problems"]), report["problems"]
    # alive all the same: restarting would not help
    assert (await liveness(broker, redis, stuck_after=60))["status"] == "ok"

    assert await GroupWatch(broker, redis).check() == [streams.CLASSIFY]
    ok, report = await readiness(broker, redis, sessions, stuck_after=60)
    assert ok, report["problems"]


async def _not_ready(broker, redis, sessions) -> bool:
    ok, _ = await readiness(broker, redis, sessions, stuck_after=60)
    return not ok


async def test_a_backlog_nothing_handles_makes_it_not_ready_until_handled(running, redis, sessions) -> None:
    broker, release, handled = running
    release.clear()  # the handler hangs, as on a post that costs forever
    await publish(broker, streams.POSTS, _post(2), SETTINGS)
    await asyncio.sleep(0.6)
    ok, report = await readiness(broker, redis, sessions, stuck_after=0.5)
    assert not ok
    [problem] = report["problems"]
    assert problem.startswith("consumer classify: 1 entries waiting and nothing handled for "), problem
    assert report["consumers"][0]["pending"] == 1

    release.set()  # (the reclaimer took it meanwhile too: handled twice, idempotently, as after a crash)
    await _until(lambda: asyncio.sleep(0, result="post 2" in handled))
    ok, report = await readiness(broker, redis, sessions, stuck_after=0.5)
    assert ok, report["problems"]


async def test_not_ready_when_redis_is_unreachable(running, sessions) -> None:
    broker, _release, _handled = running
    gone = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        ok, report = await readiness(broker, gone, sessions, stuck_after=60)
    finally:
        await gone.aclose()
    assert not ok
    assert report["redis"].startswith("ConnectionError: ")
    assert report["problems"][0].startswith("redis unavailable: ")
    assert report["consumers"][0]["group_exists"] is None  # unknown, not "missing"
    json.dumps(report)  # what /health/ready sends


async def test_the_lag_is_counted_where_redis_does_not_give_it(tmp_path, monkeypatch) -> None:
    """`watchfloor up`'s embedded Redis is 6.2: XINFO GROUPS has no lag there, so it is counted, up to a cap."""
    from shared import consumer
    from watchfloor.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    client = Redis.from_url(server.start())
    try:
        assert (await client.info("server"))["redis_version"].startswith("6.")
        for n in range(7):
            await client.xadd("s", {"n": str(n)})
        await client.xgroup_create("s", "g", id="0")
        await client.xreadgroup("g", "c", {"s": ">"}, count=2)
        info = await consumer.group_info(client, "s", "g")
        assert info is not None and (info["lag"], info["pending"]) == (5, 2)
        monkeypatch.setattr(consumer, "LAG_COUNT_CAP", 3)      # a long backlog reads as the cap, at least
        assert (await consumer.group_info(client, "s", "g"))["lag"] == 3  # type: ignore[index]
        await client.xreadgroup("g", "c", {"s": ">"})
        assert (await consumer.group_info(client, "s", "g"))["lag"] == 0  # type: ignore[index]
    finally:
        await client.aclose()
        server.stop()


async def test_the_feeder_of_a_group_nobody_reads_says_so_until_a_reader_comes(redis_url: str, redis: Redis,
                                                                                caplog) -> None:
    """`run ingest` with no `run classify` anywhere: posts pile up on wf:posts for a group no process reads. The
    feeder's health names what to start, its log warns once, and both clear when a reader comes."""
    from shared.consumer import publishes
    from shared.health import DownstreamWatch, view_downstream

    feeder = make_broker(redis_url)
    publishes(feeder, streams.POSTS, PostMessage, by=streams.INGEST)
    async with feeder:
        await feeder.start()
        await publish(feeder, streams.POSTS, _post(1), SETTINGS)
        [view] = await view_downstream(feeder, redis, within_s=60)
        assert (view.stream, view.group, view.group_exists, view.lag, view.readers) == (
            streams.POSTS, "classify", False, 1, 0)
        assert view.problem() == ("1 entries on wf:posts wait for group classify (not created yet), which no "
                                  "process has read for 60 s: start `watchfloor run classify`")
        watch = DownstreamWatch(feeder, redis, within_s=60)
        with caplog.at_level("INFO", logger="shared.health"):
            await watch.round()
            await watch.round()  # still nobody: not said again before `remind_s`
            warned = [r for r in caplog.records if r.levelname == "WARNING"]
            assert [r.getMessage() for r in warned] == [f"nobody consumes classify: {view.problem()}"]

            handled: list[str] = []

            async def handle(post: PostMessage) -> None:
                handled.append(post.title)

            reader = make_broker(redis_url)
            subscribe(reader, stage=streams.CLASSIFY, model=PostMessage, handle=handle, settings=SETTINGS,
                      redis=redis)
            async with reader:
                await start_broker(reader, redis, watch_interval=3600)
                await _until(lambda: asyncio.sleep(0, result=handled == ["post 1"]))
                await asyncio.sleep(0.2)  # its ack
                [view] = await view_downstream(feeder, redis, within_s=60)
                assert (view.group_exists, view.lag, view.pending, view.readers >= 1, view.problem()) == (
                    True, 0, 0, True, None)
                await watch.round()
                assert "group classify on wf:posts is read again" in caplog.messages
        # The reader gone (killed: no more reads), a new post waits: once `within_s` has passed, nobody reads it.
        await publish(feeder, streams.POSTS, _post(2), SETTINGS)
        await asyncio.sleep(0.3)
        [view] = await view_downstream(feeder, redis, within_s=0.2)
        assert (view.lag, view.readers) == (1, 0) and view.problem() is not None
        assert await view_downstream(reader, redis, within_s=60) == []  # it consumes what it would feed: nothing


@pytest.mark.parametrize("server", ["redis", "embedded 6.2"])
async def test_consumers_dead_processes_left_are_forgotten_never_one_holding_entries(
        server: str, redis: Redis, tmp_path) -> None:
    """Each process joins a group under its own name: restarts leave consumers behind. Those idle past the limit
    with nothing pending go; one holding an entry (a process killed mid-message) stays for the reclaimer."""
    from shared.consumer import forget_idle_consumers
    from watchfloor.embedded_redis import EmbeddedRedis

    embedded = EmbeddedRedis(tmp_path) if server != "redis" else None
    client = Redis.from_url(embedded.start()) if embedded else redis
    try:
        for n in range(3):
            await client.xadd("s", {"n": str(n)})
        await client.xgroup_create("s", "g", id="0")
        [[_, [(done, _)]]] = await client.xreadgroup("g", "restarted-1", {"s": ">"}, count=1)
        await client.xack("s", "g", done)
        await client.xreadgroup("g", "killed-mid-message", {"s": ">"}, count=1)  # never acked
        await asyncio.sleep(0.15)
        await client.xreadgroup("g", "alive", {"s": ">"}, count=1)
        await client.xack("s", "g", *[e for _, entries in await client.xreadgroup("g", "alive", {"s": "0"})
                                      for e, _ in entries])
        assert await forget_idle_consumers(client, "s", "g", idle_s=0.1) == 1
        left = {c["name"].decode(): c["pending"] for c in await client.xinfo_consumers("s", "g")}
        assert left == {"killed-mid-message": 1, "alive": 0}
        assert (await client.xpending("s", "g"))["pending"] == 1  # its entry still waits for the reclaimer
    finally:
        if embedded:
            await client.aclose()
            embedded.stop()
