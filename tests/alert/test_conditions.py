"""Conditions over time and dry runs, counted in the event log (events rows as classify writes them)."""

from datetime import UTC, datetime, timedelta

from services.alert import commands, store_alerts, store_incidents, store_rules
from services.alert.dryrun import dry_run, explain_event
from services.alert.rules import load_rule_text
from services.classify.store import upsert_event
from shared.db import session_scope
from shared.messages import EventMessage
from tests.alert.conftest import Running
from tests.alert.events import T0
from tests.alert.test_areas import located

KOLLO = ("Kollo", 13.3043, 2.339, "NE")
OUALLAM = ("Ouallam", 14.3183, 2.0866, "NE")
TERA = ("Téra", 14.0078, 0.7531, "NE")
THREE = """id: issp-tillaberi-2
name: Two ISSP attacks in Tillabéri within a day
match:
  any:
    - actors: [ISSP]
area:
  region: Tillabéri
  country: NE
condition: {at_least: 2, within: 24h}
severity: high
"""
FIRST = """id: jnim-first-niamey
name: First JNIM activity near Niamey in 30 days
match:
  any:
    - actors: [JNIM]
area:
  near: Niamey
  radius_km: 100
condition: {first_activity: true, lookback: 30d}
severity: critical
"""


async def _feed(running: Running, *events: EventMessage) -> list:
    """Each event as classify does it: the events row first, then the message on wf:events."""
    out = []
    for event in events:
        async with session_scope(running.sessions) as session:
            await upsert_event(session, event)
        out.extend(await running.service.pipeline.on_event(event))
    return out


async def test_at_least_counts_incidents_not_reports_and_starts_again_after_firing(running: Running) -> None:
    async with session_scope(running.sessions) as session:
        await store_rules.set_rule_enabled(session, "issp-niamey-50km", False, actor="test")
        await commands.upsert_rule(session, load_rule_text(THREE), THREE, None, actor="test")
    kollo = located("kollo-en", place=KOLLO, tactics=("ambush",))
    kollo_again = located("kollo-fr", place=KOLLO, tactics=("ambush",), source="src-fr", at=T0 + timedelta(hours=1))
    ouallam = located("ouallam", place=OUALLAM, tactics=("ambush",), at=T0 + timedelta(hours=3))
    tera = located("tera", place=TERA, tactics=("ambush",), at=T0 + timedelta(hours=5))
    assert await _feed(running, kollo, kollo_again) == []          # two reports of one attack: one incident
    fired = await _feed(running, ouallam)
    assert [(a.rule_id, a.kind) for a in fired] == [("issp-tillaberi-2", "fired")]
    assert "2 incidents matching within 24h ≥ 2" in fired[0].matched
    assert await _feed(running, tera) == []                         # counting starts again after firing

    async with running.sessions() as session:
        spec = load_rule_text(THREE)
        hits = await dry_run(session, spec, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
        assert [h.event_id[:7] for h in hits] == ["ouallam"]
        plain = load_rule_text(THREE.replace("condition: {at_least: 2, within: 24h}\n", ""))
        hits = await dry_run(session, plain, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
        assert [h.event_id[:4] for h in hits] == ["koll", "oual", "tera"]     # one hit per incident
        assert "Kollo is in the region Tillabéri (NE)" in hits[0].reasons


async def test_first_activity_of_an_actor_in_the_area(running: Running) -> None:
    async with session_scope(running.sessions) as session:
        await store_rules.set_rule_enabled(session, "issp-niamey-50km", False, actor="test")
        await commands.upsert_rule(session, load_rule_text(FIRST), FIRST, None, actor="test")
    first = located("jnim-1", place=KOLLO, actors=(("KATIBA_MACINA", "perpetrator"),), tactics=("ambush",),
                    at=T0 - timedelta(days=1))
    second = located("jnim-2", place=("Niamey", 13.51, 2.11, "NE"), actors=(("JNIM", "perpetrator"),),
                     tactics=("kidnapping",), at=T0)
    fired = await _feed(running, first)
    assert [a.rule_id for a in fired] == ["jnim-first-niamey"]
    assert "first activity of JNIM, KATIBA_MACINA in the area within 30d" in fired[0].matched
    assert await _feed(running, second) == []
    async with running.sessions() as session:
        checks = await explain_event(session, load_rule_text(FIRST), second, T0)
    condition = next(c for c in checks if c.condition == "condition")
    assert not condition.passed and condition.reason.startswith("not a first activity: JNIM already active")
    assert all(c.passed for c in checks if c.condition != "condition")


async def test_a_report_older_than_the_max_event_age_opens_no_alert(running: Running) -> None:
    """A feed added today brings weeks of backlog: it goes into the event log, and pages no one."""
    old = located("old-vbied", place=KOLLO, actors=(("ISSP", "perpetrator"),), tactics=("vbied",),
                  at=datetime.now(UTC) - timedelta(days=12))
    assert await _feed(running, old) == []
    async with running.sessions() as session:
        incident = await store_incidents.incident_of_event(session, old.event_id)
        assert incident is not None
        assert await store_alerts.alerts_of_incident(session, incident.id) == {}
    fresh = located("fresh-vbied", place=KOLLO, actors=(("ISSP", "perpetrator"),), tactics=("vbied",),
                    at=datetime.now(UTC) - timedelta(hours=1))
    assert [a.rule_id for a in await _feed(running, fresh)] == ["issp-niamey-50km"]
