"""next_poll: interval after success, exponential backoff with jitter after failures, capped, never giving up."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.schedule import BackoffPolicy, PollOutcome, next_poll

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICY = BackoffPolicy(cap_seconds=6 * 3600)


@dataclass
class Src:
    interval_seconds: int = 300
    consecutive_failures: int = 0


def wait(source: Src, outcome: PollOutcome, seed: int = 1) -> float:
    return (next_poll(source, outcome, NOW, POLICY, random.Random(seed)) - NOW).total_seconds()


def test_success_waits_the_interval() -> None:
    assert wait(Src(interval_seconds=900, consecutive_failures=4), PollOutcome(ok=True)) == 900


@pytest.mark.parametrize(
    ("failures_before", "retryable", "expected"),
    [(0, True, 60), (1, True, 120), (3, True, 480), (0, False, 300), (1, False, 600), (2, False, 1200)],
    ids=["1st transient: 60 s", "2nd: x2", "4th: x8", "1st permanent: one interval", "x2", "x4"],
)
def test_backoff_doubles_per_failure_within_jitter(failures_before: int, retryable: bool, expected: float) -> None:
    waits = [wait(Src(consecutive_failures=failures_before), PollOutcome(ok=False, retryable=retryable), seed)
             for seed in range(50)]
    assert all(0.8 * expected <= w <= 1.2 * expected for w in waits)
    assert max(waits) - min(waits) > 0.2 * expected  # jitter spreads sources that failed together


def test_backoff_is_capped_and_never_gives_up() -> None:
    for failures in (12, 40, 10_000):
        w = wait(Src(consecutive_failures=failures), PollOutcome(ok=False))
        assert 0.8 * 6 * 3600 <= w <= 6 * 3600


@pytest.mark.parametrize(("retry_after", "expected_min"), [(7200, 7200), (30, 48), (10 * 86400, 6 * 3600)],
                         ids=["longer Retry-After wins", "shorter Retry-After: backoff wins", "Retry-After capped"])
def test_retry_after_is_respected(retry_after: float, expected_min: float) -> None:
    w = wait(Src(), PollOutcome(ok=False, retryable=True, retry_after=retry_after))
    assert expected_min <= w <= max(expected_min, 72)


def test_next_poll_is_aware_utc() -> None:
    assert next_poll(Src(), PollOutcome(ok=True), NOW) == NOW + timedelta(seconds=300)
