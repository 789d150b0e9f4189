"""What would a rule have fired, and why did it (not) fire for one post: the rule run against the event log.

`dry_run` replays the log between `since` and `until` through the rule as the pipeline would, one hit per
incident (the report that would have fired it; reports of one attack are one alert), conditions over time
counted in the log, and nothing written or sent. `explain_event` is `evaluate.explain` plus what needs the
database: the condition over time and the silences that would mute the alert.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.alert import store
from services.alert.conditions import condition_met
from services.alert.evaluate import Check, evaluate, explain
from services.alert.geofence import bounding_box
from services.alert.incidents import event_time
from services.alert.rules import RuleSpec
from services.alert.silences import silences_alert
from shared import ids
from shared.messages import AlertMessage, EventMessage


@dataclass(frozen=True)
class DryRunHit:
    event_id: str
    incident_id: str
    at: datetime
    reasons: list[str] = field(default_factory=list)


def _coarse_cut(spec: RuleSpec) -> dict:
    area = spec.area
    if area is None:
        return {}
    box = bounding_box(area)
    if box is not None:
        return {"box": box}
    return {"country": area.region_key[0] if area.region_key else area.country}


async def dry_run(session: AsyncSession, spec: RuleSpec, *, since: datetime, until: datetime) -> list[DryRunHit]:
    """The alerts `spec` would have fired on the events reported between `since` and `until`, oldest first.
    A disabled rule is run as if enabled: that is what a dry run is for."""
    if not spec.enabled:
        spec = spec.model_copy(update={"enabled": True})
    cut = _coarse_cut(spec)
    span = spec.condition.span if spec.condition else None
    log = await store.history(session, since=since - span if span else since, until=until, **cut)
    hits: list[DryRunHit] = []
    alerted: set[str] = set()
    last: datetime | None = None
    for event, incident_id in log:
        at = event_time(event)
        if at < since:
            continue  # only there as history for the conditions
        incident = incident_id or ids.incident_id(event.event_id)
        if incident in alerted:
            continue
        match = evaluate(spec, event, at)
        if match is None:
            continue
        reasons = list(match.reasons)
        if spec.condition is not None:
            past = [(e, i) for e, i in log if event_time(e) <= at]
            met, why = condition_met(spec, event, incident, past, alerted=alerted, last_alerted_at=last)
            if not met:
                continue
            reasons.append(why)
            first = min((event_time(e) for e, i in log if (i or ids.incident_id(e.event_id)) == incident),
                        default=at)
            last = first if last is None else max(last, first)
        alerted.add(incident)
        hits.append(DryRunHit(event_id=event.event_id, incident_id=incident, at=at, reasons=reasons))
    return hits


async def explain_event(session: AsyncSession, spec: RuleSpec, event: EventMessage, now: datetime) -> list[Check]:
    """Every check of `spec` against `event`, with the condition over time counted in the log and the
    silences active `now` that would mute its alert."""
    checks = [c for c in explain(spec, event, now) if c.condition != "condition"]
    incident_id = await store.incident_of_event(session, event.event_id)
    incident = incident_id.id if incident_id else ids.incident_id(event.event_id)
    if spec.condition is not None:
        at = event_time(event)
        past = await store.history(session, since=at - spec.condition.span, until=at, **_coarse_cut(spec))
        alerted, last = await store.rule_alert_history(session, spec.id)
        met, why = condition_met(spec, event, incident, past, alerted=alerted - {incident}, last_alerted_at=last)
        checks.append(Check("condition", met, why))
    alert = await store.get_alert(session, ids.alert_id(spec.id, incident))
    if alert is not None and alert.muted_by:
        checks.append(Check("silence", False, f"muted: {alert.muted_by}"))
    elif alert is not None:
        payload = AlertMessage.model_validate(alert.payload)
        silenced = [s for s in await store.active_silences(session, now) if silences_alert(s.matchers, payload)]
        checks.append(Check("silence", not silenced, f"muted now by {silenced[0].label()}" if silenced
                            else "no active silence mutes it"))
    return checks
