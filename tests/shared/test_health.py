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
    live = await liveness(broker, redis)
    assert live["status"] == "ok" and live["consumers"][0]["handled"] == 1

    await redis.flushdb()  # Redis back without its data; the watch is off, so nothing brings the group back
    await _until(lambda: _not_ready(broker, redis, sessions))
    ok, report = await readiness(broker, redis, sessions, stuck_after=60)
    assert any(p.startswith("consumer classify: ") for p in report["problems"]), report["problems"]
    assert (await liveness(broker, redis))["status"] == "ok"  # alive all the same: restarting would not help

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
