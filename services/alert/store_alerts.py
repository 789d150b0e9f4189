"""The SQL of alerts and silences: alert versions as decided (`lifecycle`, `muting`), acknowledgements,
silences and their audit rows. Rows in, rows out; callers own the transaction."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.store_base import NotFoundError
from shared.models import Alert, AuditEntry, Incident, Silence, SourceAlert, state_is


async def alerts_of_incident(session: AsyncSession, incident_id: str) -> dict[str, Alert]:
    rows = await session.scalars(sa.select(Alert).where(Alert.incident_id == incident_id))
    return {row.rule_id: row for row in rows}


async def save_alert(session: AsyncSession, payload: dict[str, Any], *, alert_id: str, rule_id: str,
                     incident_id: str, severity: str, version: int, fired_at: datetime,
                     updated_at: datetime, muted_by: str | None = None, resolved: bool = False,
                     page_count: int | None = None, pending: list[Any] | None = None,
                     opened: Alert | None = None) -> Alert:
    """Stores an alert version as decided: `resolved` ends it (`lifecycle.resolves`), `page_count` counts a
    re-page (`lifecycle.pages_again`). `pending`: an alert of an incident created in this transaction: nothing
    is read, and a new row is appended there for the caller to add after the incident
    (`store_incidents.add_after`); `opened`, its row when this transaction made one already."""
    row = opened if opened is not None else None if pending is not None else await session.get(Alert, alert_id)
    if row is None:
        row = Alert(id=alert_id, rule_id=rule_id, incident_id=incident_id, state="firing", fired_at=fired_at,
                    page_count=0)
        if pending is not None:
            pending.append(row)
        else:
            session.add(row)
    row.severity, row.version, row.updated_at, row.payload = severity, version, updated_at, payload
    row.muted_by = muted_by
    if resolved:
        row.state, row.resolved_at = "resolved", updated_at
    if page_count is not None:
        row.page_count, row.last_paged_at = page_count, updated_at
    if pending is None:
        await session.flush()
    return row


async def acknowledge_alert(session: AsyncSession, row: Alert, state: str, by: str, note: str | None,
                            now: datetime) -> Alert:
    """Records an acknowledgement: the new `state` (`lifecycle.acknowledge`), who, when and why (audited)."""
    alert_id = row.id
    row.state = state
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


async def firing_alerts(session: AsyncSession, paged_before: datetime, limit: int = 500) -> list[Alert]:
    """Unacknowledged alerts of open incidents the sweeper may change: muted by a silence (which may have ended),
    or unmuted on a severity III incident and last paged before `paged_before` (due a re-page). The rest of the
    firing alerts, thousands in a busy day, stay in the database (`paging.repage_due` decides for these)."""
    last_paged = sa.func.coalesce(Alert.last_paged_at, Alert.fired_at)
    rows = await session.scalars(
        sa.select(Alert).join(Incident, Incident.id == Alert.incident_id)
        .where(Alert.state == "firing", state_is(Incident.state, "open"),
               sa.or_(Alert.muted_by.startswith("silence ", autoescape=True),
                      sa.and_(Alert.muted_by.is_(None), Incident.severity == "III", last_paged <= paged_before)))
        .order_by(Alert.fired_at).limit(limit)
    )
    return list(rows.all())


async def resolve_alert_id(session: AsyncSession, prefix: str) -> str:
    """The full id of the alert, or operator alert on a source, whose id is or starts with `prefix` (8 characters
    at least): both are owed to subscribers under their id."""
    if await session.get(Alert, prefix) is not None or await session.get(SourceAlert, prefix) is not None:
        return prefix
    if len(prefix) < 8:
        raise NotFoundError(f"no alert {prefix}: give the id, or at least its first 8 characters")
    found = [*(await session.scalars(sa.select(Alert.id).where(Alert.id.startswith(prefix, autoescape=True))
                                     .limit(2))).all(),
             *(await session.scalars(sa.select(SourceAlert.id).where(SourceAlert.id.startswith(prefix, autoescape=True))
                                     .limit(2))).all()]
    if not found:
        raise NotFoundError(f"no alert {prefix}")
    if len(found) > 1:
        raise NotFoundError(f"{prefix} is the start of several alert ids: give more characters")
    return found[0]


async def create_silence(session: AsyncSession, *, matchers: dict, reason: str, created_by: str,
                         starts_at: datetime, ends_at: datetime, now: datetime) -> Silence:
    """A new silence (audited), as checked by `silences.check_silence`."""
    row = Silence(matchers=matchers, reason=reason, created_by=created_by, created_at=now,
                  starts_at=starts_at, ends_at=ends_at)
    session.add(row)
    await session.flush()
    session.add(AuditEntry(at=now, actor=created_by, action="silence.created", target_kind="silence",
                           target_id=str(row.id),
                           detail={"matchers": matchers, "reason": reason, "starts_at": starts_at.isoformat(),
                                   "ends_at": ends_at.isoformat()}))
    return row


async def list_silences(session: AsyncSession, *, active_at: datetime | None = None) -> list[Silence]:
    """Every silence, newest first; with `active_at`, only those muting at that time."""
    stmt = sa.select(Silence).order_by(Silence.id.desc())
    if active_at is not None:
        stmt = stmt.where(Silence.starts_at <= active_at, Silence.ends_at > active_at,
                          sa.or_(Silence.expired_at.is_(None), Silence.expired_at > active_at))
    return list((await session.scalars(stmt)).all())


async def get_silence(session: AsyncSession, silence_id: int) -> Silence:
    """The silence; raises NotFoundError."""
    row = await session.get(Silence, silence_id)
    if row is None:
        raise NotFoundError(f"no silence {silence_id}")
    return row


async def expire_silence(session: AsyncSession, row: Silence, by: str, now: datetime) -> Silence:
    """Ends the silence at `now` (audited)."""
    row.expired_at, row.expired_by = now, by
    session.add(AuditEntry(at=now, actor=by, action="silence.expired", target_kind="silence",
                           target_id=str(row.id), detail={"reason": row.reason}))
    return row


async def alerts_in(session: AsyncSession, states: tuple[str, ...]) -> list[Alert]:
    """Alerts in one of `states`, latest update first."""
    rows = await session.scalars(sa.select(Alert).where(Alert.state.in_(states))
                                 .order_by(Alert.updated_at.desc()))
    return list(rows.all())
