"""The SQL of a subscription's lifecycle: enable, disable, edit, remove, rotate its secret. Every change is
audited; callers own the transaction.

Remove is a soft delete (`removed_at`): the row, its notifications and its delivery attempts stay, so the
delivery history stays auditable; a removed subscription gets nothing more and is not listed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.channels import EMAIL, WEBHOOK, ChannelError, channel_of, check_digest, check_mailto, check_tz
from services.alert.paging import MIN_SEVERITIES, check_events, check_quiet_hours
from services.alert.signing import SECRET_PREFIX, new_secret
from services.alert.store_base import NotFoundError
from shared.errors import ReasonError
from shared.models import AuditEntry, Notification, Subscription, utcnow

UNCHANGED: Any = object()
"""`edit_subscription`'s default: leave the field as it is (None clears an optional one)."""


class SubscriptionError(ReasonError):
    """A subscription change that cannot be made as asked; `reason` says what to do instead."""


async def live_subscription(session: AsyncSession, subscription_id: int) -> Subscription:
    """The subscription, unless it does not exist or was removed (NotFoundError naming which)."""
    row = await session.get(Subscription, subscription_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id}: `watchfloor subscription list` shows them")
    if row.removed_at is not None:
        when = row.removed_at.isoformat(timespec="seconds")
        raise NotFoundError(f"subscription {subscription_id} was removed at {when}; add the URL again to use it")
    return row


async def add_subscription(
    session: AsyncSession, url: str, secret: str, name: str | None = None, *,
    rule_ids: list[str] | None = None, min_severity: str | None = None, quiet_hours: dict | None = None,
    events: list[str] | None = None, channel: str = WEBHOOK, immediate: bool = True,
    digest: dict | None = None, tz: str | None = None, actor: str = "cli",
) -> tuple[Subscription, str]:
    """A new webhook endpoint with its signing secret and filters, or an email recipient with its digest
    settings, as checked by `commands.add_subscription`."""
    row = Subscription(url=url, name=name, secret=secret, enabled=True, rule_ids=rule_ids,
                       min_severity=min_severity, quiet_hours=quiet_hours, events=events, channel=channel,
                       immediate=immediate, digest=digest, tz=tz, created_at=utcnow())
    session.add(row)
    await session.flush()
    detail: dict[str, Any] = {"url": url, "name": name, "events": events, "channel": channel}
    if channel == EMAIL:
        detail.update(immediate=immediate, digest=digest, tz=tz)
    session.add(AuditEntry(actor=actor, action="subscription.created", target_kind="subscription",
                           target_id=str(row.id), detail=detail))
    return row, secret


async def set_subscription_filters(
    session: AsyncSession, subscription_id: int, *, min_severity: str | None, quiet_hours: dict | None,
    actor: str,
) -> Subscription:
    """Replaces a subscription's minimum severity and quiet hours, checked by the caller (audited); None clears
    one."""
    row = await session.get(Subscription, subscription_id)
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id}")
    row.min_severity, row.quiet_hours = min_severity, quiet_hours
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


async def get_subscription(session: AsyncSession, subscription_id: int) -> Subscription | None:
    return await session.get(Subscription, subscription_id)


async def get_subscriptions(session: AsyncSession, subscription_ids: set[int]) -> dict[int, Subscription]:
    """Subscriptions by id, in one query (removed ones too: the caller decides)."""
    if not subscription_ids:
        return {}
    rows = await session.scalars(sa.select(Subscription).where(Subscription.id.in_(subscription_ids)))
    return {row.id: row for row in rows}



def _audit(session: AsyncSession, actor: str, action: str, subscription_id: int, detail: dict | None) -> None:
    session.add(AuditEntry(actor=actor, action=action, target_kind="subscription", target_id=str(subscription_id),
                           detail=detail))


async def disable(session: AsyncSession, subscription_id: int, actor: str, reason: str | None = None
                  ) -> Subscription:
    """Stops deliveries until enabled again; what fires meanwhile is recorded as missed."""
    row = await live_subscription(session, subscription_id)
    await disable_subscription(session, subscription_id, reason or f"disabled by {actor}", actor=actor)
    return row


@dataclass(frozen=True)
class Enabled:
    subscription: Subscription
    disabled_since: datetime | None
    missed: int  # alert versions that fired while it was disabled (latest per alert), offered for replay
    failed: int  # notifications that failed earlier (a 410, say), kept for replay


async def enable(session: AsyncSession, subscription_id: int, actor: str) -> Enabled:
    """Delivers again (a subscription a 410 disabled too). Notifications still pending go out at once; what
    was missed or failed is counted, not sent: a replay sends it."""
    row = await live_subscription(session, subscription_id)
    since = row.disabled_at if not row.enabled else None
    if not row.enabled:
        _audit(session, actor, "subscription.enabled", subscription_id, {"was": row.disabled_reason})
    row.enabled, row.disabled_reason, row.disabled_at = True, None, None
    rows = await session.execute(
        sa.select(Notification.state, sa.func.count()).where(
            Notification.subscription_id == subscription_id, Notification.state.in_(("missed", "failed")))
        .group_by(Notification.state)
    )
    counts = {state: int(count) for state, count in rows}
    return Enabled(row, since, counts.get("missed", 0), counts.get("failed", 0))


def check_url(url: str) -> str:
    """An absolute http(s) URL (the address policy itself is applied where subscriptions are added)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubscriptionError(f"{url!r} is not an http(s) URL; give the receiver's full address, "
                                "e.g. https://hooks.example.org/watchfloor")
    return url


async def edit_subscription(session: AsyncSession, subscription_id: int, *, actor: str, url: Any = UNCHANGED,
                            name: Any = UNCHANGED, min_severity: Any = UNCHANGED, quiet_hours: Any = UNCHANGED,
                            events: Any = UNCHANGED, immediate: Any = UNCHANGED, digest: Any = UNCHANGED,
                            digest_skip_empty: Any = UNCHANGED, tz: Any = UNCHANGED) -> Subscription:
    """Changes what is given, leaves the rest (audited with the fields changed, never the secret).
    Notifications already owed keep their body; new ones follow the new settings. `digest` is a list of
    shift start times (None: no digest); `immediate`, `digest`, `digest_skip_empty` and `tz` are for email
    subscriptions only, and a URL keeps its channel (remove and add to change it)."""
    row = await live_subscription(session, subscription_id)
    changed: dict[str, Any] = {}
    if url is not UNCHANGED:
        if channel_of(url) != row.channel:
            raise SubscriptionError(f"subscription {subscription_id} is a {row.channel} subscription: give a "
                                    f"{'mailto: address' if row.channel == EMAIL else 'http(s) URL'}, or remove it "
                                    "and add the new one")
        try:
            row.url = changed["url"] = check_mailto(url) if row.channel == EMAIL else check_url(url)
        except ChannelError as exc:
            raise SubscriptionError(exc.reason) from exc
    if name is not UNCHANGED:
        row.name = changed["name"] = name
    if min_severity is not UNCHANGED:
        if min_severity is not None and min_severity not in MIN_SEVERITIES:
            raise SubscriptionError(f"min severity must be one of {', '.join(MIN_SEVERITIES)}")
        row.min_severity = changed["min_severity"] = min_severity
    if quiet_hours is not UNCHANGED:
        try:
            row.quiet_hours = changed["quiet_hours"] = check_quiet_hours(quiet_hours)
        except ValueError as exc:
            raise SubscriptionError(str(exc)) from exc
    if events is not UNCHANGED:
        try:
            row.events = changed["events"] = check_events(events)
        except ValueError as exc:
            raise SubscriptionError(str(exc)) from exc
    email_only = {"immediate": immediate, "digest": digest, "digest_skip_empty": digest_skip_empty, "tz": tz}
    given = [k.replace("_", "-") for k, v in email_only.items() if v is not UNCHANGED]
    if given and row.channel != EMAIL:
        raise SubscriptionError(f"{', '.join(given)}: for email (mailto:) subscriptions only")
    try:
        if tz is not UNCHANGED:
            row.tz = changed["tz"] = check_tz(tz)
        if digest is not UNCHANGED or digest_skip_empty is not UNCHANGED:
            times = (row.digest or {}).get("times") if digest is UNCHANGED else digest
            skip = (row.digest or {}).get("skip_empty", False) if digest_skip_empty is UNCHANGED \
                else digest_skip_empty
            if times is None and digest_skip_empty is not UNCHANGED:
                raise SubscriptionError("digest-skip-empty: the subscription has no digest; give --digest times too")
            row.digest = changed["digest"] = check_digest(times, skip)
    except ChannelError as exc:
        raise SubscriptionError(exc.reason) from exc
    if immediate is not UNCHANGED:
        row.immediate = changed["immediate"] = bool(immediate)
    if row.channel == EMAIL and not row.immediate and not row.digest:
        raise SubscriptionError("an email subscription with neither immediate alerts nor a digest would get "
                                "nothing: give --digest times or --immediate")
    if not changed:
        raise SubscriptionError("nothing to change: give at least one of url, name, min severity, quiet hours, "
                                "events" + (", immediate, digest, tz" if row.channel == EMAIL else ""))
    _audit(session, actor, "subscription.edited", subscription_id, changed)
    return row


async def remove(session: AsyncSession, subscription_id: int, actor: str) -> int:
    """Soft-deletes the subscription; what it was still owed is cancelled (kept, with why). Returns how many."""
    row = await live_subscription(session, subscription_id)
    now = utcnow()
    row.removed_at, row.enabled, row.disabled_reason = now, False, "removed"
    row.disabled_at = row.disabled_at or now
    result = await session.execute(
        sa.update(Notification)
        .where(Notification.subscription_id == subscription_id, Notification.state.in_(("pending", "missed")))
        .values(state="cancelled", next_attempt_at=None, last_error=f"subscription removed by {actor}")
        .execution_options(synchronize_session=False)
    )
    cancelled = int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of an UPDATE
    _audit(session, actor, "subscription.removed", subscription_id, {"url": row.url, "cancelled": cancelled})
    return cancelled


async def rotate_secret(session: AsyncSession, subscription_id: int, *, overlap: timedelta, actor: str,
                        secret: str | None = None) -> tuple[Subscription, str]:
    """A new signing secret (generated unless given). Until `now + overlap` each payload also carries a
    signature with the current one, so receivers can switch at their pace; a second rotation within the
    overlap drops the oldest secret. Returns the subscription and the new secret (shown to ops once)."""
    if secret is not None and not secret.startswith(SECRET_PREFIX):
        raise SubscriptionError(f"a secret starts with {SECRET_PREFIX} (Standard Webhooks); omit it to get one")
    if overlap < timedelta(0):
        raise SubscriptionError("the overlap cannot be negative")
    row = await live_subscription(session, subscription_id)
    if row.channel == EMAIL:
        raise SubscriptionError(f"subscription {subscription_id} is an email subscription: emails are not signed")
    now = utcnow()
    secret = secret or new_secret()
    row.previous_secret, row.previous_secret_until = (row.secret, now + overlap) if overlap else (None, None)
    row.secret = secret
    _audit(session, actor, "subscription.secret_rotated", subscription_id,
           {"overlap_until": row.previous_secret_until.isoformat() if row.previous_secret_until else None})
    return row, secret


def signing_secrets(row: Subscription, now: datetime) -> list[str]:
    """The secrets a payload is signed with now: the current one, and the previous one during its overlap."""
    if row.previous_secret and row.previous_secret_until and now < row.previous_secret_until:
        return [row.secret, row.previous_secret]
    return [row.secret]
