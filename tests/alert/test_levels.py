"""Severity I–III, corroboration, silence matchers, quiet hours and the spatial index (pure parts)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.alert.evaluate import evaluate
from services.alert.paging import check_quiet_hours, hold_until, quiet_until, repage_due, wants
from services.alert.severity import LEVELS, corroboration, default_policy, higher, incident_severity
from services.alert.silences import SilenceError, SilenceView, check_matchers, muted_by
from services.alert.spatial import RuleIndex
from shared.messages import AlertMessage, PlaceLabel
from tests.alert.events import T0, event

NIAMEY = {"name": "Niamey", "lat": 13.51366, "lon": 2.1098, "country": "NE", "kind": "town"}
KOLLO = {"name": "Kollo", "lat": 13.3043, "lon": 2.339, "country": "NE", "kind": "town"}
AIRPORT = {"name": "Diori Hamani International Airport", "lat": 13.48, "lon": 2.18, "country": "NE",
           "kind": "airport"}


@pytest.mark.parametrize(
    ("tactics", "killed", "place", "level"),
    [
        (["ambush"], None, KOLLO, "I"),
        (["vbied"], 3, KOLLO, "II"),
        (["vbied"], None, NIAMEY, "III"),
        (["ambush"], 12, KOLLO, "III"),
        (["armed_assault"], None, AIRPORT, "II"),
        (["airport_attack"], None, AIRPORT, "III"),
    ],
    ids=["ambush in a town", "car bomb with dead", "car bomb in a capital", "12 killed", "assault on an airport",
         "airport attack at an airport"],
)
def test_severity_from_tactic_toll_and_place(tactics: list, killed: int | None, place: dict, level: str) -> None:
    got, reasons = incident_severity(tactics, killed, place, default_policy())
    assert got == level, reasons


def test_levels_only_rise_and_corroboration_counts_distinct_and_official_sources() -> None:
    assert higher("III", "II", LEVELS) == "III" and higher(None, "I", LEVELS) == "I"
    official = frozenset({"anp-niger"})
    assert corroboration(["a", "a"], official) == "single_source"
    assert corroboration(["a", "b"], official) == "corroborated"
    assert corroboration(["a", "anp-niger"], official) == "confirmed"


def _alert(**kw) -> AlertMessage:
    values = dict(alert_id="a" * 64, version=1, kind="fired", rule_id="issp-niamey-50km", rule_name="n",
                  severity="high", incident_id="i" * 64, fired_at=T0, updated_at=T0, event_ids=["e"],
                  source_ids=["s"], title="t", actors=["KATIBA_MACINA"], tactics=["ambush"],
                  place=PlaceLabel(name="Gao", lat=16.27, lon=-0.04, country="ML"), confidence=0.9,
                  incident_severity="II")
    values.update(kw)
    return AlertMessage(**values)


def test_silence_matchers_are_anded_and_match_sub_units_and_both_severities() -> None:
    now = T0
    silence = SilenceView(3, check_matchers({"actors": ["JNIM"], "countries": ["ml"], "severities": ["II"]}),
                          "exercise", "ana", now - timedelta(hours=1), now + timedelta(hours=1))
    assert muted_by([silence], _alert(), now) == "silence 3: exercise (ana)"
    assert muted_by([silence], _alert(place=PlaceLabel(name="Niamey", lat=13.5, lon=2.1, country="NE")), now) is None
    assert muted_by([silence], _alert(), now + timedelta(hours=2)) is None        # ended
    with pytest.raises(SilenceError, match="needs at least one matcher"):
        check_matchers({})
    with pytest.raises(SilenceError, match="unknown matcher 'actor'"):
        check_matchers({"actor": ["ISSP"]})
    with pytest.raises(SilenceError, match="unknown actor code 'ISIS'"):
        check_matchers({"actors": ["ISIS"]})


def test_quiet_hours_cross_midnight_in_the_subscribers_time_zone() -> None:
    quiet = check_quiet_hours({"start": "22:00", "end": "06:00", "tz": "Africa/Niamey"})   # UTC+1
    at_2330_local = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    assert quiet_until(quiet, at_2330_local) == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2026, 11, 25, 4, 0, tzinfo=UTC)) == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) is None
    assert hold_until(quiet, "III", at_2330_local) is None             # severity III always goes through
    assert hold_until(quiet, "II", at_2330_local) is not None
    with pytest.raises(ValueError, match="unknown time zone"):
        check_quiet_hours({"start": "22:00", "end": "06:00", "tz": "Mars/Olympus"})


def test_min_severity_and_repage() -> None:
    assert wants("III", "low", "III") and not wants("III", "critical", "II")
    assert wants("high", "critical", None) and not wants("high", "medium", "III")
    due = dict(state="firing", muted_by=None, incident_severity="III", last_paged_at=None, fired_at=T0,
               every=timedelta(minutes=15))
    assert repage_due(now=T0 + timedelta(minutes=16), **due)
    assert not repage_due(now=T0 + timedelta(minutes=16), **{**due, "state": "acknowledged"})
    assert not repage_due(now=T0 + timedelta(minutes=5), **due)


def test_spatial_index_finds_exactly_what_the_loop_over_every_rule_finds() -> None:
    from bench.rules import make_events, make_rules

    rng = random.Random(3)
    rules = make_rules(200, rng)
    events = [*make_events(400, rng), event("noplace", place=None)]
    index = RuleIndex(rules)
    for e in events:
        naive = [r.id for r in rules if evaluate(r, e, T0) is not None]
        assert [r.id for r, _ in index.matching(e, T0)] == naive
    assert sum(len(index.candidates(e)) for e in events) < len(rules) * len(events) / 5


def test_explain_agrees_with_evaluate_on_every_rule_and_event() -> None:
    """`watchfloor explain` must never say "every check passed" for a rule that did not match, or the reverse."""
    from bench.rules import make_events, make_rules
    from services.alert.evaluate import explain

    rng = random.Random(11)
    rules, events = make_rules(60, rng), make_events(150, rng)
    for r in rules:
        for e in events:
            assert (evaluate(r, e, T0) is not None) == all(c.passed for c in explain(r, e, T0)), (r.id, e.event_id)
