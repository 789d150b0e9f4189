"""Politeness per host, shared by every ingest process through Redis: a minimum spacing between requests to
one host, and a host-wide hold when it answers 429 or 503 with `Retry-After`.

Each host has one key, `wf:host:<host>`, holding the earliest time (Redis server clock, ms) of its next
request. A poll takes a turn with one Lua script, atomically: the turn is max(key, now), and the key moves to
turn + spacing. The server's clock is the only clock, so processes on machines with skewed clocks still space
their requests. A turn further away than `max_wait` is not taken: the poll is deferred to it instead of
holding a poll slot while it sleeps (a long Retry-After, or many sources of one host due at once).

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

# KEYS[1] host key; ARGV: spacing ms, hold ms (Retry-After) or -1, max wait ms, ms a key outlives its turn.
# Returns the wait in ms before this turn; with a hold, or when the turn is over max wait, nothing is taken
# and the wait returned is how long until the host is free (the caller defers).
_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
local hold = tonumber(ARGV[2])
if hold >= 0 then
  if now + hold > free_at then
    redis.call('SET', KEYS[1], now + hold, 'PX', hold + tonumber(ARGV[4]))
  end
  return 0
end
local turn = math.max(free_at, now)
if turn - now > tonumber(ARGV[3]) then
  return turn - now
end
local nxt = turn + tonumber(ARGV[1])
redis.call('SET', KEYS[1], nxt, 'PX', nxt - now + tonumber(ARGV[4]))
return turn - now
"""


@dataclass(frozen=True)
class Turn:
    """When this process may send its request to the host: `wait` seconds from now. `deferred`: the turn
    was too far away and was not taken; poll the source again in `wait` seconds."""

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

    async def turn(self, host: str) -> Turn:
        """Takes this process's next turn at `host`, or says how long to defer if it is beyond `max_wait`."""
        spacing = self._spacing.of(host)
        try:
            wait_ms = await self._run(host, spacing_ms=round(spacing * 1000), hold_ms=-1)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            outage(REDIS).failed(exc, where="host spacing")
            return self._local_turn(host, spacing)
        outage(REDIS).ok()
        wait = wait_ms / 1000
        return Turn(wait, deferred=wait > self._max_wait)

    async def wait_turn(self, host: str) -> Turn:
        """`turn`, then sleeps until it, unless it was deferred."""
        turn = await self.turn(host)
        if turn.wait > 0 and not turn.deferred:
            await asyncio.sleep(turn.wait)
        return turn

    async def hold(self, host: str, seconds: float) -> None:
        """No request to `host` from any process for `seconds` (its Retry-After), unless held longer already."""
        try:
            await self._run(host, spacing_ms=0, hold_ms=max(0, round(seconds * 1000)))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            outage(REDIS).failed(exc, where="host spacing")
        now = time.monotonic()
        self._local[host] = max(self._local.get(host, now), now + seconds)

    async def _run(self, host: str, *, spacing_ms: int, hold_ms: int) -> int:
        result = await self._script(keys=[KEY_PREFIX + host],
                                    args=[spacing_ms, hold_ms, round(self._max_wait * 1000), KEEP_MS])
        return int(result)

    def _local_turn(self, host: str, spacing: float) -> Turn:
        now = time.monotonic()
        turn = max(self._local.get(host, now), now)
        if turn - now > self._max_wait:
            return Turn(turn - now, deferred=True)
        self._local[host] = turn + spacing
        return Turn(turn - now)
