"""What `/health` (alive?) and `/health/ready` (doing its job?) say about this process.

Liveness answers 200 while the process lives and shows each consumer: its stream and group, pending and lag
(XINFO GROUPS), what this process handled and when. Readiness answers 503 when the process cannot do its
job: the database or Redis unreachable, a consumer's task dead, its group missing, or a backlog that nothing
has touched for `stuck_after` seconds.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import consumer as consumers_
from shared import store_metrics, streams
from shared.metrics import GroupReading, StateReading
from shared.outage import describe
from shared.periodic import Periodic

if TYPE_CHECKING:  # the broker is only passed through: shared.consumer stays the one FastStream user here
    from faststream.redis import RedisBroker

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


def stuck_after_seconds(claim_idle_ms: int) -> float:
    """A backlog untouched this long means a stuck consumer: past the reclaim of a dead worker's entries."""
    return max(60.0, 3 * claim_idle_ms / 1000)


@dataclass(frozen=True)
class ConsumerView:
    """One consumer as seen now: this process's side and Redis's side of it."""

    stage: str
    stream: str
    group: str
    alive: bool
    group_exists: bool | None  # None: Redis could not be asked
    pending: int | None
    lag: int | None
    dlq: int | None
    handled: int
    parked: int
    last_handled_at: float | None
    started_at: float | None
    last_error: str | None

    def problem(self, now: float, stuck_after: float) -> str | None:
        """Why this consumer is not doing its job, or None."""
        if not self.alive:
            return f"consumer {self.stage}: its read task is not running"
        if self.group_exists is False:
            return f"consumer {self.stage}: group {self.group} on {self.stream} is missing"
        backlog = (self.pending or 0) + (self.lag or 0)
        since = max(t for t in (self.last_handled_at, self.started_at, 0.0) if t is not None)
        if backlog and since and now - since > stuck_after:
            return (f"consumer {self.stage}: {backlog} entries waiting and nothing handled for "
                    f"{now - since:.0f} s (limit {stuck_after:.0f} s)")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "stream": self.stream, "group": self.group, "alive": self.alive,
            "group_exists": self.group_exists, "pending": self.pending, "lag": self.lag, "parked_total": self.dlq,
            "handled": self.handled, "parked": self.parked, "last_handled_at": _iso(self.last_handled_at),
            "last_error": self.last_error,
        }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


async def view_consumers(broker: "RedisBroker", redis: Redis) -> tuple[list[ConsumerView], str | None]:
    """Every consumer of `broker`, with Redis's figures when Redis answers in time; and Redis's error if not."""
    found = consumers_.consumers(broker)
    infos: dict[str, tuple[dict[str, Any] | None, int]] = {}
    redis_error = None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            for c in found:
                info = await consumers_.group_info(redis, c.stream, c.group)
                infos[c.stage] = (info, int(await redis.xlen(streams.dlq_stream(c.stage))))
    except Exception as exc:  # Redis away or slow: the view says so, the figures stay unknown
        redis_error = describe(exc) if not isinstance(exc, TimeoutError) else "Redis did not answer in time"
    views = []
    for c in found:
        known = c.stage in infos
        info, dlq = infos[c.stage] if known else (None, None)
        views.append(ConsumerView(
            stage=c.stage, stream=c.stream, group=c.group, alive=c.alive(),
            group_exists=(info is not None) if known else None,
            pending=int(info["pending"]) if info else None,
            lag=int(info["lag"]) if info and info.get("lag") is not None else None,
            dlq=dlq, handled=c.handled, parked=c.parked, last_handled_at=c.last_handled_at,
            started_at=c.started_at, last_error=c.last_error,
        ))
    return views, redis_error


@dataclass(frozen=True)
class DownstreamView:
    """A consumer group in another process that reads what this process publishes, as seen now: whether
    anything reads it. A `run alert --no-deliver` with no `run deliver` anywhere decides alerts that nobody
    sends; this is how that process says so."""

    stage: str
    stream: str
    group: str
    group_exists: bool
    pending: int
    lag: int | None
    readers: int  # consumers that tried to read within `within_s`
    within_s: float

    def problem(self) -> str | None:
        """Why the work this process hands on is not being taken, or None."""
        backlog = self.pending + (self.lag or 0)
        if not backlog or self.readers:
            return None
        group = f"group {self.group}" if self.group_exists else f"group {self.group} (not created yet)"
        return (f"{backlog} entries on {self.stream} wait for {group}, which no process has read for "
                f"{self.within_s:.0f} s: start `{streams.COMMAND_FOR_STAGE[self.stage]}`")

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "stream": self.stream, "group": self.group, "group_exists": self.group_exists,
                "pending": self.pending, "lag": self.lag, "readers": self.readers, "problem": self.problem()}


async def view_downstream(broker: "RedisBroker", redis: Redis, within_s: float) -> list[DownstreamView]:
    """The groups this process feeds and does not consume (`consumer.downstream`), read now; [] when Redis does
    not answer in CHECK_TIMEOUT_SECONDS (`view_consumers` reports that). A group not created yet (its consumer
    never started) will read the stream from its start: its lag is the stream's length."""
    views = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            for stage, stream, group in consumers_.downstream(broker):
                info = await consumers_.group_info(redis, stream, group)
                if info is None:  # nobody ever read it: all of the stream waits
                    views.append(DownstreamView(stage, stream, group, False, 0, int(await redis.xlen(stream)), 0,
                                                within_s))
                    continue
                lag = int(info["lag"]) if info.get("lag") is not None else None
                readers = await consumers_.group_readers(redis, stream, group, within_s)
                views.append(DownstreamView(stage, stream, group, True, int(info["pending"]), lag, readers, within_s))
    except (RedisError, OSError, TimeoutError):  # Redis away or slow: /health's `redis` says so
        return []
    return views


class DownstreamWatch(Periodic):
    """Says in the log, at WARNING, when what this process publishes waits for a consumer group that no process
    reads (`DownstreamView.problem`): when it begins, again every `remind_s` while it lasts, and at INFO when
    the group is read again. Started only by a process that feeds groups it does not consume."""

    name = "downstream-watch"

    def __init__(self, broker: "RedisBroker", redis: Redis, within_s: float, interval: float = 10.0,
                 remind_s: float = 600.0) -> None:
        super().__init__(interval)
        self._broker, self._redis, self._within_s, self._remind_s = broker, redis, within_s, remind_s
        self._warned: dict[tuple[str, str], float] = {}  # (stream, group) -> when last warned (monotonic)

    async def round(self) -> None:
        now = time.monotonic()
        for view in await view_downstream(self._broker, self._redis, self._within_s):
            key, fields = (view.stream, view.group), {"stream": view.stream, "group": view.group}
            if problem := view.problem():
                if now - self._warned.get(key, float("-inf")) >= self._remind_s:
                    logger.warning("nobody consumes %s: %s", view.group, problem, extra={**fields, "reason": problem})
                    self._warned[key] = now
            elif self._warned.pop(key, None) is not None:
                logger.info("group %s on %s is read again", view.group, view.stream, extra=fields)

    def failed(self, exc: Exception) -> None:  # not Redis (view_downstream absorbs that): a bug, said each round
        logger.error("downstream watch failed: %s", describe(exc), exc_info=exc)


async def liveness(broker: "RedisBroker", redis: Redis, *, stuck_after: float) -> dict[str, Any]:
    """200 while the process lives, whatever it says: only a dead process fails it."""
    views, redis_error = await view_consumers(broker, redis)
    out: dict[str, Any] = {"status": "ok", "consumers": [v.as_dict() for v in views]}
    if downstream := await view_downstream(broker, redis, stuck_after):
        out["downstream"] = [v.as_dict() for v in downstream]
    if redis_error:
        out["redis"] = redis_error
    return out


async def readiness(
    broker: "RedisBroker", redis: Redis, sessions: async_sessionmaker[AsyncSession], *, stuck_after: float,
) -> tuple[bool, dict[str, Any]]:
    """(ready, report): not ready when the database or Redis is unreachable or a consumer is stuck. What this
    process hands on and nobody takes is a warning, not a reason: restarting this process would not help."""
    problems: list[str] = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), sessions() as session:
            await session.execute(sa.text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        database = describe(exc) if not isinstance(exc, TimeoutError) else "the database did not answer in time"
        problems.append(f"database unavailable: {database}")
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await redis.ping()
        redis_state = "ok"
    except Exception as exc:
        redis_state = describe(exc) if not isinstance(exc, TimeoutError) else "Redis did not answer in time"
        problems.append(f"redis unavailable: {redis_state}")
    views, _ = await view_consumers(broker, redis)
    now = time.time()
    problems += [p for v in views if (p := v.problem(now, stuck_after))]
    warnings = [p for v in await view_downstream(broker, redis, stuck_after) if (p := v.problem())]
    return not problems, {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "warnings": warnings,
        "database": database,
        "redis": redis_state,
        "consumers": [v.as_dict() for v in views],
    }


async def state_reading(
    broker: "RedisBroker", redis: Redis, sessions: async_sessionmaker[AsyncSession], *, version: str, services: str,
    sources: bool, subscriptions: bool, stuck_after: float,
) -> StateReading:
    """The shared state `/metrics` shows, read now at bounded cost: the XINFO GROUPS and XLEN of `view_consumers`
    and `view_downstream` (this process's consumer groups and those it feeds, the figures /health shows), and, if
    asked, two COUNT queries; each side within CHECK_TIMEOUT_SECONDS. Never raises: a dependency that does not
    answer is flagged and its series left out."""
    views, redis_error = await view_consumers(broker, redis)
    downstream = await view_downstream(broker, redis, stuck_after) if redis_error is None else []
    reading = StateReading(
        version=version, services=services,
        groups=[GroupReading(v.stage, v.stream, v.group, v.lag, v.pending, v.dlq) for v in views]
        + [GroupReading(v.stage, v.stream, v.group, v.lag, v.pending, None, v.readers) for v in downstream],
        errors={"redis": redis_error is not None},
    )
    if not (sources or subscriptions):
        return reading
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), sessions() as session:
            watched = await store_metrics.watched_sources(session) if sources else None
            disabled = await store_metrics.disabled_subscriptions(session) if subscriptions else None
    except Exception:  # the database away or slow: /health/ready says why; here the series are left out
        return replace(reading, errors={**reading.errors, "database": True})
    return replace(reading, sources=watched, subscriptions_disabled=disabled,
                   errors={**reading.errors, "database": False})
