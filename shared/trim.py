"""Stream trimming that never drops an entry a consumer group still needs (DESIGN §2).

Every stage commits what it read to the event log before it acks, so an entry is safe to trim once
every group on its stream has acked it: below both the group's last-delivered id and its oldest
pending id. A stream nobody consumes yet is left whole.
"""

import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.periodic import Periodic

logger = logging.getLogger(__name__)


def _id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def consumed_up_to(redis: Redis, stream: str) -> str | None:
    """The lowest entry id some group still needs, or None when no group reads the stream."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return None
    if not groups:
        return None
    needed: list[tuple[int, int]] = []
    for group in groups:
        name = group["name"]
        needed.append(_id(group["last-delivered-id"]))
        if group["pending"]:
            summary = await redis.xpending(stream, name)
            needed.append(_id(summary["min"]))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


async def trim_consumed(redis: Redis, stream: str, *, exact: bool = False) -> int:
    """Trims the entries every group has acked; returns how many went. Approximate by default (Redis then
    frees whole nodes only, which is cheap and may keep a few acked entries a while longer)."""
    minid = await consumed_up_to(redis, stream)
    if minid is None:
        return 0
    return int(await redis.xtrim(stream, minid=minid, approximate=not exact))


class Trimmer(Periodic):
    """Trims the given streams every `interval` seconds while the process runs."""

    name = "stream-trimmer"

    def __init__(self, redis: Redis, streams: list[str], interval: float) -> None:
        super().__init__(interval)
        self._redis, self._streams = redis, streams

    async def round(self) -> None:
        for stream in self._streams:
            try:
                trimmed = await trim_consumed(self._redis, stream)
            except Exception as exc:  # Redis away: the next round tries again; nothing is lost by waiting
                logger.warning("trim failed stream=%s reason=%r", stream, f"{type(exc).__name__}: {exc}")
                continue
            if trimmed:
                logger.info("trimmed stream=%s entries=%d (acked by every group)", stream, trimmed)
