"""What would a rule have fired, and why did it (not) fire for one post: the rule run against the event log.

`dry_run` replays the log between `since` and `until` through the rule as the pipeline would, one hit per
incident (the report that would have fired it; reports of one attack are one alert), conditions over time
counted in the log, and nothing written or sent. `explain_event` is `evaluate.explain` plus what needs the
database: the condition over time and the silences that would mute the alert. `explain_post` puts every
enabled rule's checks for one post beside the alert the service actually made.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.alert import commands, eventlog, store_alerts, store_eventlog, store_incidents
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
    log = await store_eventlog.history(session, since=since - span if span else since, until=until, **cut)
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
    incident_id = await store_incidents.incident_of_event(session, event.event_id)
    incident = incident_id.id if incident_id else ids.incident_id(event.event_id)
    if spec.condition is not None:
        at = event_time(event)
        past = await store_eventlog.history(session, since=at - spec.condition.span, until=at, **_coarse_cut(spec))
        alerted, last = await store_eventlog.rule_alert_history(session, spec.id)
        met, why = condition_met(spec, event, incident, past, alerted=alerted - {incident}, last_alerted_at=last)
        checks.append(Check("condition", met, why))
    alert = await store_alerts.get_alert(session, ids.alert_id(spec.id, incident))
    if alert is not None and alert.muted_by:
        checks.append(Check("silence", False, f"muted: {alert.muted_by}"))
    elif alert is not None:
        payload = AlertMessage.model_validate(alert.payload)
        silenced = [s for s in await commands.active_silences(session, now) if silences_alert(s.matchers, payload)]
        checks.append(Check("silence", not silenced, f"muted now by {silenced[0].label()}" if silenced
                            else "no active silence mutes it"))
    return checks


async def explain_post(session: AsyncSession, post_id: str, now: datetime) -> dict[str, Any] | None:
    """Why each enabled rule did or did not fire for a post: every check (`explain_event`: the rule's
    filters and area, its condition over time counted in the log, the silences) beside the alert the service
    actually made (muted by a silence or inhibited, if so), and the post's labels with their evidence.
    None when the post was never classified."""
    found = await store_eventlog.stored_event(session, post_id)
    if found is None:
        return None
    message, columns = found
    incident_id, alerts = await store_eventlog.alerts_of_post(session, message.event_id)
    verdicts = []
    for rule in await commands.enabled_rules(session):
        alert = alerts.get(rule.id)
        in_alert = alert is not None and message.event_id in ((alert.get("payload") or {}).get("event_ids") or [])
        checks = await explain_event(session, rule, message, now)
        verdicts.append(eventlog.verdict(rule.id, rule.name, checks, alert, in_alert))
    label_rows = eventlog.labels(columns, {"title": message.title, "text": message.text})
    return {
        "post_id": message.event_id, "source_id": message.source_id, "title": message.title,
        "url": message.url, "lang": message.lang, "is_event": message.is_event, "confidence": message.confidence,
        "classifier": message.classifier, "incident_id": incident_id, "labels": label_rows,
        "rules": [{"rule_id": v.rule_id, "rule_name": v.rule_name, "fired": v.fired, "summary": v.summary,
                   "checks": v.checks, "alert_id": v.alert["id"] if v.alert else None,
                   "muted_by": v.alert.get("muted_by") if v.alert else None} for v in verdicts],
        "text": "\n".join(eventlog.explanation_text(message.event_id, {**columns, "title": message.title},
                                                    label_rows, verdicts)),
    }
