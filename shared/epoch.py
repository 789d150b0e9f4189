"""Noticing that Redis came back without its data, and publishing again what it lost.

Streams live in Redis, the event log in SQL. When Redis restarts empty (a flush, a new volume, a lost
append-only file), the entries it held, published but not yet handled, are gone; shared.consumer recreates
the consumer groups, but nothing would bring the entries back. So every producing stage keeps a marker key,
`wf:epoch:<stage>`, and checks it every few seconds: when the marker is gone, the one process that sets it
again publishes its outputs of the last `replay_window` once more from the database (ingest its posts, classify
its events). Every consumer is idempotent on its message's id, so an entry that had been handled changes
nothing. The alert stage needs no marker: its outbox compares what it published (a Redis hash, gone too) with
the database and sends again whatever is missing.

A replay that fails (the database is down too) drops the marker again, so that the next check retries it.
"""

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from shared.periodic import Periodic

logger = logging.getLogger(__name__)

Replay = Callable[[datetime], Awaitable[int]]
"""Publishes again what the stage produced since the given time; returns how many messages."""


class EpochWatch(Periodic):
    name = "redis-epoch-watch"

    def __init__(self, redis: Redis, stage: str, replay: Replay, window: timedelta, every_s: float = 2.0) -> None:
        super().__init__(every_s)
        self.redis, self.stage, self.replay, self.window = redis, stage, replay, window
        self.key = f"wf:epoch:{stage}"
        self._seen: bytes | None = None

    async def check(self, now: datetime | None = None) -> int:
        """One look at the marker; returns how many messages were published again (0 almost always)."""
        current = await self.redis.get(self.key)
        if current is not None:
            self._seen = current
            return 0
        token = secrets.token_hex(8).encode()
        if not await self.redis.set(self.key, token, nx=True):
            self._seen = await self.redis.get(self.key)  # another process of this stage took it: it replays
            return 0
        first, self._seen = self._seen is None, token
        if first:
            return 0  # this process's first look: a new Redis, or one it never saw holding anything
        since = (now or datetime.now(UTC)) - self.window
        logger.error("Redis came back without its data: publishing again %s output since %s (the entries it "
                     "held are gone; consumers ignore what they already handled)", self.stage,
                     since.isoformat(timespec="seconds"), extra={"stage": self.stage})
        try:
            count = await self.replay(since)
        except Exception:
            await self.redis.delete(self.key)  # let the next check try again
            self._seen = b"-"
            raise
        logger.error("published again %d %s messages after Redis lost its data", count, self.stage,
                     extra={"stage": self.stage, "count": count})
        return count

    async def round(self) -> None:
        await self.check()

    def failed(self, exc: Exception) -> None:  # Redis or the database away: the outage is logged where it is met
        logger.debug("epoch check failed stage=%s reason=%r", self.stage, exc)
