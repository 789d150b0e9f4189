"""The one consumer pattern every stage uses (DESIGN §2; ../shared/notes/faststream-redis.md).

    XREADGROUP ──▶ decode (bounded) ──any error──▶ park in wf:dlq:<stage>, XACK
                      │
                      ▼
                   handle ──ok──▶ XACK          (only after the handler's effects are committed)
                      │
                      ├─ database/Redis down ─▶ leave pending, the outage logged once (not the message's fault)
                      └─ any other error ─▶ leave pending ──(claim_idle_ms)──▶ XAUTOCLAIM by the reclaimer
                                   └─ delivered max_deliveries times ──▶ park with the error, XACK

FastStream's default policy strands a failed message in the pending list and Redis has no nack,
so every subscriber here is MANUAL-ack and a second, reclaiming subscriber brings stuck entries back.
FastStream stops a subscriber for good when its group vanishes (NOGROUP: Redis flushed or back without its
data); `GroupWatch` recreates the group and restarts it. This module and the services' `app.py` are the only
FastStream users.
"""

import asyncio
import json
import logging
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from faststream import AckPolicy
from faststream.redis import RedisBroker, RedisStreamMessage, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.parser.binary import BinaryMessageFormatV1
from pydantic import BaseModel, SkipValidation, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared import deadletter, metrics, outage, streams
from shared.logs import ID_FIELDS, current_ids, message_ids
from shared.messages import DeadLetterEntry, to_wire
from shared.periodic import Periodic
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""A stream payload longer than this is parked unread. Twice the default HTTP body limit, so any post
`POST /ingest` accepts fits, with room for JSON escapes."""
MAX_JSON_DEPTH = 32
"""Deeper JSON is parked: no message of ours nests more than a few levels."""
GROUP_CHECK_SECONDS = 2.0
"""How often `GroupWatch` looks for lost consumer groups and stopped subscribers."""
SHUTDOWN_GRACE_SECONDS = 5.0
"""On shutdown, how long a message being handled may take to finish before its handler is cancelled (FastStream's
`graceful_timeout`, 15 s by default). A cancelled handler has not acked: its entry stays pending and is handled
again after a restart, like one whose process was killed."""


class PoisonError(ValueError):
    """A payload no retry can fix (not JSON, too big, too deep, not the model): parked at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validation_reason(model: type[BaseModel], exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"invalid {model.__name__}: {where}: {first.get('msg')}"


def _depth_over(value: Any, limit: int) -> bool:
    """True if `value` nests deeper than `limit`: an explicit stack, so any depth costs no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def decode(model: type[M], raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES,
           max_depth: int = MAX_JSON_DEPTH) -> M:
    """Parses one stream payload; raises PoisonError with a reason a person can act on. Bounded: the size is
    checked before parsing, and a nesting too deep for the parser's recursion is caught, never propagated."""
    if len(raw) > max_bytes:
        raise PoisonError(f"payload too large: {len(raw)} bytes, limit {max_bytes}")
    try:  # the common case, in one pass of pydantic's parser (half the CPU of json.loads then validate)
        return model.model_validate_json(raw)
    except ValidationError:
        pass  # not a `model`: parsed again below, to say exactly why (too deep, not JSON, which field)
    # Our models forbid extra fields and have no free-form ones, so a payload that validated above nests no
    # deeper than the model does: the depth check is needed only here.
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise PoisonError(f"nested too deep: more than the JSON parser's {sys.getrecursionlimit()} levels") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonError(f"not JSON: {outage.describe(exc, 200).split(': ', 1)[1]}") from exc
    if _depth_over(body, max_depth):
        raise PoisonError(f"nested too deep: more than {max_depth} levels")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PoisonError(validation_reason(model, exc)) from exc


@dataclass
class Consumer:
    """One stage's consumer in this process, as `/health` shows it."""

    stage: str
    stream: str
    group: str
    subscribers: list[Any] = field(default_factory=list)  # FastStream subscribers: the reader, the reclaimer
    started_at: float | None = None  # time.time()
    last_handled_at: float | None = None
    handled: int = 0
    parked: int = 0
    last_error: str | None = None

    def alive(self) -> bool:
        """Every subscriber runs and has a live read task."""
        return bool(self.subscribers) and all(
            getattr(sub, "running", False) and any(not t.done() for t in getattr(sub, "tasks", ()))
            for sub in self.subscribers
        )


_CONSUMERS: "weakref.WeakKeyDictionary[RedisBroker, dict[str, Consumer]]" = weakref.WeakKeyDictionary()
_PUBLISHED: "weakref.WeakKeyDictionary[RedisBroker, set[str]]" = weakref.WeakKeyDictionary()


def consumers(broker: RedisBroker) -> list[Consumer]:
    """The stages this broker consumes, in stage order."""
    return sorted(_CONSUMERS.get(broker, {}).values(), key=lambda c: c.stage)


def downstream(broker: RedisBroker) -> list[tuple[str, str, str]]:
    """(stage, stream, group) of every stage that consumes what this broker publishes and that this broker does
    not consume itself: the work this process hands to other processes (`run alert --no-deliver` hands
    wf:alerts to `run deliver`)."""
    published = _PUBLISHED.get(broker, set())
    mine = {c.stage for c in consumers(broker)}
    return [(stage, stream, streams.GROUP_FOR_STAGE[stage]) for stage, stream in streams.STREAM_FOR_STAGE.items()
            if stream in published and stage not in mine]


def subscribe(
    broker: RedisBroker,
    *,
    stage: str,
    model: type[M],
    handle: Callable[[M], Awaitable[None]],
    settings: CommonSettings,
    redis: Redis,
    max_records: int = 50,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    handle_batch: Callable[[list[M]], Awaitable[None]] | None = None,
) -> None:
    """Registers the stage's consumer-group subscriber and its reclaimer on `broker`.

    With `handle_batch`, the reader takes up to `max_records` entries at a time: each is decoded (a poison one
    parked alone), the decoded ones go to `handle_batch` together (one transaction, the stage's promise), and
    all are acked at once after it returns. If it raises, each goes through `handle` alone, so the one at fault
    is retried and parked as a single message would be and the others are handled. The reclaimer always hands
    entries to `handle`, one at a time."""
    stream = streams.STREAM_FOR_STAGE[stage]
    group = streams.GROUP_FOR_STAGE[stage]
    state = _CONSUMERS.setdefault(broker, {}).setdefault(stage, Consumer(stage, stream, group))
    log_fields = {"stage": stage, "stream": stream}

    async def park(entry: "_Entry", reason: str, deliveries: int) -> None:
        await deadletter.park(redis, stage, entry.raw, reason, origin_id=entry.entry_id, deliveries=deliveries)
        await entry.ack()
        state.parked += 1
        state.last_error = reason
        metrics.count_message(stage, "parked")

    def handled(count: int) -> None:
        state.handled += count
        state.last_handled_at = time.time()
        metrics.count_message(stage, "ok", count)
        for what in (outage.DATABASE, outage.REDIS):  # a handled message used both: they are back
            outage.outage(what).ok()

    async def decoded(entry: "_Entry") -> M | None:
        """The entry's message, or None once a poison entry is parked."""
        try:
            return decode(model, entry.raw, max_bytes=max_bytes, max_depth=max_depth)
        except Exception as exc:  # decoding is pure: what failed once fails every time, so park it now
            reason = exc.reason if isinstance(exc, PoisonError) else f"undecodable: {outage.describe(exc)}"
            await park(entry, reason, await entry.deliveries())
            return None

    async def process(msg: RedisStreamMessage) -> None:
        entry = _Entry.of(msg)
        item = await decoded(entry)
        if item is not None:
            await process_one(entry, item)

    async def process_one(entry: "_Entry", item: M) -> None:
        started = time.perf_counter()
        with message_ids(**carried_ids(entry, item)):  # every line logged while handling it names it
            try:
                await handle(item)
            except Exception as exc:
                await failed(entry, exc)
                return
            # Ack only after the handler's commit: a crash before this line means redelivery, never loss.
            await entry.ack()
            handled(1)
            logger.debug("handled stage=%s entry=%s %.0fms", stage, entry.entry_id,
                         (time.perf_counter() - started) * 1000, extra={**log_fields, "entry_id": entry.entry_id})

    async def process_batch(entries: "list[_Entry]") -> None:
        assert handle_batch is not None
        started = time.perf_counter()
        batch: list[tuple[_Entry, M]] = []
        for entry in entries:
            item = await decoded(entry)
            if item is not None:
                batch.append((entry, item))
        if len(batch) <= 1:  # alone, it takes the single path: a failure is retried, not tried twice
            for entry, item in batch:
                await process_one(entry, item)
                metrics.observe_batch(stage, 1, time.perf_counter() - started)
            return
        try:
            await handle_batch([item for _, item in batch])
        except Exception as exc:
            what = outage.unavailable(exc)
            if what is not None:  # not the messages' fault: all wait in the pending list for the reclaimer
                outage.outage(what).failed(exc, where=f"consumer {stage}")
                metrics.count_message(stage, "retried", len(batch))
                return
            logger.warning("batch failed stage=%s entries=%d reason=%r; handling them one by one", stage,
                           len(batch), outage.describe(exc), extra={**log_fields, "reason": outage.describe(exc)})
            for entry, item in batch:
                await process_one(entry, item)
            return
        # One XACK for the batch, only after its commit: a crash before it means redelivery, never loss.
        await redis.xack(stream, group, *[entry.entry_id for entry, _ in batch])
        handled(len(batch))
        took = time.perf_counter() - started
        metrics.observe_batch(stage, len(batch), took)
        logger.debug("handled stage=%s entries=%d %.0fms", stage, len(batch), took * 1000, extra=log_fields)

    async def failed(entry: "_Entry", exc: Exception) -> None:
        entry_id = entry.entry_id
        what = outage.unavailable(exc)
        if what is not None:
            # Not the message's fault: it waits in the pending list and is reclaimed after the outage.
            outage.outage(what).failed(exc, where=f"consumer {stage}")
            metrics.count_message(stage, "retried")
            return
        deliveries = await entry.deliveries()
        reason = outage.describe(exc)
        state.last_error = reason
        logger.debug("handler error stage=%s entry=%s", stage, entry_id, exc_info=exc)
        if deliveries >= settings.max_deliveries:
            await park(entry, f"failed {deliveries} times: {reason}", deliveries)
            return
        # Left pending on purpose: the reclaimer retries it after claim_idle_ms.
        metrics.count_message(stage, "retried")
        logger.warning(
            "retry stage=%s entry=%s attempt=%d/%d reason=%r next_in=%.1fs",
            stage, entry_id, deliveries, settings.max_deliveries, reason, settings.claim_idle_ms / 1000,
            extra={**log_fields, "entry_id": entry_id, "attempt": deliveries, "reason": reason},
        )

    def left_pending(exc: Exception, what: str, fields: dict[str, Any]) -> None:
        """Parking or acking failed (Redis away): the entries stay pending and the reclaimer brings them back."""
        unavailable = outage.unavailable(exc)
        if unavailable is not None:
            outage.outage(unavailable).failed(exc, where=f"consumer {stage}")
            return
        logger.error("consumer error stage=%s %s reason=%r (left pending; retried after %.1fs)", stage, what,
                     outage.describe(exc), settings.claim_idle_ms / 1000,
                     extra={**log_fields, **fields, "reason": outage.describe(exc)})

    async def guarded(msg: RedisStreamMessage) -> None:
        # Nothing may escape to FastStream: it would log nothing (its logger is off) and leave the entry pending.
        try:
            await process(msg)
        except Exception as exc:
            left_pending(exc, f"entry={_entry_id(msg)}", {"entry_id": _entry_id(msg)})

    # Two distinct callables: FastStream keys a handler by its function, so one function registered
    # twice would leave one of the subscribers without a handler.
    # `body` (unused) is what the AsyncAPI document shows the stream carries (`model`); SkipValidation, because the
    # body is `decode`d here, bounded, and parked when it is not a `model`: validated by FastStream, a poison
    # message would fail before any handler of ours and stay pending forever.
    documented = Annotated[model, SkipValidation]  # type: ignore[valid-type]  # the stage's model, a variable

    async def on_new(body: documented, msg: RedisStreamMessage) -> None:  # type: ignore[valid-type]
        await guarded(msg)

    linger_s = settings.batch_linger_ms / 1000

    async def on_batch(body: documented, msg: RedisBatchStreamMessage) -> None:  # type: ignore[valid-type]
        entries = _Entry.of_batch(msg, redis, group)
        try:
            await process_batch(entries)
        except Exception as exc:
            left_pending(exc, f"entries={len(entries)}", {})
        if len(entries) < max_records and linger_s:
            # FastStream reads again when this returns: XREADGROUP hands over whatever has arrived, one or two
            # entries under a steady load that the stage keeps up with, and each batch has a fixed cost (the
            # read, the transaction, the ack, the publish). Waiting a moment lets the next one gather more;
            # a full batch means a backlog, read again at once.
            await asyncio.sleep(linger_s)

    async def on_reclaimed(body: documented, msg: RedisStreamMessage) -> None:  # type: ignore[valid-type]
        await guarded(msg)

    # `decoder=_raw_body`: FastStream would otherwise json-decode every body before the handler runs, where
    # a 100,000-deep array raises RecursionError that no handler of ours can see.
    reader = broker.subscriber(
        stream=StreamSub(stream, group=group, consumer=settings.consumer_name, max_records=max_records,
                         batch=handle_batch is not None),
        ack_policy=AckPolicy.MANUAL, decoder=_raw_body,
        parser=_tolerant_parser if handle_batch is None else _batch_parser,
        title=f"{stream}:{group}", description=f"consumer group `{group}` ({stage} stage): "
        f"{streams.about(stream)}",
    )
    reader(on_new if handle_batch is None else on_batch)
    reclaimer = broker.subscriber(  # the same stream and group as the reader: one entry in the document
        stream=StreamSub(stream, group=group, consumer=f"{settings.consumer_name}-reclaim",
                         min_idle_time=settings.claim_idle_ms,
                         polling_interval=reclaim_poll_ms(settings.claim_idle_ms)),
        ack_policy=AckPolicy.MANUAL, decoder=_raw_body, parser=_tolerant_parser, include_in_schema=False,
    )
    reclaimer(on_reclaimed)
    state.subscribers += [reader, reclaimer]
    publishes(broker, streams.dlq_stream(stage), DeadLetterEntry, by=stage)


def reclaim_poll_ms(claim_idle_ms: int) -> int:
    """How long the reclaimer sleeps once it has walked the whole pending list: a quarter of the idle time a
    message must reach to be reclaimed, between 0.1 and 2 s. FastStream's XAUTOCLAIM takes one entry a call
    and scans ten, so a batch of 100 in flight costs ten calls a walk: walking every 0.1 s (its default) was
    a hundred calls a second per reclaimer, under load, for nothing (30 s must pass before one is due)."""
    return max(100, min(2000, claim_idle_ms // 4))


def publishes(broker: RedisBroker, stream: str, model: type[BaseModel], *, by: str) -> None:
    """Declares, for the AsyncAPI document, that stage `by` writes `model`s to `stream`: a reader of the document
    learns what the stream carries and who writes it. Nothing is sent through the declaration; `publish` and
    `deadletter.park` write as before."""
    title = stream if stream == streams.dlq_stream(by) else f"{stream}:{by}"
    if stream != streams.dlq_stream(by):
        _PUBLISHED.setdefault(broker, set()).add(stream)
    if any(getattr(p.specification.config, "title_", None) == title for p in broker.publishers):
        return  # two alert workers in one process, or a service built twice: one entry
    broker.publisher(stream=stream, title=title, schema=model,
                     description=f"written by the {by} stage: {streams.about(stream)}")


async def _raw_body(msg: Any) -> Any:
    return msg.body


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "backslashreplace")


async def _tolerant_parser(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream turns an entry whose fields are not its own `__data__` into JSON, which raises on bytes that
    are not UTF-8: inside FastStream, before any handler, so the entry would stay pending and be reclaimed
    forever. Such an entry is handed on as one body made of its fields, for `decode` to refuse and park."""
    try:
        return await original(msg)
    except Exception:
        fields = msg.get("data") or {}
        raw = b"&".join(_bytes(k) + b"=" + _bytes(v) for k, v in fields.items()) if isinstance(fields, dict) \
            else _bytes(fields)
        return await original({**msg, "data": {b"__data__": raw}})


async def _batch_parser(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's batch parser JSON-decodes every entry and encodes the batch again before any handler runs;
    the entries are handed on untouched instead (`_Entry.of_batch` reads them), each decoded and bounded once,
    by `decode`."""
    parsed = await original({**msg, "data": []})
    parsed.raw_message = msg
    return parsed


def _entry_body(fields: Any) -> tuple[bytes, dict[str, Any]]:
    """An entry's payload and headers, as FastStream's parser reads them; an entry it did not write (fields of
    its own, bytes that are not UTF-8) becomes one body made of its fields, for `decode` to refuse and park."""
    if isinstance(fields, dict) and isinstance(data := fields.get(b"__data__"), bytes):
        try:
            body, headers = BinaryMessageFormatV1.parse(data)
            return body, headers
        except Exception:  # not FastStream's format: the raw bytes, which decode parks
            return data, {}
    if isinstance(fields, dict):
        return b"&".join(_bytes(k) + b"=" + _bytes(v) for k, v in fields.items()), {}
    return _bytes(fields), {}


@dataclass
class _Entry:
    """One stream entry as the consumer handles it, read alone or in a batch: its payload, its headers, and how
    to ack it and count its deliveries."""

    entry_id: str
    raw: bytes
    headers: dict[str, Any]
    ack: Callable[[], Awaitable[Any]]
    deliveries: Callable[[], Awaitable[int]]

    @classmethod
    def of(cls, msg: RedisStreamMessage) -> "_Entry":
        raw = msg.body if isinstance(msg.body, bytes) else str(msg.body).encode()
        return cls(_entry_id(msg), raw, getattr(msg, "headers", None) or {}, msg.ack, msg.get_delivery_count)

    @classmethod
    def of_batch(cls, msg: RedisBatchStreamMessage, redis: Redis, group: str) -> "list[_Entry]":
        stream = msg.raw_message["channel"]
        entries = []
        for raw_id, fields in zip(msg.raw_message["message_ids"], msg.raw_message["data"], strict=True):
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            body, headers = _entry_body(fields)

            async def ack(entry_id: str = entry_id) -> Any:
                return await redis.xack(stream, group, entry_id)

            async def deliveries(entry_id: str = entry_id) -> int:
                pending = await redis.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
                return int(pending[0]["times_delivered"]) if pending else 1

            entries.append(cls(entry_id, body, headers, ack, deliveries))
        return entries


def carried_ids(msg: Any, item: BaseModel) -> dict[str, str]:
    """The ids a handled message's log lines carry: those of the message that caused it (its entry's headers,
    set by `publish`), then its own (`post_id`, `event_id`, `alert_id` fields), which win."""
    headers = getattr(msg, "headers", None) or {}
    ids = {k: v for k in ID_FIELDS if isinstance(v := headers.get(k), str) and v}
    ids.update({k: v for k in ID_FIELDS if isinstance(v := getattr(item, k, None), str) and v})
    return ids


def _entry_id(msg: RedisStreamMessage) -> str:
    ids = msg.raw_message.get("message_ids") or [b""]
    return ids[0].decode() if isinstance(ids[0], bytes) else str(ids[0])


async def publish(broker: RedisBroker, stream: str, message: BaseModel, settings: CommonSettings) -> None:
    """Publishes one message. Streams are trimmed by shared.trim once every group has acked, not here.

    The ids of the message being handled (`shared.logs.message_ids`) go along as headers, so the stage that
    consumes this one logs them too: an alert version carries the post_id of the post that fired it."""
    await broker.publish(to_wire(message), stream=stream, headers=current_ids() or None)


async def publish_many(broker: RedisBroker, redis: Redis, stream: str, messages: Sequence[BaseModel],
                       headers: Sequence[dict[str, str]] | None = None) -> None:
    """Publishes messages in one round trip (a Redis pipeline), in order. Each entry's headers carry the ids
    bound now and those of its own message (`post_id`, `event_id`, `alert_id`), as `publish` would while
    handling it, or `headers[i]` when given."""
    if not messages:
        return
    pipe = redis.pipeline(transaction=False)
    for n, message in enumerate(messages):
        ids = headers[n] if headers is not None else {
            k: v for k in ID_FIELDS if isinstance(v := getattr(message, k, None), str) and v}
        await broker.publish(to_wire(message), stream=stream, headers={**current_ids(), **ids} or None,
                             pipeline=pipe)
    await pipe.execute()


async def create_group(redis: Redis, stream: str, group: str) -> bool:
    """Creates `group` on `stream` at id 0 (the stream too if missing); False if it already existed.

    At 0, not `$`: a group lost with its stream (a flush) meets a new stream whose every entry is unread,
    and a group destroyed alone re-reads entries already handled, which idempotent handlers absorb. `$` could
    skip what was published between the loss and now."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


LAG_COUNT_CAP = 10_000
"""Entries counted at most when Redis does not give a group's lag (before Redis 7): a lag reads as this much
when it is at least this much."""
_LAG_SCRIPT = """
local n, start, cap = 0, ARGV[1], tonumber(ARGV[2])
while n < cap do
  local page = redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', math.min(1000, cap - n))
  if #page == 0 then break end
  n = n + #page
  start = page[#page][1]
end
return n
"""


async def group_info(redis: Redis, stream: str, group: str) -> dict[str, Any] | None:
    """XINFO GROUPS' entry for `group` (pending, lag, last-delivered-id), or None if it does not exist.

    Redis 6.2 (the embedded Redis of `watchfloor up`) has no `lag`: it is counted in the server, the entries
    after the group's last-delivered-id, at most LAG_COUNT_CAP (a bounded script, nothing sent back)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream: lost with its group
        return None
    for info in groups:
        name = info.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == group:
            out = dict(info)
            if "lag" not in out:
                last = out.get("last-delivered-id") or b"0-0"
                out["lag"] = int(await redis.eval(_LAG_SCRIPT, 1, stream,
                                                  last.decode() if isinstance(last, bytes) else str(last),
                                                  LAG_COUNT_CAP))
            return out
    return None


async def group_readers(redis: Redis, stream: str, group: str, within_s: float) -> int:
    """How many consumers of `group` tried to read within the last `within_s` seconds (XINFO CONSUMERS `idle`:
    a live consumer blocks in XREADGROUP again every fraction of a second). 0 when the group does not exist."""
    try:
        found = await redis.xinfo_consumers(stream, group)
    except ResponseError:  # no such stream or group: nobody reads it
        return 0
    return sum(1 for c in found if int(c.get("idle", 0)) <= within_s * 1000)


FORGET_CONSUMER_SECONDS = 3600.0
"""A group's consumer that has not tried to read for this long and holds no pending entry is deleted: each
process joins under a name of its own (host and pid), so every restart would otherwise leave one behind for
ever, and XINFO CONSUMERS (read by `/metrics` of the processes feeding the group) grows with them."""
PRUNE_EVERY_SECONDS = 600.0
_PRUNE_SCRIPT = """
local gone, limit = 0, tonumber(ARGV[2])
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) > limit then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    gone = gone + 1
  end
end
return gone
"""


async def forget_idle_consumers(redis: Redis, stream: str, group: str, idle_s: float) -> int:
    """Deletes the group's consumers idle over `idle_s` with nothing pending (checked and deleted in one script:
    a consumer cannot take an entry in between, so no pending entry is ever dropped); returns how many."""
    return int(await redis.eval(_PRUNE_SCRIPT, 1, stream, group, int(idle_s * 1000)))


class GroupWatch(Periodic):
    """Keeps this process's consumers consuming: recreates a lost consumer group (logged at ERROR, once per
    loss) and restarts a subscriber FastStream stopped (it stops for good on NOGROUP). Every PRUNE_EVERY_SECONDS
    it forgets the consumers that dead processes left in its groups (FORGET_CONSUMER_SECONDS)."""

    name = "consumer-group-watch"

    def __init__(self, broker: RedisBroker, redis: Redis, interval: float = GROUP_CHECK_SECONDS) -> None:
        super().__init__(interval)
        self._broker, self._redis = broker, redis
        self._errors = outage.LoopErrors("consumer group watch", logger, uses=(outage.REDIS,))
        self._pruned_at = float("-inf")

    def should_run(self) -> bool:
        return bool(getattr(self._broker, "running", True))

    async def round(self) -> None:
        await self.check()
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            for consumer in consumers(self._broker):
                if gone := await forget_idle_consumers(self._redis, consumer.stream, consumer.group,
                                                       FORGET_CONSUMER_SECONDS):
                    logger.info("forgot %d consumer(s) of group %s idle over %.0f s with nothing pending", gone,
                                consumer.group, FORGET_CONSUMER_SECONDS,
                                extra={"stage": consumer.stage, "stream": consumer.stream, "group": consumer.group})

    def failed(self, exc: Exception) -> None:  # Redis away: the next round tries again
        self._errors.failed(exc)

    def succeeded(self) -> None:
        self._errors.ok()

    async def check(self) -> list[str]:
        """One round; returns the stages whose group had to be recreated."""
        recreated = []
        for consumer in consumers(self._broker):
            if await group_info(self._redis, consumer.stream, consumer.group) is None:
                if await create_group(self._redis, consumer.stream, consumer.group):
                    recreated.append(consumer.stage)
                    logger.error(
                        "consumer group lost stream=%s group=%s; recreated from id 0 (Redis flushed or back "
                        "without its data?); consuming again", consumer.stream, consumer.group,
                        extra={"stage": consumer.stage, "stream": consumer.stream, "group": consumer.group},
                    )
            for sub in consumer.subscribers:
                if not getattr(sub, "running", True) and getattr(self._broker, "running", True):
                    await sub.start()
                    logger.warning("consumer resumed stream=%s group=%s consumer=%s", consumer.stream,
                                   consumer.group, sub.stream_sub.consumer,
                                   extra={"stage": consumer.stage, "stream": consumer.stream})
        return recreated


_WATCHES: "weakref.WeakKeyDictionary[RedisBroker, GroupWatch]" = weakref.WeakKeyDictionary()


async def start_broker(broker: RedisBroker, redis: Redis, *, watch_interval: float = GROUP_CHECK_SECONDS) -> None:
    """Creates the consumer groups from the start of their streams, starts the broker, then watches the groups.

    FastStream would create a missing group at `$` (skipping what was published before the group
    existed), and given `last_id="0"` for an existing group it reads only its own pending list,
    forever. Creating groups at `0` here and letting FastStream read `>` avoids both.
    """
    now = time.time()
    for consumer in consumers(broker):
        await create_group(redis, consumer.stream, consumer.group)
        consumer.started_at = now
    await broker.start()
    if consumers(broker):
        await stop_watch(broker)
        watch = _WATCHES[broker] = GroupWatch(broker, redis, watch_interval)
        watch.start()


async def stop_consuming(broker: RedisBroker) -> None:
    """Stops taking messages, first thing on shutdown: the group watch, then every subscriber at once. Each lets
    the message it is handling finish (SHUTDOWN_GRACE_SECONDS at most) and reads no more; what it has not acked
    stays pending for the next start. The broker stays connected, so the services can still publish as they
    stop; leaving `async with broker` disconnects it."""
    await stop_watch(broker)
    await asyncio.gather(*(sub.stop() for sub in broker.subscribers))


async def stop_watch(broker: RedisBroker) -> None:
    """Stops the group watch `start_broker` started (before the broker stops, or it would restart them)."""
    watch = _WATCHES.pop(broker, None)
    if watch is not None:
        await watch.stop()


class _Broker(RedisBroker):
    """A RedisBroker that stops its group watch before its subscribers, so the watch never restarts them."""

    async def stop(self, *args: Any, **kwargs: Any) -> None:
        await stop_watch(self)
        await super().stop(*args, **kwargs)


def make_broker(url: str) -> RedisBroker:
    """A broker without FastStream's per-message log lines (they cost ~30 %); our handlers log instead. On
    shutdown it waits SHUTDOWN_GRACE_SECONDS for messages being handled."""
    return _Broker(url, logger=None, specification_url=public_url(url), graceful_timeout=SHUTDOWN_GRACE_SECONDS)


def public_url(redis_url: str) -> str:
    """The broker's address as the AsyncAPI document shows it: no user, password or query string."""
    base = redis_url.partition("?")[0].partition("#")[0]
    scheme, sep, rest = base.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}"
