"""The alert service's SQL (the only module that builds queries): rules, incidents, alerts,
subscriptions, notifications and delivery attempts. Callers own the transaction (`session_scope`)."""

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.incidents import IncidentView
from services.alert.rules import RuleError, RuleSpec, parse_rule
from services.alert.signing import new_secret
from shared.models import (
    Alert,
    AuditEntry,
    DeliveryAttempt,
    Incident,
    IncidentReport,
    Notification,
    Rule,
    Subscription,
    utcnow,
)

logger = logging.getLogger(__name__)
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (PostgreSQL or SQLite)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


# --- rules ------------------------------------------------------------------------------------------


async def upsert_rule(session: AsyncSession, spec: RuleSpec, body: str, origin: str | None, actor: str) -> Rule:
    """Creates or replaces a rule, with an audit row saying who did it and from where."""
    now = utcnow()
    row = await session.get(Rule, spec.id)
    action = "rule.created" if row is None else "rule.updated"
    if row is None:
        row = Rule(id=spec.id, created_at=now)
        session.add(row)
    changed = row.body != body or row.enabled != spec.enabled
    row.name, row.severity, row.enabled = spec.name, spec.severity, spec.enabled
    row.body, row.spec, row.origin, row.updated_at = body, spec.to_stored(), origin, now
    session.add(AuditEntry(at=now, actor=actor, action=action, target_kind="rule", target_id=spec.id,
                           detail={"origin": origin, "changed": changed, "enabled": spec.enabled}))
    await session.flush()
    return row


async def set_rule_enabled(session: AsyncSession, rule_id: str, enabled: bool, actor: str) -> Rule | None:
    row = await session.get(Rule, rule_id)
    if row is None:
        return None
    row.enabled = enabled
    row.spec = {**row.spec, "enabled": enabled}
    row.updated_at = utcnow()
    session.add(AuditEntry(actor=actor, action="rule.enabled" if enabled else "rule.disabled",
                           target_kind="rule", target_id=rule_id, detail=None))
    return row


async def list_rules(session: AsyncSession) -> list[Rule]:
    return list((await session.scalars(sa.select(Rule).order_by(Rule.id))).all())


async def load_enabled_rules(session: AsyncSession) -> list[RuleSpec]:
    """Every enabled rule, validated again; one that no longer loads is skipped and logged, not fatal."""
    rows = await session.scalars(sa.select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.id))
    specs: list[RuleSpec] = []
    for row in rows:
        try:
            specs.append(parse_rule(row.spec, origin=row.origin or f"rule {row.id}"))
        except RuleError as exc:
            logger.error("rule skipped rule=%s reason=%r", row.id, str(exc))
    return specs


async def rules_revision(session: AsyncSession) -> tuple[int, str]:
    """Changes whenever a rule is added, changed, enabled or disabled: (count, latest update)."""
    count, latest = (await session.execute(sa.select(sa.func.count(), sa.func.max(Rule.updated_at)))).one()
    return int(count), str(latest)


# --- incidents --------------------------------------------------------------------------------------


def _view(row: Incident) -> IncidentView:
    return IncidentView(
        id=row.id, first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at, lat=row.lat, lon=row.lon,
        actors=list(row.actors or []), perpetrator=row.perpetrator, tactics=list(row.tactics or []),
        killed=row.killed, place=row.place, country=row.country,
    )


async def incident_of_event(session: AsyncSession, event_id: str) -> IncidentView | None:
    """The incident a report was already assigned to (a redelivered or re-classified event)."""
    report = await session.get(IncidentReport, event_id)
    if report is None:
        return None
    row = await session.get(Incident, report.incident_id)
    return _view(row) if row else None


async def candidate_incidents(session: AsyncSession, at: datetime, window: timedelta) -> list[IncidentView]:
    """Open incidents whose time span comes within `window` of `at`."""
    rows = await session.scalars(
        sa.select(Incident).where(
            Incident.state == "open",
            Incident.last_seen_at >= at - window,
            Incident.first_seen_at <= at + window,
        )
    )
    return [_view(r) for r in rows]


async def save_incident(session: AsyncSession, view: IncidentView) -> Incident:
    row = await session.get(Incident, view.id)
    if row is None:
        row = Incident(id=view.id, state="open", report_count=0, source_count=0, version=1)
        session.add(row)
    row.first_seen_at, row.last_seen_at = view.first_seen_at, view.last_seen_at
    row.lat, row.lon, row.country, row.place = view.lat, view.lon, view.country, view.place
    row.actors, row.perpetrator, row.tactics, row.killed = view.actors, view.perpetrator, view.tactics, view.killed
    await session.flush()
    return row


async def add_report(session: AsyncSession, incident_id: str, event_id: str, source_id: str) -> bool:
    """Links a report to its incident; False when it already was (unique per event)."""
    stmt = _insert(session, IncidentReport).values(
        event_id=event_id, incident_id=incident_id, source_id=source_id, added_at=utcnow()
    ).on_conflict_do_nothing(index_elements=["event_id"])
    return bool((await session.execute(stmt)).rowcount)


async def incident_reports(session: AsyncSession, incident_id: str) -> tuple[list[str], list[str]]:
    """(event ids in arrival order, distinct source ids) of an incident; also refreshes its counters."""
    rows = (await session.execute(
        sa.select(IncidentReport.event_id, IncidentReport.source_id)
        .where(IncidentReport.incident_id == incident_id)
        .order_by(IncidentReport.added_at, IncidentReport.event_id)
    )).all()
    events = [r.event_id for r in rows]
    sources = sorted({r.source_id for r in rows})
    row = await session.get(Incident, incident_id)
    if row is not None:
        row.report_count, row.source_count = len(events), len(sources)
    return events, sources


# --- alerts -----------------------------------------------------------------------------------------


async def alerts_of_incident(session: AsyncSession, incident_id: str) -> dict[str, Alert]:
    rows = await session.scalars(sa.select(Alert).where(Alert.incident_id == incident_id))
    return {row.rule_id: row for row in rows}


async def save_alert(session: AsyncSession, payload: dict[str, Any], *, alert_id: str, rule_id: str,
                     incident_id: str, severity: str, version: int, fired_at: datetime,
                     updated_at: datetime) -> Alert:
    row = await session.get(Alert, alert_id)
    if row is None:
        row = Alert(id=alert_id, rule_id=rule_id, incident_id=incident_id, state="firing", fired_at=fired_at)
        session.add(row)
    row.severity, row.version, row.updated_at, row.payload = severity, version, updated_at, payload
    await session.flush()
    return row


async def acknowledge_alert(session: AsyncSession, alert_id: str, by: str, note: str | None) -> Alert | None:
    """firing -> acknowledged, with who, when and why (audited). Updates still flow; ack stops nothing else."""
    row = await session.get(Alert, alert_id)
    if row is None:
        return None
    now = utcnow()
    if row.state == "firing":
        row.state = "acknowledged"
    row.acknowledged_by, row.acknowledged_at, row.ack_note = by, now, note
    session.add(AuditEntry(at=now, actor=by, action="alert.acknowledged", target_kind="alert", target_id=alert_id,
                           detail={"note": note} if note else None))
    return row


async def list_alerts(session: AsyncSession, limit: int = 100, since: datetime | None = None) -> list[Alert]:
    """Newest first (by last update)."""
    stmt = sa.select(Alert).order_by(Alert.updated_at.desc(), Alert.id).limit(limit)
    if since is not None:
        stmt = stmt.where(Alert.updated_at >= since)
    return list((await session.scalars(stmt)).all())


async def get_alert(session: AsyncSession, alert_id: str) -> Alert | None:
    return await session.get(Alert, alert_id)


async def deliveries_of_alert(session: AsyncSession, alert_id: str) -> list[DeliveryAttempt]:
    rows = await session.scalars(
        sa.select(DeliveryAttempt).where(DeliveryAttempt.alert_id == alert_id)
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)
    )
    return list(rows.all())


async def notifications_of_alert(session: AsyncSession, alert_id: str) -> list[Notification]:
    rows = await session.scalars(
        sa.select(Notification).where(Notification.alert_id == alert_id).order_by(Notification.id)
    )
    return list(rows.all())


# --- subscriptions ----------------------------------------------------------------------------------


async def add_subscription(
    session: AsyncSession, url: str, secret: str | None = None, name: str | None = None, *,
    rule_ids: list[str] | None = None, min_severity: str | None = None, actor: str = "cli",
) -> tuple[Subscription, str]:
    """A new webhook endpoint and its signing secret (generated unless given: show it to ops once)."""
    if min_severity is not None and min_severity not in SEVERITY_RANK:
        raise ValueError(f"min_severity must be one of {', '.join(SEVERITY_RANK)}")
    secret = secret or new_secret()
    row = Subscription(url=url, name=name, secret=secret, enabled=True, rule_ids=rule_ids,
                       min_severity=min_severity, created_at=utcnow())
    session.add(row)
    await session.flush()
    session.add(AuditEntry(actor=actor, action="subscription.created", target_kind="subscription",
                           target_id=str(row.id), detail={"url": url, "name": name}))
    return row, secret


async def list_subscriptions(session: AsyncSession) -> list[Subscription]:
    return list((await session.scalars(sa.select(Subscription).order_by(Subscription.id))).all())


async def disable_subscription(session: AsyncSession, subscription_id: int, reason: str, actor: str) -> None:
    row = await session.get(Subscription, subscription_id)
    if row is None:
        return
    row.enabled, row.disabled_reason = False, reason
    session.add(AuditEntry(actor=actor, action="subscription.disabled", target_kind="subscription",
                           target_id=str(subscription_id), detail={"reason": reason}))


async def subscriptions_for(session: AsyncSession, rule_id: str, severity: str) -> list[Subscription]:
    """Enabled subscriptions an alert of `rule_id` goes to: the rule's `notify` list (if any), the
    subscription's own rule filter and minimum severity."""
    rule = await session.get(Rule, rule_id)
    notify = (rule.spec or {}).get("notify") if rule else None
    rank = SEVERITY_RANK.get(severity, 1)
    out = []
    for sub in await list_subscriptions(session):
        if not sub.enabled or (notify is not None and sub.id not in notify):
            continue
        if sub.rule_ids is not None and rule_id not in sub.rule_ids:
            continue
        if sub.min_severity and rank < SEVERITY_RANK.get(sub.min_severity, 0):
            continue
        out.append(sub)
    return out


# --- notifications and delivery attempts -------------------------------------------------------------


async def add_notification(session: AsyncSession, *, subscription_id: int, alert_id: str, version: int,
                           message_id: str, body: str, due: datetime) -> bool:
    """Owes one alert version to one subscriber; False if already owed (a redelivered AlertMessage)."""
    stmt = _insert(session, Notification).values(
        subscription_id=subscription_id, alert_id=alert_id, alert_version=version, message_id=message_id,
        body=body, state="pending", attempts=0, next_attempt_at=due, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["subscription_id", "alert_id", "alert_version"])
    return bool((await session.execute(stmt)).rowcount)


async def claim_due(session: AsyncSession, now: datetime, lease: timedelta, limit: int) -> list[Notification]:
    """Pending notifications due by `now` on enabled subscriptions, each leased for `lease` so that another
    dispatcher (another process) does not send it at the same time. A crash mid-send means a resend
    after the lease, never a loss."""
    rows = (await session.scalars(
        sa.select(Notification)
        .join(Subscription, Subscription.id == Notification.subscription_id)
        .where(Notification.state == "pending", Notification.next_attempt_at <= now,
               Subscription.enabled.is_(True))
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )).all()
    claimed = []
    for row in rows:
        result = await session.execute(
            sa.update(Notification)
            .where(Notification.id == row.id, Notification.state == "pending",
                   Notification.next_attempt_at == row.next_attempt_at)
            .values(next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            claimed.append(row)
    return claimed


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the next pending notification of an enabled subscription is due (a disabled subscription's
    notifications wait, pending, until it is enabled again)."""
    return (await session.execute(
        sa.select(sa.func.min(Notification.next_attempt_at))
        .join(Subscription, Subscription.id == Notification.subscription_id)
        .where(Notification.state == "pending", Subscription.enabled.is_(True))
    )).scalar_one_or_none()


async def get_subscription(session: AsyncSession, subscription_id: int) -> Subscription | None:
    return await session.get(Subscription, subscription_id)


async def record_attempt(
    session: AsyncSession, notification_id: int, *, attempt: int, attempted_at: datetime, outcome: str,
    status_code: int | None, latency_ms: float | None, error: str | None, state: str,
    next_attempt_at: datetime | None,
) -> None:
    """One `deliveries` row for the attempt, and the notification's new state."""
    row = await session.get(Notification, notification_id)
    if row is None:
        return
    session.add(DeliveryAttempt(
        notification_id=notification_id, subscription_id=row.subscription_id, alert_id=row.alert_id,
        attempt=attempt, attempted_at=attempted_at, outcome=outcome, status_code=status_code,
        latency_ms=latency_ms, error=error,
    ))
    row.attempts, row.state, row.next_attempt_at, row.last_error = attempt, state, next_attempt_at, error
    if state == "delivered":
        row.delivered_at = attempted_at


async def list_notifications(session: AsyncSession, state: str | None = None, limit: int = 100
                             ) -> list[Notification]:
    """Newest first; `state="failed"` lists what is kept for replay."""
    stmt = sa.select(Notification).order_by(Notification.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(Notification.state == state)
    return list((await session.scalars(stmt)).all())


async def requeue_notification(session: AsyncSession, notification_id: int, actor: str) -> bool:
    """Replays a failed (or pending) notification now: same body, same webhook-id."""
    row = await session.get(Notification, notification_id)
    if row is None or row.state == "delivered":
        return False
    row.state, row.next_attempt_at = "pending", utcnow()
    session.add(AuditEntry(actor=actor, action="notification.replayed", target_kind="notification",
                           target_id=str(notification_id), detail={"alert_id": row.alert_id}))
    return True
