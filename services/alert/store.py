"""The alert service's SQL (the only module that builds queries): rules, incidents, alerts, silences,
subscriptions, notifications and delivery attempts, and the event log read back for conditions and dry runs.
Callers own the transaction (`session_scope`). Domain errors carry a `reason` a person can act on."""

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.incidents import IncidentView
from services.alert.paging import check_quiet_hours, wants
from services.alert.rules import RuleError, RuleSpec, parse_rule
from services.alert.signing import new_secret
from services.alert.silences import SilenceError, SilenceView, check_matchers, muted_by
from shared.errors import ReasonError
from shared.messages import AlertMessage, EventMessage
from shared.models import (
    Alert,
    AuditEntry,
    DeliveryAttempt,
    Event,
    Incident,
    IncidentReport,
    Notification,
    Post,
    Rule,
    Silence,
    Subscription,
    utcnow,
)

logger = logging.getLogger(__name__)
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
MIN_SEVERITIES = (*SEVERITY_RANK, "I", "II", "III")


class NotFoundError(ReasonError, LookupError):
    """No such alert, silence or subscription; `reason` names what was asked for."""


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


def _cell_lock_key(cell: tuple[int, int]) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks (a collision only makes two cells take turns)."""
    digest = hashlib.sha256(f"watchfloor:incident-cell:{cell[0]}:{cell[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_places(session: AsyncSession, cells: list[tuple[int, int]]) -> None:
    """Makes workers deciding about the same place take turns, until this transaction ends. Call it first in
    the transaction, before anything is read: what is read after it cannot change before the commit.

    PostgreSQL: a transaction-scoped advisory lock per cell, taken in ascending key order (two workers
    locking overlapping cells cannot deadlock). SQLite has one writer: BEGIN IMMEDIATE takes the write lock
    at once (a deferred transaction would read first, and two processes could both decide to open)."""
    if session.get_bind().dialect.name == "postgresql":
        for key in sorted({_cell_lock_key(c) for c in cells}):
            await session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    else:
        await session.execute(sa.text("BEGIN IMMEDIATE"))


async def lock_incident(session: AsyncSession, incident_id: str) -> Incident | None:
    """The incident row, locked until the transaction ends (PostgreSQL; SQLite has one writer anyway): every
    decision about its alerts (versions, inhibition) is taken by one transaction at a time."""
    return await session.get(Incident, incident_id, with_for_update=True, populate_existing=True)


async def dispute_incident(session: AsyncSession, incident_id: str, event_id: str, reason: str,
                           at: datetime) -> bool:
    """Marks the incident disputed by the denial `event_id`; False if it already was (a redelivery, or a
    second denial: one update says it is disputed, not one per denial)."""
    row = await lock_incident(session, incident_id)
    if row is None or row.disputed_at is not None:
        return False
    row.disputed_at, row.disputed_by, row.dispute_reason = at, event_id, reason
    await session.flush()
    return True


async def save_incident(session: AsyncSession, view: IncidentView) -> Incident:
    row = await lock_incident(session, view.id)
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
                     updated_at: datetime, muted_by: str | None = None) -> Alert:
    row = await session.get(Alert, alert_id)
    if row is None:
        row = Alert(id=alert_id, rule_id=rule_id, incident_id=incident_id, state="firing", fired_at=fired_at,
                    page_count=0)
        session.add(row)
    row.severity, row.version, row.updated_at, row.payload = severity, version, updated_at, payload
    row.muted_by = muted_by
    if payload.get("kind") == "resolved":
        row.state, row.resolved_at = "resolved", updated_at
    if payload.get("kind") == "repaged":
        row.page_count, row.last_paged_at = int(payload.get("page_count") or 0), updated_at
    await session.flush()
    return row


async def acknowledge_alert(session: AsyncSession, alert_id: str, by: str, note: str | None) -> Alert:
    """firing -> acknowledged, with who, when and why (audited). Ack stops re-pages, not updates: later
    versions still go to subscribers, and the alert keeps its acknowledgement. Raises NotFoundError."""
    row = await session.get(Alert, alert_id)
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
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
    rule_ids: list[str] | None = None, min_severity: str | None = None, quiet_hours: dict | None = None,
    actor: str = "cli",
) -> tuple[Subscription, str]:
    """A new webhook endpoint and its signing secret (generated unless given: show it to ops once).
    `min_severity`: low…critical (the rule's) or I…III (the incident's); `quiet_hours`: see paging.py."""
    if min_severity is not None and min_severity not in MIN_SEVERITIES:
        raise ValueError(f"min_severity must be one of {', '.join(MIN_SEVERITIES)}")
    quiet_hours = check_quiet_hours(quiet_hours)
    secret = secret or new_secret()
    row = Subscription(url=url, name=name, secret=secret, enabled=True, rule_ids=rule_ids,
                       min_severity=min_severity, quiet_hours=quiet_hours, created_at=utcnow())
    session.add(row)
    await session.flush()
    session.add(AuditEntry(actor=actor, action="subscription.created", target_kind="subscription",
                           target_id=str(row.id), detail={"url": url, "name": name}))
    return row, secret


async def set_subscription_filters(
    session: AsyncSession, subscription_id: int, *, min_severity: str | None, quiet_hours: dict | None,
    actor: str,
) -> Subscription:
    """Replaces a subscription's minimum severity and quiet hours (audited); None clears one."""
    row = await session.get(Subscription, subscription_id)
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id}")
    if min_severity is not None and min_severity not in MIN_SEVERITIES:
        raise ValueError(f"min_severity must be one of {', '.join(MIN_SEVERITIES)}")
    row.min_severity, row.quiet_hours = min_severity, check_quiet_hours(quiet_hours)
    session.add(AuditEntry(actor=actor, action="subscription.filters", target_kind="subscription",
                           target_id=str(subscription_id),
                           detail={"min_severity": min_severity, "quiet_hours": row.quiet_hours}))
    return row


async def list_subscriptions(session: AsyncSession, include_removed: bool = False) -> list[Subscription]:
    """Subscriptions by id; removed ones (kept for the delivery history) only with `include_removed`."""
    stmt = sa.select(Subscription).order_by(Subscription.id)
    if not include_removed:
        stmt = stmt.where(Subscription.removed_at.is_(None))
    return list((await session.scalars(stmt)).all())


async def disable_subscription(session: AsyncSession, subscription_id: int, reason: str, actor: str) -> None:
    """Stops deliveries (audited); what fires meanwhile is recorded as missed and offered on enable."""
    row = await session.get(Subscription, subscription_id)
    if row is None:
        return
    if row.enabled or row.disabled_at is None:
        row.disabled_at = utcnow()
    row.enabled, row.disabled_reason = False, reason
    session.add(AuditEntry(actor=actor, action="subscription.disabled", target_kind="subscription",
                           target_id=str(subscription_id), detail={"reason": reason}))


async def subscriptions_for(session: AsyncSession, rule_id: str, severity: str,
                            incident_severity: str | None = None, *, include_disabled: bool = False
                            ) -> list[Subscription]:
    """Enabled subscriptions an alert of `rule_id` goes to: the rule's `notify` list (if any), the
    subscription's own rule filter and minimum severity (the rule's, or the incident's I–III). With
    `include_disabled`, disabled ones too (what they miss is recorded); never removed ones."""
    rule = await session.get(Rule, rule_id)
    notify = (rule.spec or {}).get("notify") if rule else None
    out = []
    for sub in await list_subscriptions(session):
        if (not sub.enabled and not include_disabled) or (notify is not None and sub.id not in notify):
            continue
        if sub.rule_ids is not None and rule_id not in sub.rule_ids:
            continue
        if not wants(sub.min_severity, severity, incident_severity):
            continue
        out.append(sub)
    return out


# --- notifications and delivery attempts -------------------------------------------------------------


async def add_notification(session: AsyncSession, *, subscription_id: int, alert_id: str, version: int,
                           message_id: str, body: str, due: datetime, state: str = "pending") -> bool:
    """Owes one alert version to one subscriber; False if already owed (a redelivered AlertMessage).
    `state="missed"`: the subscription is disabled; it is sent only if replayed."""
    stmt = _insert(session, Notification).values(
        subscription_id=subscription_id, alert_id=alert_id, alert_version=version, message_id=message_id,
        body=body, state=state, attempts=0, next_attempt_at=due if state == "pending" else None,
        created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["subscription_id", "alert_id", "alert_version"])
    return bool((await session.execute(stmt)).rowcount)


async def supersede_held(session: AsyncSession, *, subscription_id: int, alert_id: str, version: int,
                         now: datetime) -> int:
    """Older versions of an alert still held for a subscriber (quiet hours: pending, never tried, due later)
    are superseded by `version`: at the end of the window the subscriber gets the latest, not a burst."""
    result = await session.execute(
        sa.update(Notification)
        .where(Notification.subscription_id == subscription_id, Notification.alert_id == alert_id,
               Notification.alert_version < version, Notification.state == "pending", Notification.attempts == 0,
               Notification.next_attempt_at > now)
        .values(state="superseded", last_error=f"superseded by version {version} while held for quiet hours")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


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
    row.state, row.next_attempt_at, row.replay_base = "pending", utcnow(), row.attempts
    session.add(AuditEntry(actor=actor, action="notification.replayed", target_kind="notification",
                           target_id=str(notification_id), detail={"alert_id": row.alert_id}))
    return True


async def notified(session: AsyncSession, alert_id: str) -> bool:
    """Has any version of the alert been owed to a subscriber (i.e. did a subscriber ever hear of it)?"""
    found = await session.execute(sa.select(Notification.id).where(Notification.alert_id == alert_id).limit(1))
    return found.first() is not None


# --- silences -----------------------------------------------------------------------------------------


def silence_view(row: Silence) -> SilenceView:
    return SilenceView(id=row.id, matchers=dict(row.matchers), reason=row.reason, created_by=row.created_by,
                       starts_at=row.starts_at, ends_at=row.ends_at, expired_at=row.expired_at)


async def create_silence(session: AsyncSession, *, matchers: dict, reason: str, created_by: str,
                         starts_at: datetime, ends_at: datetime) -> Silence:
    """A new silence (audited). Raises SilenceError: no reason, no matcher, an unknown code, an end not after
    the start, or an end already past."""
    checked = check_matchers(matchers)
    if not (reason or "").strip():
        raise SilenceError("a silence needs a reason: the next shift must know why alerts are muted")
    if not (created_by or "").strip():
        raise SilenceError("a silence needs its creator")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise SilenceError("give starts_at and ends_at with a time zone, e.g. 2026-11-24T18:00:00Z")
    if ends_at <= starts_at:
        raise SilenceError(f"ends_at ({ends_at.isoformat()}) must be after starts_at ({starts_at.isoformat()})")
    now = utcnow()
    if ends_at <= now:
        raise SilenceError(f"ends_at ({ends_at.isoformat()}) is already past")
    row = Silence(matchers=checked, reason=reason.strip(), created_by=created_by, created_at=now,
                  starts_at=starts_at, ends_at=ends_at)
    session.add(row)
    await session.flush()
    session.add(AuditEntry(at=now, actor=created_by, action="silence.created", target_kind="silence",
                           target_id=str(row.id),
                           detail={"matchers": checked, "reason": row.reason, "starts_at": starts_at.isoformat(),
                                   "ends_at": ends_at.isoformat()}))
    return row


async def list_silences(session: AsyncSession, *, active_at: datetime | None = None) -> list[Silence]:
    """Every silence, newest first; with `active_at`, only those muting at that time."""
    stmt = sa.select(Silence).order_by(Silence.id.desc())
    if active_at is not None:
        stmt = stmt.where(Silence.starts_at <= active_at, Silence.ends_at > active_at,
                          sa.or_(Silence.expired_at.is_(None), Silence.expired_at > active_at))
    return list((await session.scalars(stmt)).all())


async def active_silences(session: AsyncSession, now: datetime) -> list[SilenceView]:
    return [silence_view(row) for row in reversed(await list_silences(session, active_at=now))]


async def expire_silence(session: AsyncSession, silence_id: int, by: str) -> Silence:
    """Ends a silence now (audited). Alerts it muted that still fire unacknowledged are sent by the next
    sweep. Raises NotFoundError, or SilenceError if it already ended."""
    row = await session.get(Silence, silence_id)
    if row is None:
        raise NotFoundError(f"no silence {silence_id}")
    now = utcnow()
    if row.expired_at is not None or row.ends_at <= now:
        raise SilenceError(f"silence {silence_id} already ended at {(row.expired_at or row.ends_at).isoformat()}")
    row.expired_at, row.expired_by = now, by
    session.add(AuditEntry(at=now, actor=by, action="silence.expired", target_kind="silence",
                           target_id=str(silence_id), detail={"reason": row.reason}))
    return row


async def preview_silence(session: AsyncSession, matchers: dict, now: datetime) -> list[Alert]:
    """The firing or acknowledged alerts a silence with these matchers would mute now."""
    view = SilenceView(id=0, matchers=check_matchers(matchers), reason="preview", created_by="preview",
                       starts_at=now, ends_at=now + timedelta(seconds=1))
    rows = await session.scalars(sa.select(Alert).where(Alert.state.in_(("firing", "acknowledged")))
                                 .order_by(Alert.updated_at.desc()))
    return [row for row in rows if muted_by([view], AlertMessage.model_validate(row.payload), now)]


# --- incidents for the console and the API --------------------------------------------------------------


async def list_incidents(session: AsyncSession, *, state: str | None = None, since: datetime | None = None,
                         limit: int = 200) -> list[Incident]:
    """Newest first (by last report); `state` is open or resolved; `since` compares with the last report."""
    stmt = sa.select(Incident).order_by(Incident.last_seen_at.desc(), Incident.id).limit(limit)
    if state is not None:
        stmt = stmt.where(Incident.state == state)
    if since is not None:
        stmt = stmt.where(Incident.last_seen_at >= since)
    return list((await session.scalars(stmt)).all())


# --- the event log read back (conditions over time, dry runs, explain) ----------------------------------


def _event_message(event: Event, post: Post | None) -> EventMessage:
    return EventMessage(
        event_id=event.id, post_id=event.post_id, source_id=event.source_id,
        url=post.url if post else None, title=post.title if post else "", text=post.text if post else "",
        lang=post.lang if post else None, published_at=event.published_at,
        fetched_at=post.fetched_at if post else None, classified_at=event.classified_at,
        is_event=event.is_event, actors=event.actors or [], perpetrator=event.perpetrator,
        tactics=event.tactics or [], place=event.place, killed=event.killed, confidence=event.confidence,
        classifier=event.classifier, gazetteer=event.gazetteer,
    )


async def event_message(session: AsyncSession, event_id: str) -> EventMessage | None:
    """The EventMessage classify published for a post, rebuilt from the `events` row and its post."""
    row = (await session.execute(
        sa.select(Event, Post).outerjoin(Post, Post.id == Event.post_id).where(Event.id == event_id)
    )).first()
    return _event_message(row[0], row[1]) if row else None


async def history(session: AsyncSession, *, since: datetime, until: datetime,
                  box: tuple[float, float, float, float] | None = None, country: str | None = None,
                  limit: int = 50_000) -> list[tuple[EventMessage, str | None]]:
    """Events of the log reported between `since` and `until` (published, else classified), oldest first,
    each with its incident id when the alert service assigned one; optionally only within a lat/lon box
    or a country (a coarse cut: callers test the exact area)."""
    at = sa.func.coalesce(Event.published_at, Event.classified_at)
    stmt = (
        sa.select(Event, Post, IncidentReport.incident_id)
        .outerjoin(Post, Post.id == Event.post_id)
        .outerjoin(IncidentReport, IncidentReport.event_id == Event.id)
        .where(Event.is_event.is_(True), at >= since, at <= until)
        .order_by(at, Event.id).limit(limit)
    )
    if box is not None:
        stmt = stmt.where(Event.lat >= box[0], Event.lon >= box[1], Event.lat <= box[2], Event.lon <= box[3])
    if country is not None:
        stmt = stmt.where(Event.country == country.upper())
    rows = (await session.execute(stmt)).all()
    out = []
    for event, post, incident_id in rows:
        try:
            out.append((_event_message(event, post), incident_id))
        except ValueError as exc:  # a row classify wrote under an older contract: skipped, not fatal
            logger.warning("event log row skipped event=%s reason=%r", event.id[:8], str(exc))
    return out


async def rule_alert_history(session: AsyncSession, rule_id: str) -> tuple[set[str], datetime | None]:
    """(incidents the rule alerted on, when the latest of them began): what `at_least` does not count twice."""
    rows = (await session.execute(
        sa.select(Alert.incident_id, Incident.first_seen_at)
        .join(Incident, Incident.id == Alert.incident_id).where(Alert.rule_id == rule_id)
    )).all()
    return {r.incident_id for r in rows}, max((r.first_seen_at for r in rows), default=None)


# --- sweeps: resolution, re-pages, ended silences -------------------------------------------------------


async def quiet_incidents(session: AsyncSession, quiet_since: datetime, limit: int = 100) -> list[str]:
    """Open incidents whose latest report arrived before `quiet_since`."""
    latest = sa.func.max(IncidentReport.added_at)
    rows = await session.execute(
        sa.select(Incident.id).join(IncidentReport, IncidentReport.incident_id == Incident.id)
        .where(Incident.state == "open").group_by(Incident.id).having(latest < quiet_since).limit(limit)
    )
    return [r[0] for r in rows]


async def resolve_incident(session: AsyncSession, incident_id: str, now: datetime) -> Incident | None:
    """open -> resolved (locked); None when another sweeper got there first."""
    row = await lock_incident(session, incident_id)
    if row is None or row.state != "open":
        return None
    row.state, row.resolved_at, row.version = "resolved", now, row.version + 1
    return row


async def firing_alerts(session: AsyncSession, limit: int = 500) -> list[Alert]:
    """Unacknowledged alerts of open incidents: candidates for a re-page or for unmuting."""
    rows = await session.scalars(
        sa.select(Alert).join(Incident, Incident.id == Alert.incident_id)
        .where(Alert.state == "firing", Incident.state == "open").order_by(Alert.fired_at).limit(limit)
    )
    return list(rows.all())


async def resolve_alert_id(session: AsyncSession, prefix: str) -> str:
    """The full id of the alert whose id is or starts with `prefix` (8 characters at least)."""
    if await session.get(Alert, prefix) is not None:
        return prefix
    if len(prefix) < 8:
        raise NotFoundError(f"no alert {prefix}: give the id, or at least its first 8 characters")
    found = (await session.scalars(sa.select(Alert.id).where(Alert.id.startswith(prefix, autoescape=True))
                                   .limit(2))).all()
    if not found:
        raise NotFoundError(f"no alert {prefix}")
    if len(found) > 1:
        raise NotFoundError(f"{prefix} is the start of several alert ids: give more characters")
    return found[0]
