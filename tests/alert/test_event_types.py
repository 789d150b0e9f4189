"""Which webhook types a subscription takes (pure): its `events` patterns; a rule filter or a minimum severity holds
back alert.* only, never source.*."""

from dataclasses import dataclass

import pytest

from services.alert.paging import EVENT_TYPES, check_events, routes, source_routes, wants_event


@dataclass
class Sub:
    id: int
    enabled: bool = True
    rule_ids: list[str] | None = None
    min_severity: str | None = None
    events: list[str] | None = None


def test_patterns_choose_types_and_none_takes_all() -> None:
    assert all(wants_event(None, t) for t in EVENT_TYPES)
    assert [t for t in EVENT_TYPES if wants_event(["source.*"], t)] == [
        "source.silent", "source.failing", "source.silent.resolved", "source.failing.resolved"]
    assert [t for t in EVENT_TYPES if wants_event(["alert.*", "source.failing"], t)] == [
        "alert.fired", "alert.updated", "alert.repaged", "alert.resolved", "source.failing"]


@pytest.mark.parametrize("bad", [["alerts.*"], ["source.quiet"], [" "], []])
def test_a_pattern_matching_no_type_is_refused(bad: list[str]) -> None:
    with pytest.raises(ValueError, match="events: "):
        check_events(bad)


def test_rule_filters_hold_back_alerts_not_source_events_but_event_types_hold_back_both() -> None:
    subs = [Sub(1), Sub(2, rule_ids=["other-rule"], min_severity="critical"), Sub(3, events=["alert.*"]),
            Sub(4, events=["source.*"]), Sub(5, enabled=False)]
    assert [s.id for s in source_routes(subs, "source.silent")] == [1, 2, 4]
    assert [s.id for s in source_routes(subs, "source.silent", include_disabled=True)] == [1, 2, 4, 5]
    assert [s.id for s in routes(subs, None, "issp-niamey-50km", "high", None, event_type="alert.fired")] == [1, 3]
