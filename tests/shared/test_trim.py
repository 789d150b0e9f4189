"""Streams are trimmed only of what every consumer group has acked (real Redis)."""

import pytest
from redis.asyncio import Redis

from shared.trim import trim_consumed

STREAM = "wf:test-trim"


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _fill(redis: Redis, n: int) -> list[bytes]:
    return [await redis.xadd(STREAM, {"n": str(i)}) for i in range(n)]


async def _read(redis: Redis, group: str, count: int) -> list[bytes]:
    reply = await redis.xreadgroup(group, "c", {STREAM: ">"}, count=count)
    return [entry_id for entry_id, _ in reply[0][1]] if reply else []


async def test_a_stream_nobody_consumes_is_left_whole(redis: Redis) -> None:
    await _fill(redis, 10)
    assert await trim_consumed(redis, STREAM, exact=True) == 0
    assert await redis.xlen(STREAM) == 10


async def test_only_what_every_group_acked_goes(redis: Redis) -> None:
    ids = await _fill(redis, 10)
    await redis.xgroup_create(STREAM, "fast", id="0")
    await redis.xgroup_create(STREAM, "slow", id="0")
    await redis.xack(STREAM, "fast", *await _read(redis, "fast", 10))
    slow = await _read(redis, "slow", 6)
    await redis.xack(STREAM, "slow", *slow[:4])    # entries 5 and 6 are still pending for "slow"; 7-10 unread

    assert await trim_consumed(redis, STREAM, exact=True) == 4
    assert [entry_id for entry_id, _ in await redis.xrange(STREAM)] == ids[4:]


async def test_a_group_that_read_nothing_keeps_everything(redis: Redis) -> None:
    await _fill(redis, 5)
    await redis.xgroup_create(STREAM, "fast", id="0")
    await redis.xgroup_create(STREAM, "stopped", id="0")
    await redis.xack(STREAM, "fast", *await _read(redis, "fast", 5))
    assert await trim_consumed(redis, STREAM, exact=True) == 0
    assert await redis.xlen(STREAM) == 5


async def test_approximate_trimming_frees_acked_entries_of_a_long_stream(redis: Redis) -> None:
    ids = await _fill(redis, 1000)
    await redis.xgroup_create(STREAM, "g", id="0")
    await redis.xack(STREAM, "g", *await _read(redis, "g", 900))
    trimmed = await trim_consumed(redis, STREAM)
    assert 0 < trimmed <= 900
    remaining = [entry_id for entry_id, _ in await redis.xrange(STREAM)]
    assert remaining[-100:] == ids[900:]    # every unread entry is still there
