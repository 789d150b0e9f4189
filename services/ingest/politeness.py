"""Politeness per host, shared by every ingest process through Redis: a minimum spacing between requests to
one host, and a host-wide hold when it answers 429 or 503 with `Retry-After`.

Each host has one key, `wf:host:<host>`, holding the earliest time (Redis server clock, ms) of its next
request. A poll asks for its turn with one Lua script, atomically: if the host is free, the turn is granted
now and the key moves to now + spacing; if not, nothing changes and the poll sleeps until the host is free,
then asks again. A turn is granted at the moment the request goes out (not reserved ahead and sent late),
so two requests are never closer than the spacing, and the server's clock is the only clock, so processes on
machines with skewed clocks agree. A host that will not be free within `max_wait` is not waited for: the poll
is deferred to then instead of holding a poll slot while it sleeps (a long Retry-After, or many sources of
one host due at once).

If Redis cannot be reached, the same rule is kept in this process's memory (reported once as a Redis
outage): one process stays polite, several may together exceed the spacing until Redis is back.
"""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis.asyncio
from redis import exceptions as redis_errors

from shared.outage import REDIS, outage

KEY_PREFIX = "wf:host:"
KEEP_MS = 60_000  # a key outlives its last turn by this much, so idle hosts leave nothing behind
REDIS_RETRY_SECONDS = 5.0  # while Redis is down, it is tried again this often, not on every turn (a failed
                           # connect costs seconds of retries)

# KEYS[1] host key; ARGV: spacing ms, hold ms (Retry-After) or -1, ms a key outlives its last turn.
# Returns 0 when the turn is granted (or the hold set), else the ms until the host is free (nothing changed).
_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
local hold = tonumber(ARGV[2])
if hold >= 0 then
  if now + hold > free_at then
    redis.call('SET', KEYS[1], now + hold, 'PX', hold + tonumber(ARGV[3]))
  end
  return 0
end
if free_at > now then
  return free_at - now
end
local spacing = tonumber(ARGV[1])
if spacing > 0 then
  redis.call('SET', KEYS[1], now + spacing, 'PX', spacing + tonumber(ARGV[3]))
end
return 0
"""


@dataclass(frozen=True)
class Turn:
    """A turn taken after waiting `wait` seconds; or, `deferred`, not taken: the host is free in `wait`
    seconds, poll the source again then."""

    wait: float
    deferred: bool = False


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class HostSpacing:
    """Seconds between two requests to a host: the most specific entry of `per_host` ("t.me" also covers
    "www.t.me"), else `default`."""

    def __init__(self, default: float, per_host: dict[str, float]) -> None:
        self._default = default
        self._per_host = {h.lower().strip("."): float(s) for h, s in per_host.items()}

    def of(self, host: str) -> float:
        name = host.lower()
        while True:
            if name in self._per_host:
                return self._per_host[name]
            if "." not in name:
                return self._default
            name = name.split(".", 1)[1]


class HostGate:
    """Turns at hosts, from Redis (every ingest process) or, while Redis is down, from memory."""

    def __init__(self, client: redis.asyncio.Redis, spacing: HostSpacing, *, max_wait: float) -> None:
        self._client = client
        self._spacing = spacing
        self._max_wait = max_wait
        self._script = client.register_script(_TURN)
        self._local: dict[str, float] = {}  # host -> monotonic time it is free again (Redis down)
        self._redis_retry_at = 0.0  # monotonic; after a failure, turns are local until then

    async def wait_turn(self, host: str) -> Turn:
        """Waits for this process's turn at `host` and takes it: send the request right after. If the host is
        not free within `max_wait` of the first ask, returns with `deferred` and the seconds until it is free."""
        spacing = self._spacing.of(host)
        waited = 0.0
        while True:
            busy = await self._busy_for(host, spacing)
            if busy <= 0:
                return Turn(waited)
            if waited + busy > self._max_wait:
                return Turn(busy, deferred=True)
            await asyncio.sleep(busy)
            waited += busy

    async def _busy_for(self, host: str, spacing: float) -> float:
        """0 if the turn is now taken, else the seconds until the host is free."""
        if time.monotonic() < self._redis_retry_at:
            return self._local_busy_for(host, spacing)
        try:
            busy_ms = await self._run(host, spacing_ms=round(spacing * 1000), hold_ms=-1)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            outage(REDIS).failed(exc, where="host spacing")
            self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            return self._local_busy_for(host, spacing)
        outage(REDIS).ok()
        return busy_ms / 1000

    async def hold(self, host: str, seconds: float) -> None:
        """No request to `host` from any process for `seconds` (its Retry-After), unless held longer already."""
        now = time.monotonic()
        if now >= self._redis_retry_at:
            try:
                await self._run(host, spacing_ms=0, hold_ms=max(0, round(seconds * 1000)))
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                outage(REDIS).failed(exc, where="host spacing")
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            now = time.monotonic()
        self._local[host] = max(self._local.get(host, now), now + seconds)

    async def _run(self, host: str, *, spacing_ms: int, hold_ms: int) -> int:
        return int(await self._script(keys=[KEY_PREFIX + host], args=[spacing_ms, hold_ms, KEEP_MS]))

    def _local_busy_for(self, host: str, spacing: float) -> float:
        now = time.monotonic()
        free_at = self._local.get(host, now)
        if free_at > now:
            return free_at - now
        self._local[host] = now + spacing
        return 0.0
