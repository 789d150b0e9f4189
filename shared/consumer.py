"""The one consumer pattern every stage uses (DESIGN §2; ../shared/notes/faststream-redis.md).

    XREADGROUP ──▶ validate ──invalid──▶ park in wf:dlq:<stage>, XACK
                      │
                      ▼
                   handle ──ok──▶ XACK          (only after the handler's effects are committed)
                      │
                      └─raises─▶ leave pending ──(claim_idle_ms)──▶ XAUTOCLAIM by the reclaimer
                                   └─ delivered max_deliveries times ──▶ park with the error, XACK

FastStream's default policy strands a failed message in the pending list and Redis has no nack,
so every subscriber here is MANUAL-ack and a second, reclaiming subscriber brings stuck entries back.
This module and the services' `app.py` are the only FastStream users.
"""

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream import AckPolicy
from faststream.redis import RedisBroker, RedisStreamMessage, StreamSub
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared import deadletter, streams
from shared.messages import to_wire
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def validation_reason(model: type[BaseModel], exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"invalid {model.__name__}: {where}: {first.get('msg')}"


def decode(model: type[M], raw: bytes) -> M:
    """Parses one stream payload; raises ValueError with a reason a person can act on."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValueError(validation_reason(model, exc)) from exc


def subscribe(
    broker: RedisBroker,
    *,
    stage: str,
    model: type[M],
    handle: Callable[[M], Awaitable[None]],
    settings: CommonSettings,
    redis: Redis,
    max_records: int = 50,
) -> None:
    """Registers the stage's consumer-group subscriber and its reclaimer on `broker`."""
    stream = streams.STREAM_FOR_STAGE[stage]
    group = streams.GROUP_FOR_STAGE[stage]
    _GROUPS.setdefault(id(broker), set()).add((stream, group))

    async def process(msg: RedisStreamMessage) -> None:
        started = time.perf_counter()
        raw = msg.body if isinstance(msg.body, bytes) else str(msg.body).encode()
        ids = msg.raw_message.get("message_ids") or [b""]
        entry_id = ids[0].decode() if isinstance(ids[0], bytes) else str(ids[0])
        try:
            item = decode(model, raw)
        except ValueError as exc:
            await deadletter.park(redis, stage, raw, str(exc), origin_id=entry_id)
            await msg.ack()
            return
        try:
            await handle(item)
        except Exception as exc:
            deliveries = await msg.get_delivery_count()
            reason = f"{type(exc).__name__}: {exc}"
            if deliveries >= settings.max_deliveries:
                await deadletter.park(
                    redis, stage, raw, f"failed {deliveries} times: {reason}",
                    origin_id=entry_id, deliveries=deliveries,
                )
                await msg.ack()
            else:
                # Left pending on purpose: the reclaimer retries it after claim_idle_ms.
                logger.warning(
                    "retry stage=%s entry=%s attempt=%d reason=%r next_in=%.1fs",
                    stage, entry_id, deliveries, reason, settings.claim_idle_ms / 1000,
                )
            return
        # Ack only after the handler's commit: a crash before this line means redelivery, never loss.
        await msg.ack()
        logger.debug("handled stage=%s entry=%s %.0fms", stage, entry_id, (time.perf_counter() - started) * 1000)

    # Two distinct callables: FastStream keys a handler by its function, so one function registered
    # twice would leave one of the subscribers without a handler.
    @broker.subscriber(
        stream=StreamSub(stream, group=group, consumer=settings.consumer_name, max_records=max_records),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_new(msg: RedisStreamMessage) -> None:
        await process(msg)

    @broker.subscriber(
        stream=StreamSub(stream, group=group, consumer=f"{settings.consumer_name}-reclaim",
                         min_idle_time=settings.claim_idle_ms),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_reclaimed(msg: RedisStreamMessage) -> None:
        await process(msg)


async def publish(broker: RedisBroker, stream: str, message: BaseModel, settings: CommonSettings) -> None:
    """Publishes one message. Streams are trimmed by shared.trim once every group has acked, not here."""
    await broker.publish(to_wire(message), stream=stream)


_GROUPS: dict[int, set[tuple[str, str]]] = {}


async def start_broker(broker: RedisBroker, redis: Redis) -> None:
    """Creates the consumer groups from the start of their streams, then starts the broker.

    FastStream would create a missing group at `$` (skipping what was published before the group
    existed), and given `last_id="0"` for an existing group it reads only its own pending list,
    forever. Creating groups at `0` here and letting FastStream read `>` avoids both.
    """
    for stream, group in sorted(_GROUPS.get(id(broker), ())):
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    await broker.start()


def make_broker(url: str) -> RedisBroker:
    """A broker without FastStream's per-message log lines (they cost ~30 %); our handlers log instead."""
    return RedisBroker(url, logger=None)


