"""From one classified event to alert messages: incident, rules, alert versions, in one transaction.

    EventMessage ─▶ incident (join or open) ─▶ every enabled rule ─▶ alert fired (v1) / updated (v+1)
                                                                        └─▶ wf:alerts, after the commit

An alert is (re)published only when it is new or something material rose: more independent sources or a
higher toll. Another report from the same source, or the same report again, puts nothing on the wire.
The outbox remembers the last version put on wf:alerts per alert, so a version committed but never
published (a crash or a Redis error between the commit and the publish) goes out with the next report
of its incident, at the latest when the failed event is redelivered.
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import store
from services.alert.evaluate import Match, evaluate
from services.alert.incidents import (
    ClusterPolicy,
    IncidentView,
    choose_incident,
    event_time,
    merge,
    open_incident,
)
from services.alert.rules import RuleSpec
from shared import ids, streams
from shared.db import session_scope
from shared.messages import AlertMessage, EventMessage, PlaceLabel, Span

logger = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where alert versions go (wf:alerts), and which version of each alert went there last."""

    async def publish(self, message: AlertMessage) -> None: ...

    async def published_versions(self, alert_ids: list[str]) -> dict[str, int]: ...


class Rulebook:
    """The enabled rules, reloaded when `rules_revision` changes (checked at most every `reload_s`), so a
    rule added from the CLI in another process applies without a restart."""

    def __init__(self, reload_s: float) -> None:
        self.reload_s = reload_s
        self._rules: list[RuleSpec] = []
        self._revision: tuple[int, str] | None = None
        self._checked = float("-inf")

    async def current(self, session: AsyncSession) -> list[RuleSpec]:
        if time.monotonic() - self._checked >= self.reload_s:
            revision = await store.rules_revision(session)
            self._checked = time.monotonic()
            if revision != self._revision:
                self._rules = await store.load_enabled_rules(session)
                self._revision = revision
                logger.info("rules loaded enabled=%d ids=%s", len(self._rules),
                            ",".join(r.id for r in self._rules) or "-")
        return self._rules


def _evidence(event: EventMessage) -> list[Span]:
    spans = [s for a in event.actors if a.role != "denied" for s in a.evidence]
    spans += [s for t in event.tactics for s in t.evidence]
    if event.place:
        spans += event.place.evidence
    return spans[:20]


def _title(event: EventMessage, incident: IncidentView) -> str:
    if event.title:
        return event.title
    what = ", ".join(incident.tactics) or "activity"
    where = (incident.place or {}).get("name", "unknown place")
    return f"{what} near {where}"


def alert_message(
    rule: RuleSpec, incident: IncidentView, event: EventMessage, match: Match | None,
    previous: AlertMessage | None, event_ids: list[str], source_ids: list[str], now: datetime,
) -> AlertMessage:
    """The next version of the alert of `rule` on `incident` (version 1 when there is no `previous`)."""
    matched = list(previous.matched) if previous else []
    matched += [r for r in (match.reasons if match else []) if r not in matched]
    confidence = max(event.confidence, previous.confidence if previous else 0.0)
    return AlertMessage(
        alert_id=ids.alert_id(rule.id, incident.id),
        version=previous.version + 1 if previous else 1,
        kind="updated" if previous else "fired",
        rule_id=rule.id, rule_name=rule.name, severity=rule.severity,
        state=previous.state if previous else "firing",
        incident_id=incident.id,
        fired_at=previous.fired_at if previous else now, updated_at=now,
        event_ids=event_ids, source_ids=source_ids,
        title=previous.title if previous else _title(event, incident),
        actors=incident.actors, perpetrator=incident.perpetrator, tactics=incident.tactics,
        place=PlaceLabel.model_validate(incident.place) if incident.place else None,
        killed=incident.killed, confidence=confidence, matched=matched,
        evidence=list(previous.evidence) if previous and previous.evidence else _evidence(event),
        url=(previous.url if previous else None) or event.url,
    )


def material_change(previous: AlertMessage, source_ids: list[str], killed: int | None) -> str | None:
    """Why an alert deserves a new version, or None: more independent sources, or a higher toll."""
    if len(source_ids) > len(previous.source_ids):
        return f"sources {len(previous.source_ids)}→{len(source_ids)}"
    if killed is not None and (previous.killed is None or killed > previous.killed):
        return f"killed {previous.killed if previous.killed is not None else '?'}→{killed}"
    return None


class AlertPipeline:
    """`on_event` is the handler of the `alert` stage; `outbox` puts AlertMessages on wf:alerts."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 policy: ClusterPolicy, rulebook: Rulebook) -> None:
        self.sessions, self.outbox, self.policy, self.rulebook = sessions, outbox, policy, rulebook

    async def on_event(self, event: EventMessage) -> list[AlertMessage]:
        """Assigns the event to an incident, evaluates every enabled rule, creates or updates alerts, and
        publishes the new versions after the commit. Returns what was published."""
        if not event.is_event:
            logger.debug("skipped event=%s reason=\"not an event\"", event.event_id[:8])
            return []
        started = time.perf_counter()
        now = datetime.now(UTC)
        out: list[AlertMessage] = []
        async with session_scope(self.sessions) as session:
            rules = await self.rulebook.current(session)
            incident = await store.incident_of_event(session, event.event_id)
            known = incident is not None
            if incident is None:
                candidates = await store.candidate_incidents(session, event_time(event), self.policy.window)
                incident = choose_incident(candidates, event, self.policy) or open_incident(
                    ids.incident_id(event.event_id), event)
            incident = merge(incident, event)
            await store.save_incident(session, incident)
            if not known:
                # False only if another worker recorded this report meanwhile: then it is a redelivery.
                known = not await store.add_report(session, incident.id, event.event_id, event.source_id)
            event_ids, source_ids = await store.incident_reports(session, incident.id)
            alerts = await store.alerts_of_incident(session, incident.id)
            published = await self.outbox.published_versions([row.id for row in alerts.values()])
            unsent = [AlertMessage.model_validate(row.payload) for row in alerts.values()
                      if row.version > published.get(row.id, 0)]
            for rule in rules:
                match = evaluate(rule, event, now)
                row = alerts.get(rule.id)
                if row is None and match is None:
                    continue
                previous = AlertMessage.model_validate(row.payload) if row else None
                if row is not None and previous is not None:
                    if row.state == "resolved" or now - row.fired_at > rule.window_delta:
                        continue  # the rule's window: after it, reports no longer update this alert
                    previous = previous.model_copy(update={"state": row.state})
                    why = material_change(previous, source_ids, incident.killed)
                    if why is None:
                        continue
                else:
                    why = "new"
                message = alert_message(rule, incident, event, match, previous, event_ids, source_ids, now)
                await store.save_alert(
                    session, message.model_dump(mode="json", by_alias=True), alert_id=message.alert_id,
                    rule_id=rule.id, incident_id=incident.id, severity=rule.severity, version=message.version,
                    fired_at=message.fired_at, updated_at=now,
                )
                logger.info(
                    "alert %s rule=%s alert=%s incident=%s v=%d sources=%d why=\"%s\"",
                    message.kind, rule.id, message.alert_id[:8], incident.id[:8], message.version,
                    len(source_ids), why if previous else "; ".join(message.matched),
                )
                out.append(message)
        # Publish only after the commit. A version committed earlier but never published goes first;
        # one superseded by a version made just now is not sent (receivers want the latest).
        fresh = {m.alert_id for m in out}
        unsent = [m for m in unsent if m.alert_id not in fresh]
        for message in unsent:
            logger.warning("alert republished alert=%s v=%d reason=\"committed, not yet on %s\"",
                           message.alert_id[:8], message.version, streams.ALERTS)
        out = unsent + out
        for message in out:
            await self.outbox.publish(message)
        logger.info(
            "evaluated event=%s incident=%s %s reports=%d sources=%d rules=%d alerts=%d %.0fms",
            event.event_id[:8], incident.id[:8], "known" if known else "added", len(event_ids),
            len(source_ids), len(rules), len(out), (time.perf_counter() - started) * 1000,
        )
        return out


def cluster_policy(radius_km: float, window_s: float) -> ClusterPolicy:
    return ClusterPolicy(radius_km=radius_km, window=timedelta(seconds=window_s))
