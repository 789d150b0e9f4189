"""The alert stage's decisions as tables (pure: no database, no Redis), as Alertmanager tests its stages:
(report, loaded context, now) → (incident change | alert versions, muted or not, and why)."""

import math
import random
from datetime import timedelta

import pytest

from services.alert.geofence import EARTH_RADIUS_KM, distance_km
from services.alert.incidents import ClusterPolicy, IncidentView, open_incident, place_cells, place_incident
from services.alert.pipeline import AlertContext, Levels, conditions_to_count, decide_alerts
from services.alert.rules import RuleSpec, load_rule_text
from services.alert.silences import SilenceView
from services.alert.spatial import RuleIndex
from shared import ids
from shared.messages import AlertMessage, EventMessage
from tests.alert.events import T0, TILLABERI, event, vbied_niamey_en, vbied_niamey_fr
from tests.alert.test_rules import FIRST_RULE

POLICY = ClusterPolicy(radius_km=25, window=timedelta(hours=6))
NOW = T0 + timedelta(hours=2)


# --- which incident -------------------------------------------------------------------------------------


def _niamey_incident() -> IncidentView:
    return open_incident("inc-niamey", vbied_niamey_en())


@pytest.mark.parametrize(
    ("report", "known", "candidates", "want_kind", "want_id"),
    [
        (vbied_niamey_en(), None, [], "open", ids.incident_id(vbied_niamey_en().event_id)),
        (vbied_niamey_fr(), None, [_niamey_incident()], "join", "inc-niamey"),
        (event("till", place=TILLABERI), None, [_niamey_incident()], "open", ids.incident_id(event("till").event_id)),
        (vbied_niamey_en(), _niamey_incident(), [], "known", "inc-niamey"),
    ],
    ids=["first report opens", "second report 6 km away joins", "110 km away opens its own",
         "a redelivered report stays where it was"],
)
def test_which_incident_a_report_belongs_to(report: EventMessage, known: IncidentView | None,
                                            candidates: list[IncidentView], want_kind: str, want_id: str) -> None:
    change = place_incident(report, known, candidates, POLICY)
    assert (change.kind, change.incident.id) == (want_kind, want_id)


# --- which alert versions ----------------------------------------------------------------------------------

INHIBITING = """\
id: issp-sahel
name: ISSP anywhere
match:
  any:
    - actors: [ISSP]
severity: critical
inhibits: [issp-niamey-50km]
"""


def _context(report: EventMessage, *, rules: list[RuleSpec], alerts: dict[str, AlertMessage] | None = None,
             source_ids: list[str] | None = None, **more: object) -> AlertContext:
    incident = open_incident("inc-niamey", report)
    index = RuleIndex(rules)
    return AlertContext(
        event=report, incident=incident, levels=Levels("single_source", "II", []), event_ids=[report.event_id],
        source_ids=source_ids or [report.source_id], rules={r.id: r for r in rules},
        matched={r.id: m for r, m in index.matching(report, NOW)}, alerts=alerts or {}, **more,  # type: ignore[arg-type]  # test table
    )


def _fired(report: EventMessage) -> dict[str, AlertMessage]:
    rule = load_rule_text(FIRST_RULE)
    decision = decide_alerts(_context(report, rules=[rule]), NOW)
    return {rule.id: decision.versions[0].message}


def _silence(**matchers: list[str]) -> SilenceView:
    return SilenceView(id=7, matchers=matchers, reason="exercise", created_by="duty", starts_at=T0,
                       ends_at=T0 + timedelta(days=2))


FIRST = load_rule_text(FIRST_RULE)


@pytest.mark.parametrize(
    ("context", "want"),
    [
        (_context(vbied_niamey_en(), rules=[FIRST]), [("fired", 1, None)]),
        (_context(vbied_niamey_en(), rules=[FIRST], alerts=_fired(vbied_niamey_en())), []),
        (_context(vbied_niamey_fr(), rules=[FIRST], alerts=_fired(vbied_niamey_en()),
                  source_ids=["src-en", "src-fr"]), [("updated", 2, None)]),
        (_context(vbied_niamey_en(), rules=[FIRST], silences=[_silence(tactics=["vbied"])]),
         [("fired", 1, "silence 7")]),
        (_context(vbied_niamey_en(), rules=[FIRST, load_rule_text(INHIBITING)]),
         [("fired", 1, "inhibited by rule issp-sahel"), ("fired", 1, None)]),
        (_context(vbied_niamey_en(), rules=[FIRST], max_event_age=timedelta(hours=1)), []),
    ],
    ids=["first report fires", "the same report again: nothing", "a second source updates (v2)",
         "a silence mutes: no page", "a wider rule inhibits the narrower one", "older than the max age: nothing"],
)
def test_which_alert_versions_a_report_makes(context: AlertContext, want: list[tuple[str, int, str | None]]
                                              ) -> None:
    decision = decide_alerts(context, NOW)
    got = [(v.message.kind, v.message.version, v.message.muted_by and v.message.muted_by.split(":")[0])
           for v in decision.versions]
    assert got == want


def test_a_rule_with_a_condition_is_counted_first_and_fires_only_when_met() -> None:
    rule = load_rule_text(FIRST_RULE + "condition:\n  at_least: 3\n  within: 7d\n")
    context = _context(vbied_niamey_en(), rules=[rule])
    assert conditions_to_count(context, NOW) == [rule]
    not_met = decide_alerts(AlertContext(**{**context.__dict__, "conditions": {rule.id: (False, "2 of 3")}}), NOW)
    assert not_met.versions == [] and not_met.skipped == [(rule.id, "condition not met: 2 of 3")]
    met = decide_alerts(AlertContext(**{**context.__dict__, "conditions": {rule.id: (True, "3 in 7d")}}), NOW)
    assert [v.message.matched[-1] for v in met.versions] == ["3 in 7d"]


# --- where two workers must take turns ---------------------------------------------------------------------


def _point_at(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    d, p1, l1 = km / EARTH_RADIUS_KM, math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


@pytest.mark.parametrize("centre", [(13.5, 2.1), (0.0, 179.99), (0.0, -180.0), (71.0, 25.0), (89.9, 0.0),
                                    (-89.99, 10.0)],
                         ids=["Niamey", "antimeridian east", "antimeridian west", "North Cape", "north pole",
                              "south pole"])
def test_two_places_within_the_radius_always_share_a_cell(centre: tuple[float, float]) -> None:
    rng = random.Random(9)
    for _ in range(3000):
        radius = rng.choice([5.0, 25.0, 50.0])
        lat, lon = _point_at(*centre, rng.uniform(0, 3 * radius), rng.uniform(0, 2 * math.pi))
        other = _point_at(lat, lon, rng.uniform(0, radius), rng.uniform(0, 2 * math.pi))
        if distance_km(lat, lon, *other) > radius:
            continue  # rounding at the very edge
        mine, theirs = place_cells(lat, lon, radius), place_cells(*other, radius)
        assert set(mine) & set(theirs), (lat, lon, other, radius)
        assert mine == sorted(mine) and len(mine) <= 16


def test_reports_without_a_place_take_turns_on_one_cell() -> None:
    assert place_cells(None, None, 25) == place_cells(None, None, 50) and len(place_cells(None, None, 25)) == 1

