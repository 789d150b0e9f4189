"""The consumer pattern on real Redis: ack after success, park poison, retry then park failures, replay."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from shared import deadletter, metrics, streams
from shared.consumer import MAX_JSON_DEPTH, decode, make_broker, publish, start_broker, subscribe
from shared.messages import AlertMessage, EventMessage, PostMessage, SourceWatchMessage
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


_MODE = {"batch": False}


@pytest.fixture(autouse=True, params=["one by one", "in batches"])
def _mode(request: pytest.FixtureRequest):
    """Every test here runs twice: the reader handing entries to `handle` one at a time, and in batches
    (`handle_batch`, here a loop over `handle`): the batch path must keep every promise of the single one."""
    _MODE["batch"] = request.param == "in batches"
    yield
    _MODE["batch"] = False


def _batched(handle):
    if not _MODE["batch"]:
        return {}

    async def handle_batch(items: list) -> None:
        for item in items:
            await handle(item)

    return {"handle_batch": handle_batch}


async def _run(redis_url: str, redis: Redis, handle, then) -> None:
    broker = make_broker(redis_url)
    subscribe(broker, stage=streams.CLASSIFY, model=PostMessage, handle=handle, settings=_settings(), redis=redis,
              **_batched(handle))
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


async def _run_with(redis_url: str, redis: Redis, handle, then, **options) -> None:
    broker = make_broker(redis_url)
    subscribe(broker, stage=streams.CLASSIFY, model=PostMessage, handle=handle, redis=redis,
              settings=options.get("settings", _settings()),
              **{k: v for k, v in options.items() if k in ("max_bytes", "max_depth", "handle_batch")}
              | ({} if "handle_batch" in options else _batched(handle)))
    async with broker:
        await start_broker(broker, redis, watch_interval=options.get("watch_interval", 2.0))
        await then(broker)


async def test_deep_nesting_and_oversize_are_parked_at_once_and_the_next_message_is_handled(
    redis_url, redis, caplog
) -> None:
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        handled.append(post.title)

    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on this
    shallow_but_deep = json.dumps({"post_id": json.loads("[" * 40 + "1" + "]" * 40)}).encode()  # 41 levels
    oversize = json.dumps({"title": "x" * 300_000}).encode()

    async def then(broker) -> None:
        for payload in (deep, shallow_but_deep, oversize):
            await redis.xadd(streams.POSTS, {"__data__": payload})
        await publish(broker, streams.POSTS, _post(4), _settings())
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 4"]))
        await _until(lambda: _pending_is_zero(redis))

    await _run_with(redis_url, redis, handle, then, max_bytes=250_000)
    letters = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert [d.reason for d in letters] == [
        "nested too deep: more than the JSON parser's 1000 levels",
        "nested too deep: more than 32 levels",
        f"payload too large: {len(oversize)} bytes, limit 250000",
    ]
    assert [d.payload for d in letters] == [deep, shallow_but_deep, oversize]  # parked whole: under 16 MiB
    assert all(d.deliveries == 1 and not d.truncated for d in letters)
    parked_logs = [r for r in caplog.records if r.getMessage().startswith("parked ")]
    assert [(r.levelname, r.stream, r.reason) for r in parked_logs] == [
        ("ERROR", streams.POSTS, d.reason) for d in letters
    ]
    assert {r.entry_id for r in parked_logs} == {d.origin_id for d in letters}


async def test_an_entry_of_foreign_fields_that_are_not_utf8_is_parked_not_stranded(redis_url, redis) -> None:
    """Found by bench/faults.py: FastStream raised on such an entry before any handler, every time."""
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        handled.append(post.title)

    async def then(broker) -> None:
        await redis.xadd(streams.POSTS, {"data": b"\xff\xfe not json"})
        await redis.xadd(streams.POSTS, {b"\xff": b"\xfe", "x": "y"})
        await publish(broker, streams.POSTS, _post(3), _settings())
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 3"]))
        await _until(lambda: _pending_is_zero(redis))

    await _run_with(redis_url, redis, handle, then)
    letters = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert len(letters) == 2 and all(d.reason.startswith("not JSON") for d in letters)
    assert letters[0].payload == b"data=\xff\xfe not json"


async def test_a_handler_raising_type_error_is_retried_then_parked_with_its_reason(redis_url, redis, caplog) -> None:
    calls = 0

    async def handle(post: PostMessage) -> None:
        nonlocal calls
        calls += 1
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    async def then(broker) -> None:
        await publish(broker, streams.POSTS, _post(5), _settings())
        await _until(lambda: _parked_count_is(redis, 1))
        await _until(lambda: _pending_is_zero(redis))

    await _run_with(redis_url, redis, handle, then)
    [letter] = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert letter.reason == "failed 3 times: TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    assert (letter.deliveries, calls) == (3, 3)
    retries = [r for r in caplog.records if r.getMessage().startswith("retry stage=classify")]
    assert [(r.levelname, r.attempt, r.entry_id) for r in retries] == [
        ("WARNING", 1, letter.origin_id), ("WARNING", 2, letter.origin_id)
    ]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= 30)  # reasons, not tracebacks


async def _parked_count_is(redis: Redis, n: int) -> bool:
    return len(await deadletter.list_parked(redis, streams.CLASSIFY)) == n


async def test_a_payload_over_the_parking_limit_is_kept_truncated_with_a_note_and_not_replayed(redis) -> None:
    huge = b"x" * (deadletter.MAX_PARKED_BYTES + 1)
    await deadletter.park(redis, streams.CLASSIFY, huge, "payload too large: " + "y" * 10_000)
    [letter] = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert letter.truncated and letter.payload == huge[: deadletter.KEPT_OF_OVERSIZE]
    assert len(letter.reason) == deadletter.MAX_REASON_CHARS and letter.reason.startswith("payload too large: yyy")
    assert await deadletter.replay(redis, streams.CLASSIFY) == 0
    assert len(await deadletter.list_parked(redis, streams.CLASSIFY)) == 1


async def test_a_flushed_redis_gets_its_group_back_and_a_later_message_is_handled(redis_url, redis, caplog) -> None:
    handled: list[str] = []

    async def handle(post: PostMessage) -> None:
        handled.append(post.title)

    async def then(broker) -> None:
        await publish(broker, streams.POSTS, _post(6), _settings())
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 6"]))
        await redis.flushdb()  # Redis back without its data: no stream, no group
        await asyncio.sleep(0.5)  # long enough for FastStream to meet NOGROUP and stop its subscribers
        await publish(broker, streams.POSTS, _post(7), _settings())
        await _until(lambda: asyncio.sleep(0, result=handled == ["post 6", "post 7"]))
        await _until(lambda: _pending_is_zero(redis))

    await _run_with(redis_url, redis, handle, then, watch_interval=0.2)
    lost = [r for r in caplog.records if "consumer group lost" in r.getMessage()]
    assert [(r.levelname, r.stream, r.group) for r in lost] == [("ERROR", streams.POSTS, "classify")]


async def test_a_database_outage_is_waited_out_not_parked_and_logged_once_each_way(redis_url, redis, caplog) -> None:
    caplog.set_level("INFO")
    calls: list[str] = []

    async def handle(post: PostMessage) -> None:
        calls.append(post.title)
        if len(calls) <= 4:  # more tries than max_deliveries (3): an outage is not the message's fault
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    async def then(broker) -> None:
        await publish(broker, streams.POSTS, _post(8), _settings())
        await _until(lambda: asyncio.sleep(0, result=len(calls) == 5))
        await _until(lambda: _pending_is_zero(redis))

    await _run_with(redis_url, redis, handle, then)
    assert await deadletter.list_parked(redis, streams.CLASSIFY) == []
    messages = [r.getMessage() for r in caplog.records if r.name == "shared.outage"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("database unavailable reason=\"ConnectionRefusedError: [Errno 111]")
    assert messages[1].startswith("database back after ")
    assert not [r for r in caplog.records if r.getMessage().startswith("retry ")]


# -- batches (issue 11): one handler call and one XACK for many entries; a bad entry never sinks its batch --


async def _publish_all(broker, redis: Redis, posts: list[PostMessage], poison: bytes | None = None) -> None:
    """XADDs the posts (and a poison entry after the first) in one pipeline, so one XREADGROUP reads them all."""
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    pipe = redis.pipeline(transaction=False)
    for n, post in enumerate(posts):
        body = await BinaryMessageFormatV1.encode(message=post.model_dump(mode="json", by_alias=True),
                                                  reply_to=None, headers={}, correlation_id=f"c{n}")
        pipe.xadd(streams.POSTS, {"__data__": body})
        if n == 0 and poison is not None:
            pipe.xadd(streams.POSTS, {"__data__": poison})
    await pipe.execute()


async def test_a_poison_entry_in_a_batch_is_parked_alone_and_the_rest_handled_in_one_call(redis_url, redis) -> None:
    batches: list[list[str]] = []

    async def handle(post: PostMessage) -> None:  # an entry read alone (the reader woke at the first XADD)
        batches.append([post.title])

    async def handle_batch(posts: list[PostMessage]) -> None:
        batches.append([p.title for p in posts])

    async def then(broker) -> None:
        await _until(lambda: asyncio.sleep(0, result=sum(map(len, batches)) == 5))
        await _until(lambda: _pending_is_zero(redis))

    def scraped() -> tuple[float, float]:  # /metrics' watchfloor_batch_entries_{sum,count} for classify
        return tuple(metrics.REGISTRY.get_sample_value(f"watchfloor_batch_entries_{s}", {"stage": streams.CLASSIFY})
                     or 0.0 for s in ("sum", "count"))

    before = scraped()
    await _publish_all(None, redis, [_post(n) for n in range(5)], poison=b"{not json")  # read together, at start
    await _run_with(redis_url, redis, handle, then, handle_batch=handle_batch)
    assert sorted(t for b in batches for t in b) == [f"post {n}" for n in range(5)]
    assert batches == [[f"post {n}" for n in range(5)]]  # one call
    # /metrics counts one batch of the five decoded entries (the poison one was parked before the batch)
    assert scraped() == (before[0] + 5, before[1] + 1)
    letters = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert [(d.payload, d.reason.split(":")[0]) for d in letters] == [(b"{not json", "not JSON")]


async def test_a_batch_failing_for_one_entry_handles_the_others_and_retries_then_parks_that_one(
    redis_url, redis
) -> None:
    handled: list[str] = []
    batch_calls: list[int] = []

    async def handle(post: PostMessage) -> None:
        if post.title == "post 2":
            raise ValueError("violates a constraint")
        handled.append(post.title)

    async def handle_batch(posts: list[PostMessage]) -> None:
        batch_calls.append(len(posts))
        if any(p.title == "post 2" for p in posts):
            raise ValueError("violates a constraint")  # the transaction rolls back: nothing of the batch kept
        handled.extend(p.title for p in posts)

    async def then(broker) -> None:
        await _until(lambda: _parked_count_is(redis, 1))
        await _until(lambda: _pending_is_zero(redis))

    await _publish_all(None, redis, [_post(n) for n in range(5)])  # read together, at start
    await _run_with(redis_url, redis, handle, then, handle_batch=handle_batch)
    assert sorted(handled) == ["post 0", "post 1", "post 3", "post 4"]  # each once
    [letter] = await deadletter.list_parked(redis, streams.CLASSIFY)
    assert letter.reason == "failed 3 times: ValueError: violates a constraint" and letter.deliveries == 3


async def test_a_batch_redelivered_after_a_crash_between_commit_and_ack_is_handled_again_idempotently(
    redis_url, redis, monkeypatch
) -> None:
    stored: dict[str, int] = {}  # post_id -> times written: an upsert keyed by id, as the stages' are
    real_xack = Redis.xack
    failures = {"left": 1}

    async def xack(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the process died after its commit, before its XACK")
        return await real_xack(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "xack", xack)

    async def handle(post: PostMessage) -> None:
        stored[post.post_id] = stored.get(post.post_id, 0) + 1

    async def handle_batch(posts: list[PostMessage]) -> None:
        for post in posts:
            await handle(post)

    async def then(broker) -> None:
        await _until(lambda: asyncio.sleep(0, result=len(stored) == 4 and failures["left"] == 0))
        await _until(lambda: _pending_is_zero(redis))

    await _publish_all(None, redis, [_post(n) for n in range(4)])  # read together, at start
    await _run_with(redis_url, redis, handle, then, handle_batch=handle_batch)
    assert sorted(stored) == [_post(n).post_id for n in range(4)]
    assert set(stored.values()) == {2}  # committed, then redelivered by the reclaimer: written twice, one row each
    assert await deadletter.list_parked(redis, streams.CLASSIFY) == []


def _schema_depth(node: object, defs: dict, seen: tuple[str, ...] = ()) -> int:
    """How deep a JSON value valid for this schema node can nest (objects and arrays); fails on a free-form one."""
    if not isinstance(node, dict):
        return 0
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        assert name not in seen, f"recursive model {name}: its depth has no bound"
        return _schema_depth(defs[name], defs, (*seen, name))
    depth = max([_schema_depth(n, defs, seen) for key in ("anyOf", "oneOf", "allOf") for n in node.get(key, [])],
                default=0)
    if node.get("type") == "object" or "properties" in node:
        assert node.get("additionalProperties") is False, f"free-form object in {seen}: its depth has no bound"
        depth = max(depth, 1 + max([_schema_depth(n, defs, seen) for n in node.get("properties", {}).values()],
                                   default=0))
    if node.get("type") == "array":
        assert "items" in node or "prefixItems" in node, f"untyped array in {seen}"
        items = [node["items"]] if "items" in node else node["prefixItems"]
        depth = max(depth, 1 + max(_schema_depth(n, defs, seen) for n in items))
    return depth


@pytest.mark.parametrize("model", [PostMessage, EventMessage, AlertMessage, SourceWatchMessage])
def test_a_message_that_validates_cannot_nest_deeper_than_the_consumer_parks(model) -> None:
    """`decode` skips its depth walk for a payload that validates: safe only while no stream model has a
    free-form field and none nests near MAX_JSON_DEPTH."""
    schema = model.model_json_schema()
    assert _schema_depth(schema, schema.get("$defs", {})) < MAX_JSON_DEPTH


def test_decode_gives_the_same_message_either_way_and_the_reason_when_it_fails() -> None:
    post = _post(1)
    raw = post.model_dump_json().encode()
    assert decode(PostMessage, raw) == post == PostMessage.model_validate(json.loads(raw))
    with pytest.raises(Exception, match="invalid PostMessage: title"):
        decode(PostMessage, json.dumps({**json.loads(raw), "title": 5}).encode())
    with pytest.raises(Exception, match="not JSON"):
        decode(PostMessage, raw[:-1])


async def test_a_steady_trickle_is_read_in_batches_that_gather_while_the_stage_lingers(redis_url, redis) -> None:
    """Issue 11: a stage that keeps up would read one or two entries at a time, each batch paying the read, the
    transaction and the ack; after a batch that is not full it waits batch_linger_ms before reading again."""
    sizes: list[int] = []

    async def handle(post: PostMessage) -> None:
        sizes.append(1)

    async def handle_batch(posts: list[PostMessage]) -> None:
        sizes.append(len(posts))

    settings = _settings().model_copy(update={"batch_linger_ms": 150})

    async def then(broker) -> None:
        started = asyncio.get_running_loop().time()
        for n in range(40):
            await publish(broker, streams.POSTS, _post(n), settings)
            await asyncio.sleep(0.01)
        took = asyncio.get_running_loop().time() - started
        await _until(lambda: asyncio.sleep(0, result=sum(sizes) == 40))
        await _until(lambda: _pending_is_zero(redis))
        assert len(sizes) <= took / 0.150 + 3, sizes  # one read per linger, not one per post
        assert max(sizes) >= 5, sizes

    await _run_with(redis_url, redis, handle, then, handle_batch=handle_batch, settings=settings)
