"""A source's rhythm learned from its own posts, and the decision to raise or resolve silent and failing (pure)."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.ingest.cadence import (
    Cadence,
    Watch,
    WatchPolicy,
    duration,
    learn,
    silent_after,
    transition,
    typical_longest_gap,
    watch,
)

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
POLICY = WatchPolicy()


@dataclass
class Src:
    kind: str = "feed"
    enabled: bool = True
    removed_at: datetime | None = None
    last_post_at: datetime | None = None
    last_success_at: datetime | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    watch_state: str | None = None
    watch_since: datetime | None = None


def every(minutes: float, count: int, start: datetime = T0) -> list[datetime | None]:
    return [start + timedelta(minutes=minutes * n) for n in range(count)]


def test_a_read_back_teaches_the_rhythm_at_once_from_publication_times() -> None:
    learned = learn(Cadence(), every(40, 20), stored_at=T0 + timedelta(hours=14))
    assert learned.posts == 20
    assert learned.mean_gap_s == 40 * 60
    assert learned.learned_until == T0 + timedelta(minutes=40 * 19)
    assert typical_longest_gap(learned) == 40 * 60
    assert silent_after(learned, POLICY) == timedelta(hours=1, minutes=20)   # 2 x 40 min, over the 1 h floor


def test_posts_without_a_date_or_dated_in_the_future_count_when_stored_and_old_ones_teach_nothing() -> None:
    stored = T0 + timedelta(hours=1)
    learned = learn(Cadence(), [None, T0 + timedelta(days=3)], stored_at=stored)
    assert (learned.posts, learned.learned_until) == (1, stored)   # both at the store time: one post, no gap
    again = learn(learned, [T0, T0 - timedelta(days=1)], stored_at=stored)   # older than what is learned
    assert again == learned


def test_too_little_history_is_never_silent() -> None:
    learned = learn(Cadence(), every(40, POLICY.min_posts - 1), stored_at=T0 + timedelta(hours=5))
    assert silent_after(learned, POLICY) is None
    src = Src(last_post_at=T0, last_success_at=T0 + timedelta(days=3))
    assert watch(src, learned, T0 + timedelta(days=3), POLICY).state is None


def test_a_night_s_sleep_is_its_rhythm_not_a_silence() -> None:
    """Posts every 20 min from 06:00 to 22:00 for a week, then none: the 8 h night gap is the usual longest."""
    times: list[datetime | None] = []
    for day in range(7):
        times += every(20, 49, T0 + timedelta(days=day))      # 06:00 .. 22:00
    learned = learn(Cadence(), times, stored_at=T0 + timedelta(days=7))
    assert typical_longest_gap(learned) == 8 * 3600
    assert silent_after(learned, POLICY) == timedelta(hours=16)
    last = T0 + timedelta(days=6, hours=16)
    night = Src(last_post_at=last, last_success_at=last + timedelta(hours=9))
    assert watch(night, learned, last + timedelta(hours=9), POLICY).state is None
    dead = Src(last_post_at=last, last_success_at=last + timedelta(hours=17))
    decided = watch(dead, learned, last + timedelta(hours=17), POLICY)
    assert decided.state == "silent"
    assert decided.reason == ("quiet for 17 h; usually posts every 20 min, its longest daily gap typically 8 h "
                              "(learned from 343 posts)")


def test_the_median_day_ignores_one_day_the_source_was_down() -> None:
    times = every(30, 48 * 5)                                 # round the clock for five days
    times += every(30, 48 * 3, T0 + timedelta(days=8))        # a three-day hole, then as before
    learned = learn(Cadence(), times, stored_at=T0 + timedelta(days=11))
    assert max(g for _, g in learned.daily_longest) > 3 * 86400
    assert typical_longest_gap(learned) == 30 * 60


def test_history_is_bounded_to_the_last_days_it_posted() -> None:
    learned = Cadence()
    for day in range(100):
        learned = learn(learned, every(60, 3, T0 + timedelta(days=day)), stored_at=T0 + timedelta(days=day, hours=3))
    assert learned.posts == 300
    assert len(learned.daily_longest) == POLICY.history_days
    assert learned.daily_longest[-1][0] == (T0 + timedelta(days=99)).date().isoformat()


def test_quiet_is_what_was_heard_not_how_long_ingest_was_stopped() -> None:
    learned = learn(Cadence(), every(40, 20), stored_at=T0 + timedelta(hours=13))
    last = T0 + timedelta(hours=13)
    stopped = Src(last_post_at=last, last_success_at=last)   # no poll since the post: we heard nothing
    assert watch(stopped, learned, last + timedelta(days=1), POLICY).state is None
    pushed = Src(kind="push", last_post_at=last)             # a push source is heard up to now
    assert watch(pushed, learned, last + timedelta(hours=2), POLICY).state == "silent"


def test_failing_after_the_threshold_and_failing_wins_over_silent() -> None:
    learned = learn(Cadence(), every(40, 20), stored_at=T0 + timedelta(hours=13))
    now = T0 + timedelta(days=2)
    src = Src(last_post_at=T0, last_success_at=T0 + timedelta(hours=20), failing_since=now - timedelta(hours=2),
              consecutive_failures=24, last_error="HTTP 500 from server")
    assert watch(src, learned, now, POLICY).state is None                   # 2 h: not yet, and not known quiet
    src.failing_since = now - timedelta(hours=3)
    decided = watch(src, learned, now, POLICY)
    assert decided == Watch("failing", "failing for 3 h (24 polls failed): HTTP 500 from server")


def test_disabled_or_removed_sources_never_alert() -> None:
    learned = learn(Cadence(), every(40, 20), stored_at=T0 + timedelta(hours=13))
    now = T0 + timedelta(days=2)
    quiet = Src(last_post_at=T0, last_success_at=now)
    assert watch(quiet, learned, now, POLICY).state == "silent"
    assert watch(replace(quiet, enabled=False), learned, now, POLICY) == Watch(None, "source disabled")
    assert watch(replace(quiet, removed_at=now), learned, now, POLICY) == Watch(None, "source removed")


def test_transitions_raise_once_resolve_when_it_speaks_again_and_switch_silent_to_failing() -> None:
    learned = learn(Cadence(), every(40, 20), stored_at=T0 + timedelta(hours=13))
    now = T0 + timedelta(days=2)
    quiet = Src(last_post_at=T0, last_success_at=now)
    raised = transition(None, watch(quiet, learned, now, POLICY))
    assert raised is not None and raised.resolve is None and raised.raise_ is not None
    assert raised.raise_.state == "silent"
    assert transition("silent", watch(replace(quiet, watch_state="silent"), learned, now, POLICY)) is None

    spoke = replace(quiet, watch_state="silent", last_post_at=now)
    resolved = transition("silent", watch(spoke, learned, now, POLICY))
    assert resolved is not None and (resolved.resolve, resolved.resolved_reason, resolved.raise_) == (
        "silent", "posted again", None)

    briefly_failing = replace(quiet, watch_state="silent", failing_since=now - timedelta(minutes=5))
    assert transition("silent", watch(briefly_failing, learned, now, POLICY)) is None   # stays silent
    long_failing = replace(briefly_failing, failing_since=now - timedelta(hours=4))
    switched = transition("silent", watch(long_failing, learned, now, POLICY))
    assert switched is not None and switched.resolve == "silent" and switched.resolved_reason == "now failing"
    assert switched.raise_ is not None and switched.raise_.state == "failing"

    recovered = Src(last_post_at=T0, last_success_at=now, watch_state="failing")
    back = transition("failing", watch(recovered, learned, now, POLICY))
    assert back is not None and (back.resolve, back.resolved_reason) == ("failing", "polled successfully")
    disabled = transition("failing", watch(replace(recovered, enabled=False), learned, now, POLICY))
    assert disabled is not None and disabled.resolved_reason == "source disabled"


def test_durations_read_as_an_operator_says_them() -> None:
    assert [duration(s) for s in (45, 40 * 60, 3.2 * 3600, 9 * 3600, 3 * 86400)] == [
        "45 s", "40 min", "3.2 h", "9 h", "3 d"]
