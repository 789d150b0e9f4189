"""The SQL of what is owed to subscribers and every attempt to send it; callers own the transaction.

    notification: pending ──▶ delivered
                     │  ▲ replay (same webhook-id, retry schedule afresh)
                     ▼  │
                   failed          missed (fired while its subscription was disabled)
                                   superseded, cancelled (subscription removed), skipped (an empty shift
                                   digest its recipient skips): never sent

An attempt is a `deliveries` row written *before* the request (outcome `sending`) and completed after it, so
a sender killed mid-request leaves a row; the next claimant marks it `interrupted`.
"""

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import AuditEntry, DeliveryAttempt, Event, Notification, Post, Subscription, state_is, utcnow

REPLAYABLE = ("failed", "missed")
INTERRUPTED = "no answer recorded: the sender stopped mid-request (crash or shutdown); sent again after its lease"


async def begin_attempt(session: AsyncSession, notification_id: int, now: datetime) -> tuple[int, int] | None:
    """Records the next attempt as `sending` and returns (delivery row id, attempt number); None if the
    notification is gone. The caller commits before it sends. An earlier attempt still `sending` can only be
    from a sender that died (this one holds the lease), so it becomes `interrupted`."""
    return (await begin_attempts(session, [notification_id], now)).get(notification_id)


async def begin_attempts(session: AsyncSession, notification_ids: list[int], now: datetime
                         ) -> dict[int, tuple[int, int]]:
    """`begin_attempt` for a dispatcher's pass, in three statements: notification id -> (delivery row id,
    attempt number), for those still there."""
    if not notification_ids:
        return {}
    await session.execute(
        sa.update(DeliveryAttempt)
        .where(DeliveryAttempt.notification_id.in_(notification_ids), DeliveryAttempt.outcome == "sending")
        .values(outcome="interrupted", error=INTERRUPTED)
        .execution_options(synchronize_session=False)
    )
    counted = (await session.execute(
        sa.update(Notification).where(Notification.id.in_(notification_ids))
        .values(attempts=Notification.attempts + 1)
        .returning(Notification.id, Notification.attempts, Notification.subscription_id, Notification.alert_id)
        .execution_options(synchronize_session=False)
    )).all()
    if not counted:
        return {}
    rows = (await session.execute(
        sa.insert(DeliveryAttempt).returning(DeliveryAttempt.id, DeliveryAttempt.notification_id,
                                             sort_by_parameter_order=True),
        [{"notification_id": r.id, "subscription_id": r.subscription_id, "alert_id": r.alert_id,
          "attempt": r.attempts, "attempted_at": now, "outcome": "sending"} for r in counted],
    )).all()
    attempts = {r.id: r.attempts for r in counted}
    return {r.notification_id: (r.id, attempts[r.notification_id]) for r in rows}


@dataclass(frozen=True)
class Finished:
    """One attempt's outcome, as `finish_attempt` records it."""

    delivery_id: int
    notification_id: int
    outcome: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    state: str
    next_attempt_at: datetime | None
    attempted_at: datetime


async def finish_attempts(session: AsyncSession, done: list[Finished]) -> None:
    """`finish_attempt` for a dispatcher's pass: two statements, whatever its size."""
    if not done:
        return
    await session.execute(
        sa.update(DeliveryAttempt.__table__).where(DeliveryAttempt.__table__.c.id == sa.bindparam("b_id"))
        .values(outcome=sa.bindparam("b_outcome"), status_code=sa.bindparam("b_status"),
                latency_ms=sa.bindparam("b_latency"), error=sa.bindparam("b_error")),
        [{"b_id": d.delivery_id, "b_outcome": d.outcome, "b_status": d.status_code, "b_latency": d.latency_ms,
          "b_error": d.error} for d in done],
    )
    await session.execute(
        sa.update(Notification.__table__).where(Notification.__table__.c.id == sa.bindparam("b_id"))
        .values(state=sa.bindparam("b_state"), next_attempt_at=sa.bindparam("b_next"),
                last_error=sa.bindparam("b_error"), delivered_at=sa.bindparam("b_delivered")),
        [{"b_id": d.notification_id, "b_state": d.state, "b_next": d.next_attempt_at, "b_error": d.error,
          "b_delivered": d.attempted_at if d.state == "delivered" else None} for d in done],
    )


async def posts_fetched_at(session: AsyncSession, event_ids: list[str]) -> dict[str, datetime]:
    """`post_fetched_at` for many events, in one query."""
    if not event_ids:
        return {}
    rows = await session.execute(
        sa.select(Event.id, Post.fetched_at).join(Post, Event.post_id == Post.id).where(Event.id.in_(event_ids)))
    return {event_id: at for event_id, at in rows}


async def supersede_missed(session: AsyncSession, *, subscription_id: int, alert_id: str, version: int) -> int:
    """Older missed versions of an alert give way to `version`: a replay sends the latest, not a burst."""
    result = await session.execute(
        sa.update(Notification)
        .where(Notification.subscription_id == subscription_id, Notification.alert_id == alert_id,
               Notification.alert_version < version, Notification.state == "missed")
        .values(state="superseded", last_error=f"superseded by version {version} while the subscription was disabled")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


def _owed(*, replayable: bool, subscription_id: int | None, alert_id: str | None,
          since: datetime | None) -> sa.Select[tuple[Notification]]:
    stmt = sa.select(Notification)
    if replayable:
        stmt = stmt.where(Notification.state.in_(REPLAYABLE))
    if subscription_id is not None:
        stmt = stmt.where(Notification.subscription_id == subscription_id)
    if alert_id is not None:
        stmt = stmt.where(Notification.alert_id == alert_id)
    if since is not None:
        stmt = stmt.where(Notification.created_at >= since)
    return stmt


async def list_owed(session: AsyncSession, *, replayable: bool = False, subscription_id: int | None = None,
                    alert_id: str | None = None, since: datetime | None = None, limit: int = 100
                    ) -> list[Notification]:
    """Notifications newest first; `replayable`: only what `replay` would send (failed or missed)."""
    stmt = _owed(replayable=replayable, subscription_id=subscription_id, alert_id=alert_id, since=since)
    return list((await session.scalars(stmt.order_by(Notification.id.desc()).limit(limit))).all())


async def last_attempts(session: AsyncSession, notification_ids: list[int]) -> dict[int, DeliveryAttempt]:
    """The latest attempt of each notification (for listings)."""
    if not notification_ids:
        return {}
    latest = (sa.select(sa.func.max(DeliveryAttempt.id))
              .where(DeliveryAttempt.notification_id.in_(notification_ids))
              .group_by(DeliveryAttempt.notification_id))
    rows = await session.scalars(sa.select(DeliveryAttempt).where(DeliveryAttempt.id.in_(latest)))
    return {row.notification_id: row for row in rows}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def as_dict(note: Notification, last: DeliveryAttempt | None) -> dict[str, Any]:
    """A notification as `delivery list --json` and `GET /api/deliveries` show it (no body, no secret)."""
    return {
        "id": note.id, "subscription_id": note.subscription_id, "alert_id": note.alert_id,
        "alert_version": note.alert_version, "webhook_id": note.message_id, "state": note.state,
        "attempts": note.attempts, "last_error": note.last_error, "created_at": _iso(note.created_at),
        "next_attempt_at": _iso(note.next_attempt_at), "delivered_at": _iso(note.delivered_at),
        "last_attempt": None if last is None else {
            "attempt": last.attempt, "attempted_at": _iso(last.attempted_at), "outcome": last.outcome,
            "status_code": last.status_code, "latency_ms": last.latency_ms, "error": last.error,
        },
    }


@dataclass
class Replay:
    """What a replay did: how many notifications were queued, and those left out with why."""

    queued: int = 0
    skipped: dict[int, str] = field(default_factory=dict)  # subscription id -> reason
    skipped_count: int = 0


async def replay(session: AsyncSession, *, subscription_id: int | None = None, alert_id: str | None = None,
                 since: datetime | None = None, actor: str, now: datetime | None = None) -> Replay:
    """Queues failed and missed notifications again, now, with their own body and webhook-id (receivers
    de-duplicate on it); the running dispatcher sends them. Those of a disabled or removed subscription are
    left as they are and reported. Audited."""
    now = now or utcnow()
    stmt = _owed(replayable=True, subscription_id=subscription_id, alert_id=alert_id, since=since)
    rows = (await session.execute(
        stmt.add_columns(Subscription).join(Subscription, Subscription.id == Notification.subscription_id)
        .order_by(Notification.id).with_for_update(of=Notification)
    )).all()
    out = Replay()
    for note, sub in rows:
        if sub.removed_at is not None:
            out.skipped[sub.id] = f"subscription {sub.id} was removed"
        elif not sub.enabled:
            out.skipped[sub.id] = (f"subscription {sub.id} is disabled ({sub.disabled_reason}): "
                                   f"`watchfloor subscription enable {sub.id}` first")
        else:
            note.state, note.next_attempt_at, note.replay_base = "pending", now, note.attempts
            out.queued += 1
            continue
        out.skipped_count += 1
    if out.queued:
        session.add(AuditEntry(at=now, actor=actor, action="deliveries.replayed", target_kind="subscription",
                               target_id=str(subscription_id) if subscription_id is not None else "*",
                               detail={"queued": out.queued, "alert_id": alert_id,
                                       "since": since.isoformat() if since else None}))
    return out


def notification_row(*, subscription_id: int, alert_id: str, version: int, message_id: str, body: str,
                     due: datetime, state: str = "pending", reason: str | None = None) -> dict[str, Any]:
    """One alert version (or one shift digest) owed to one subscriber, as `add_notifications` takes it.
    `state="missed"`: the subscription is disabled; it is sent only if replayed. `state="skipped"`: a digest
    with nothing to report, recorded (with `reason`) and never sent."""
    return {"subscription_id": subscription_id, "alert_id": alert_id, "alert_version": version,
            "message_id": message_id, "body": body, "state": state, "attempts": 0,
            "next_attempt_at": due if state == "pending" else None, "created_at": utcnow(), "last_error": reason}


async def add_notification(session: AsyncSession, **row: Any) -> bool:
    """`add_notifications` for one (`notification_row`'s arguments); False if it was already owed."""
    return bool(await add_notifications(session, [notification_row(**row)]))


async def add_notifications(session: AsyncSession, rows: list[dict[str, Any]]) -> set[tuple[int, str, int]]:
    """Owes these (`notification_row`s) in one statement; idempotent on (subscription, alert, version), so a
    redelivered AlertMessage or a second sweeper owes nothing twice. Returns the keys of the rows it created."""
    if not rows:
        return set()
    result = await session.execute(_owe(session.get_bind().dialect.name), rows)
    return {(r.subscription_id, r.alert_id, r.alert_version) for r in result}


@functools.cache
def _owe(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the key, built once per dialect (the values go as parameters;
    many rows go as SQLAlchemy's "insertmanyvalues", a few statements of many rows each)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Notification.__table__
    return insert(table).on_conflict_do_nothing(  # the table: a plain INSERT, no ORM bookkeeping
        index_elements=["subscription_id", "alert_id", "alert_version"],
    ).returning(table.c.subscription_id, table.c.alert_id, table.c.alert_version)


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
    after the lease, never a loss. At most one version of an alert per subscriber, the first due: the next
    stays due and goes in the next pass, after it, so a receiver does not see "resolved" before the
    "repaged" owed a moment earlier (a pass sends what it claims at once)."""
    rows = (await session.scalars(
        sa.select(Notification)
        .where(state_is(Notification.state, "pending"), Notification.next_attempt_at <= now, _not_disabled())
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )).all()
    first: dict[tuple[int, str], Notification] = {}
    for row in rows:
        first.setdefault((row.subscription_id, row.alert_id), row)
    rows = list(first.values())
    if not rows:
        return []
    # One statement for the pass: a row another dispatcher claimed meanwhile is due after its lease, not now.
    won = set((await session.execute(
        sa.update(Notification)
        .where(Notification.id.in_([row.id for row in rows]), Notification.state == "pending",
               Notification.next_attempt_at <= now)
        .values(next_attempt_at=now + lease)
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )).scalars().all())
    return [row for row in rows if row.id in won]


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the next pending notification of an enabled subscription is due (a disabled subscription's
    notifications wait, pending, until it is enabled again)."""
    # The first in next_attempt_at's index order whose subscription is enabled: PostgreSQL does not turn min()
    # over a join into an index walk, and read every pending row, every pass (10 ms at 10,000 pending; the
    # table only grows, so a sustained load made the sender fall further and further behind).
    return (await session.execute(
        sa.select(Notification.next_attempt_at)
        .where(state_is(Notification.state, "pending"), Notification.next_attempt_at.is_not(None),
               _not_disabled())
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(1)
    )).scalar_one_or_none()


def _not_disabled() -> sa.ColumnElement[bool]:
    """The notification's subscription is enabled, said as "no disabled subscription of it": a walk of the
    pending rows' index (`ix_notifications_due`) that checks the few disabled subscriptions as it goes. The
    join form led PostgreSQL, without statistics (autovacuum off), to read every notification of the
    subscription by its id: 17 ms a claim after 5 minutes at 500 posts/s, 0.5 ms this way."""
    return ~sa.exists().where(Subscription.id == Notification.subscription_id, Subscription.enabled.is_not(True))


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
