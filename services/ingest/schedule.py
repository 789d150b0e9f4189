"""When to poll a source next (pure): its interval after a success, exponential backoff after failures.

A broken source is never given up on (the most repeated complaint about Miniflux is feeds that stop
refreshing after three errors): it is retried ever less often, up to `cap`, and recovers by itself.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Schedulable(Protocol):
    interval_seconds: int
    consecutive_failures: int  # before the poll being scheduled


@dataclass(frozen=True)
class PollOutcome:
    ok: bool
    retryable: bool = True
    retry_after: float | None = None  # seconds, from the server's Retry-After


@dataclass(frozen=True)
class BackoffPolicy:
    cap_seconds: float = 6 * 3600
    first_retry_seconds: float = 60.0  # a transient error (timeout, 5xx) is retried sooner than the interval
    jitter: float = 0.2  # ±20 %, so sources that failed together do not retry together


def backoff_seconds(source: Schedulable, outcome: PollOutcome, policy: BackoffPolicy) -> float:
    """The un-jittered wait after this failure: doubles with each consecutive failure, capped."""
    failures = source.consecutive_failures + 1
    base = float(source.interval_seconds)
    if outcome.retryable:
        base = min(base, policy.first_retry_seconds)
    return min(policy.cap_seconds, base * 2 ** min(failures - 1, 32))


def next_poll(
    source: Schedulable,
    outcome: PollOutcome,
    now: datetime,
    policy: BackoffPolicy = BackoffPolicy(),
    rng: random.Random | None = None,
) -> datetime:
    """Returns the next poll time. After a success: `now + interval`. After a failure: exponential backoff
    with jitter, never later than `cap`; never earlier than the server's Retry-After (itself capped)."""
    if outcome.ok:
        return now + timedelta(seconds=source.interval_seconds)
    delay = backoff_seconds(source, outcome, policy)
    delay *= (rng or random).uniform(1 - policy.jitter, 1 + policy.jitter)
    delay = min(delay, policy.cap_seconds)
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, policy.cap_seconds))
    return now + timedelta(seconds=delay)
