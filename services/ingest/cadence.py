"""A source's usual rhythm, learned from its own posts, and whether it broke it (pure: no I/O, `now` passed in).

    learn(cadence, post_times, stored_at)   each post newer than the newest learned adds one gap between posts:
                                            a running mean (exponentially weighted, so a source that changes pace
                                            is followed) and the longest gap ending on each of the last
                                            `history_days` days it posted. O(1) a post, a few hundred bytes a
                                            source; the posts table is never scanned.
    watch(source, now, policy)              what should be raised on it now: failing, silent, or nothing.

Why the longest gap of a day, and its median over the days: a news outlet that sleeps eight hours a night has an
eight-hour gap every day however often it posts by day, so a mean or a quantile of all its gaps would call every
night a silence; the median over days ignores the one day it was down. A source is silent when it has been quiet
for longer than max(floor, factor × that typical longest gap). The gaps are those between publication times
(a new feed's read-back teaches its rhythm at once), clamped to when the post was stored.

Quiet is measured up to the last successful poll of a polled source, not up to now: an ingest that was stopped
for a night did not hear silence, it heard nothing. A push source is measured up to now.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Literal, Protocol

WatchState = Literal["silent", "failing"]
EWMA_WEIGHT = 0.1
"""Weight of the newest gap in the running mean: about the last twenty gaps count."""


@dataclass(frozen=True)
class WatchPolicy:
    min_posts: int = 8
    silent_factor: float = 2.0
    silent_floor: timedelta = timedelta(hours=1)
    failing_after: timedelta = timedelta(hours=3)
    history_days: int = 14


@dataclass(frozen=True)
class Cadence:
    """What is learned of a source's rhythm (stored on its `sources` row)."""

    posts: int = 0
    mean_gap_s: float | None = None
    daily_longest: tuple[tuple[str, float], ...] = ()  # (ISO day, seconds), oldest first
    learned_until: datetime | None = None


def learn(cadence: Cadence, post_times: list[datetime | None], stored_at: datetime, history_days: int = 14
          ) -> Cadence:
    """`cadence` with newly stored posts learned. A post's time is its publication time, or `stored_at` when it
    has none or claims a time after it; a post not newer than the newest learned (a read-back, a repost of old
    news) teaches nothing."""
    times = sorted(min(t, stored_at) if t is not None else stored_at for t in post_times)
    posts, mean, longest, last = cadence.posts, cadence.mean_gap_s, list(cadence.daily_longest), cadence.learned_until
    for when in times:
        if last is not None and when <= last:
            continue
        if last is not None:
            gap = (when - last).total_seconds()
            mean = gap if mean is None else mean + EWMA_WEIGHT * (gap - mean)
            day = when.date().isoformat()
            if longest and longest[-1][0] == day:
                longest[-1] = (day, max(longest[-1][1], gap))
            else:
                longest.append((day, gap))
        posts, last = posts + 1, when
    return Cadence(posts, mean, tuple(longest[-history_days:]), last)


def typical_longest_gap(cadence: Cadence) -> float | None:
    """The median of the longest gap of each day learned, in seconds; None before any gap."""
    return median(g for _, g in cadence.daily_longest) if cadence.daily_longest else None


def silent_after(cadence: Cadence, policy: WatchPolicy) -> timedelta | None:
    """How long a quiet spell must last to be a silence; None while too little is learned."""
    typical = typical_longest_gap(cadence)
    if cadence.posts < policy.min_posts or typical is None:
        return None
    return max(policy.silent_floor, timedelta(seconds=policy.silent_factor * typical))


class Watched(Protocol):
    """What the decision reads of a source (a `sources` row, or a test's dataclass)."""

    kind: str
    enabled: bool
    removed_at: datetime | None
    last_post_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    consecutive_failures: int
    last_error: str | None
    watch_state: str | None
    watch_since: datetime | None


@dataclass(frozen=True)
class Watch:
    """What should be raised on a source now (`state` None: nothing), and why."""

    state: WatchState | None
    reason: str = ""


@dataclass(frozen=True)
class Transition:
    """What changes: the raised alert resolved (with why), a new one raised, or both (silent -> failing)."""

    resolve: WatchState | None = None
    resolved_reason: str = ""
    raise_: Watch | None = None


def watch(source: Watched, cadence: Cadence, now: datetime, policy: WatchPolicy) -> Watch:
    """What should be raised now; with `state` None, `reason` says why what is raised ends. Failing wins over
    silent (a source that cannot be read is not known to be quiet), and a silence stays raised through a short
    run of failures; a disabled or removed source never alerts."""
    if source.removed_at is not None:
        return Watch(None, "source removed")
    if not source.enabled:
        return Watch(None, "source disabled")
    if source.failing_since is not None:
        failing_for = now - source.failing_since
        if failing_for >= policy.failing_after:
            polls = source.consecutive_failures
            return Watch("failing", f"failing for {duration(failing_for)} ({polls} poll{'' if polls == 1 else 's'} "
                         f"failed): {source.last_error or 'no reason recorded'}")
        return Watch("silent" if source.watch_state == "silent" else None, "polled successfully")
    if source.watch_state == "failing":
        return Watch(None, "polled successfully")
    threshold = silent_after(cadence, policy)
    if threshold is None or source.last_post_at is None or cadence.mean_gap_s is None:
        return Watch(None, "too little history to tell")
    heard_until = now if source.kind == "push" else source.last_success_at
    if heard_until is None or heard_until - source.last_post_at <= threshold:
        return Watch(None, "posted again")
    typical = typical_longest_gap(cadence) or 0.0
    return Watch("silent", f"quiet for {duration(now - source.last_post_at)}; usually posts every "
                 f"{duration(cadence.mean_gap_s)}, its longest daily gap typically {duration(typical)} "
                 f"(learned from {cadence.posts} posts)")


def transition(current: str | None, wanted: Watch) -> Transition | None:
    """The change from the alert raised now (`current`) to `wanted`; None when nothing changes."""
    if current == wanted.state:
        return None
    resolve: WatchState | None = "silent" if current == "silent" else "failing" if current == "failing" else None
    why = wanted.reason if wanted.state is None else f"now {wanted.state}"
    return Transition(resolve=resolve, resolved_reason=why if resolve else "",
                      raise_=wanted if wanted.state is not None else None)


def duration(value: timedelta | float) -> str:
    """'40 min', '9 h', '3.2 h', '2 d': how long, as an operator reads it."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    if hours < 48:
        return f"{round(hours):d} h" if hours >= 10 else f"{round(hours, 1):g} h"
    return f"{round(hours / 24, 1):g} d"


def of_row(posts: int, mean_gap_s: float | None, daily_longest: list | None, learned_until: datetime | None
           ) -> Cadence:
    """A Cadence from a `sources` row's columns (JSON gives lists)."""
    return Cadence(posts, mean_gap_s, tuple((str(d), float(g)) for d, g in (daily_longest or ())), learned_until)
