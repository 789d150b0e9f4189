"""The consumer pattern on real Redis: ack after success, park poison, retry then park failures, replay."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from shared import deadletter, streams
from shared.consumer import make_broker, publish, start_broker, subscribe
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


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _settings() -> CommonSettings:
    return CommonSettings(consumer_name="t", max_deliveries=3, claim_idle_ms=200)


async def _run(redis_url: str, redis: Redis, handle, then) -> None:
    broker = make_broker(redis_url)
    subscribe(broker, stage=streams.CLASSIFY, model=PostMessage, handle=handle, settings=_settings(), redis=redis)
    async with broker:
        await start_broker(broker, redis)
        await then(broker)


async def _pending(redis: Redis) -> int:
    info = await redis.xpending(streams.POSTS, streams.GROUP_FOR_STAGE[streams.CLASSIFY])
    return info["pending"]


async def test_poison_is_parked_with_its_reason_and_the_next_message_is_handled(redis_url, redis) -> None:
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        handled.append(post.title)

    async def then(broker) -> None:
        await redis.xadd(streams.POSTS, {"__data__": b"{not json"})
        await redis.xadd(streams.POSTS, {"__data__": json.dumps({"post_id": "short"}).encode()})
        await publish(broker, streams.POSTS, _post(1), _settings())
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 1"]))
        await _until(lambda: _pending_is_zero(redis))

    await _run(redis_url, redis, handle, then)
    letters = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert [d.reason.split(":")[0] for d in letters] == ["not JSON", "invalid PostMessage"]
    assert "post_id" in letters[1].reason
    assert letters[0].payload == b"{not json"
    assert await _pending(redis) == 0


async def test_a_message_published_before_the_consumer_started_is_not_lost(redis_url, redis) -> None:
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        handled.append(post.title)

    early = make_broker(redis_url)
    async with early:
        await publish(early, streams.POSTS, _post(9), _settings())

    async def then(broker) -> None:
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 9"]))

    await _run(redis_url, redis, handle, then)


async def test_a_transient_failure_is_retried_and_handled_once(redis_url, redis) -> None:
    calls: list[str] = []

    async def handle(post: PostMessage) -> None:
        calls.append(post.title)
        if len(calls) == 1:
            raise ConnectionError("database unreachable")

    async def then(broker) -> None:
        await publish(broker, streams.POSTS, _post(2), _settings())
        await _until(lambda: asyncio.sleep(0, result=len(calls) == 2))
        await _until(lambda: _pending_is_zero(redis))

    await _run(redis_url, redis, handle, then)
    assert calls == ["post 2", "post 2"]
    assert await deadletter.list_parked(redis, streams.CLASSIFY) == []


async def _pending_is_zero(redis: Redis) -> bool:
    return await _pending(redis) == 0


async def test_a_message_failing_every_time_is_parked_after_max_deliveries_then_replayed(redis_url, redis) -> None:
    broken = True
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        if broken:
            raise RuntimeError("rule store is corrupt")
        handled.append(post.title)

    async def parked() -> bool:
        return len(await deadletter.list_parked(redis, streams.CLASSIFY)) == 1

    async def then(broker) -> None:
        nonlocal broken
        await publish(broker, streams.POSTS, _post(3), _settings())
        await _until(parked)
        await _until(lambda: _pending_is_zero(redis))
        [letter] = await deadletter.list_parked(redis, streams.CLASSIFY)
        assert letter.reason == "failed 3 times: RuntimeError: rule store is corrupt"
        assert letter.deliveries == 3
        broken = False
        assert await deadletter.replay(redis, streams.CLASSIFY) == 1
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 3"]))

    await _run(redis_url, redis, handle, then)
    assert await deadletter.list_parked(redis, streams.CLASSIFY) == []
