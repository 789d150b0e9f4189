"""The SQL of shift digests: who takes one, whether a shift's digest is already owed, and the alerts a digest
reads (one bounded query). Callers own the transaction."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.channels import EMAIL
from services.alert.digest import Entry
from shared.models import Alert, Incident, Notification, Subscription


async def digest_subscriptions(session: AsyncSession) -> list[Subscription]:
    """Enabled email subscriptions with digest times (a disabled or removed one gets no digest)."""
    rows = await session.scalars(
        sa.select(Subscription)
        .where(Subscription.channel == EMAIL, Subscription.enabled.is_(True), Subscription.removed_at.is_(None),
               Subscription.digest.is_not(None))
        .order_by(Subscription.id)
    )
    return [row for row in rows if row.digest]  # a JSON null is not SQL NULL on every database


async def owed(session: AsyncSession, subscription_id: int, key: str) -> bool:
    """Is the notification keyed `key` (a digest's `digest:<sub>:<shift end>`) already recorded?"""
    found = await session.execute(
        sa.select(Notification.id).where(Notification.subscription_id == subscription_id,
                                         Notification.alert_id == key).limit(1))
    return found.first() is not None


def _entry(alert: Alert, incident: Incident) -> Entry:
    payload = alert.payload or {}
    place = (incident.place or {}).get("name") or (payload.get("place") or {}).get("name")
    return Entry(
        alert_id=alert.id, rule_id=alert.rule_id, rule_severity=alert.severity, alert_state=alert.state,
        fired_at=alert.fired_at, page_count=alert.page_count or 0, title=payload.get("title") or "(no headline)",
        place=place, actors=tuple(incident.actors or payload.get("actors") or ()),
        tactics=tuple(incident.tactics or payload.get("tactics") or ()), incident_id=incident.id,
        incident_state=incident.state, incident_severity=incident.severity, corroboration=incident.corroboration,
        first_seen_at=incident.first_seen_at, last_seen_at=incident.last_seen_at,
        escalated_at=incident.escalated_at, disputed_at=incident.disputed_at, dispute_reason=incident.dispute_reason,
    )


async def digest_entries(session: AsyncSession, start: datetime, end: datetime, limit: int
                         ) -> tuple[list[Entry], bool]:
    """Unmuted alerts fired before `end` that may belong in a digest of [start, end): fired during it, of an
    incident that escalated during it, still firing (unacknowledged), or of a disputed incident; newest first,
    at most `limit`. Returns (entries, whether the limit cut the list)."""
    rows = (await session.execute(
        sa.select(Alert, Incident)
        .join(Incident, Incident.id == Alert.incident_id)
        .where(
            Alert.muted_by.is_(None), Alert.fired_at < end,
            sa.or_(
                Alert.fired_at >= start,
                sa.and_(Incident.escalated_at >= start, Incident.escalated_at < end),
                Alert.state == "firing",
                sa.and_(Incident.disputed_at < end,
                        sa.or_(Incident.state == "open", Incident.disputed_at >= start)),
            ),
        )
        .order_by(Alert.fired_at.desc(), Alert.id)
        .limit(limit + 1)
    )).all()
    return [_entry(alert, incident) for alert, incident in rows[:limit]], len(rows) > limit
