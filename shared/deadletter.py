"""Dead letters: a message that cannot be processed is parked here with its reason, never dropped.

Each stage has its own stream (`wf:dlq:<stage>`). An entry holds the reason, the original payload
bytes, where it came from and how often it was tried. `replay` puts payloads back on the stage's
input stream and removes them from the dead-letter stream only after the re-publish succeeded.

Bounded: a reason is cut at MAX_REASON_CHARS; a payload is kept whole up to MAX_PARKED_BYTES, and a
bigger one (only a message refused for its size can be) keeps its first MAX_PARKED_BYTES, marked
`truncated`, with its full size in the reason. A truncated letter is evidence, not replayable.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from shared import streams

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
MAX_PARKED_BYTES = 16 * 1024 * 1024
"""Payloads up to this size are parked whole (the consumers' own size limit); longer ones are cut."""
KEPT_OF_OVERSIZE = 64 * 1024
"""What is kept of a payload over MAX_PARKED_BYTES: enough to see what it was."""


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    stage: str
    reason: str
    payload: bytes
    origin_stream: str
    origin_id: str
    deliveries: int
    parked_at: str
    truncated: bool = False


async def park(
    redis: Redis, stage: str, payload: bytes, reason: str, *, origin_id: str = "", deliveries: int = 1
) -> str:
    """Parks `payload` in `wf:dlq:<stage>`; returns the dead-letter entry id. Logged once, at ERROR."""
    origin = streams.STREAM_FOR_STAGE.get(stage, "")
    truncated = len(payload) > MAX_PARKED_BYTES
    if truncated:
        reason = f"{reason} (payload of {len(payload)} bytes truncated to its first {KEPT_OF_OVERSIZE})"
        payload = payload[:KEPT_OF_OVERSIZE]
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    entry = await redis.xadd(
        streams.dlq_stream(stage),
        {
            "reason": reason,
            "payload": payload,
            "origin_stream": origin,
            "origin_id": origin_id,
            "deliveries": str(deliveries),
            "parked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "truncated": "1" if truncated else "0",
        },
    )
    entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
    logger.error(
        "parked stage=%s origin=%s:%s dlq=%s reason=%r", stage, origin, origin_id, entry_id, reason,
        extra={"stage": stage, "stream": origin, "entry_id": origin_id, "dlq_id": entry_id, "reason": reason,
               "deliveries": deliveries},
    )
    return entry_id


def _text(fields: dict[bytes, bytes], key: str) -> str:
    return fields.get(key.encode(), b"").decode("utf-8", "replace")


async def list_parked(redis: Redis, stage: str, count: int = 1000) -> list[DeadLetter]:
    rows = await redis.xrange(streams.dlq_stream(stage), count=count)
    return [
        DeadLetter(
            entry_id=entry_id.decode(),
            stage=stage,
            reason=_text(fields, "reason"),
            payload=fields.get(b"payload", b""),
            origin_stream=_text(fields, "origin_stream"),
            origin_id=_text(fields, "origin_id"),
            deliveries=int(_text(fields, "deliveries") or 1),
            parked_at=_text(fields, "parked_at"),
            truncated=_text(fields, "truncated") == "1",
        )
        for entry_id, fields in rows
    ]


async def replay(redis: Redis, stage: str, entry_ids: list[str] | None = None) -> int:
    """Re-publishes parked payloads to the stage's input stream; returns how many were replayed."""
    origin = streams.STREAM_FOR_STAGE[stage]
    replayed = 0
    for letter in await list_parked(redis, stage):
        if entry_ids and letter.entry_id not in entry_ids:
            continue
        if letter.truncated:  # only its first bytes were kept: replayed, it would only be parked again
            logger.warning("not replayed stage=%s dlq=%s reason=\"payload truncated when parked\"", stage,
                           letter.entry_id)
            continue
        # FastStream reads a plain `__data__` field as the message body.
        await redis.xadd(origin, {"__data__": letter.payload})
        await redis.xdel(streams.dlq_stream(stage), letter.entry_id)
        replayed += 1
    if replayed:
        logger.warning("replayed stage=%s count=%d onto %s", stage, replayed, origin)
    return replayed
