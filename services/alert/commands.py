"""What ops do by hand, from the CLI or the API: store rules, add subscriptions, make and end silences,
acknowledge alerts; and the two loaders the stages share (enabled rules, active silences). Each checks with
the domain (rules, paging, silences) and reads or writes with the store; callers own the transaction."""

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.alert import lifecycle, store_alerts, store_rules, store_subscriptions
from services.alert.channels import EMAIL, ChannelError, channel_of, check_digest, check_mailto, check_tz
from services.alert.paging import check_events, check_min_severity, check_quiet_hours
from services.alert.rules import RuleSpec, stored_rules
from services.alert.signing import new_secret
from services.alert.silences import SilenceView, check_expirable, check_matchers, check_silence, muted_by
from services.alert.store_base import NotFoundError
from shared.messages import AlertMessage
from shared.models import Alert, Rule, Silence, Subscription, utcnow


async def upsert_rule(session: AsyncSession, spec: RuleSpec, body: str, origin: str | None, actor: str) -> Rule:
    """Creates or replaces a rule, with an audit row saying who did it and from where."""
    return await store_rules.upsert_rule(session, spec.to_stored(), body, origin, actor)


async def enabled_rules(session: AsyncSession) -> list[RuleSpec]:
    """Every enabled rule, validated again; one that no longer loads is skipped and logged, not fatal."""
    return stored_rules(await store_rules.enabled_rules(session))


async def add_subscription(
    session: AsyncSession, url: str, secret: str | None = None, name: str | None = None, *,
    rule_ids: list[str] | None = None, min_severity: str | None = None, quiet_hours: dict | None = None,
    events: list[str] | None = None, immediate: bool = True, digest: list[str] | None = None,
    digest_skip_empty: bool = False, tz: str | None = None, actor: str = "cli",
) -> tuple[Subscription, str]:
    """A new webhook endpoint and its signing secret (generated unless given: show it to ops once), or, for a
    `mailto:` URL, an email recipient (channels.py): `immediate` (each alert as it fires), `digest` (shift start
    times, read in `tz`), `digest_skip_empty`. `min_severity`: low…critical (the rule's) or I…III (the
    incident's); `quiet_hours`, `events` (None: every type): see paging.py. Raises ChannelError (a ValueError)
    for an address or email setting that cannot be used."""
    check_min_severity(min_severity)
    channel = channel_of(url)
    if channel == EMAIL:
        url = check_mailto(url)
        checked_digest = check_digest(digest, digest_skip_empty)
        if not immediate and checked_digest is None:
            raise ChannelError("an email subscription without immediate alerts needs a digest (--digest 06:00,18:00): "
                               "it would get nothing")
        if secret is not None:
            raise ChannelError("emails are not signed: give no secret for a mailto: subscription")
    else:
        given = [name for name, value in (("digest", digest), ("tz", tz)) if value is not None]
        given += ["no-immediate"] if not immediate else []
        given += ["digest-skip-empty"] if digest_skip_empty else []
        if given:
            raise ChannelError(f"{', '.join(given)}: for email (mailto:) subscriptions only")
        checked_digest = None
    return await store_subscriptions.add_subscription(
        session, url, secret or new_secret(), name, rule_ids=rule_ids, min_severity=min_severity,
        quiet_hours=check_quiet_hours(quiet_hours), events=check_events(events), channel=channel,
        immediate=immediate if channel == EMAIL else True, digest=checked_digest, tz=check_tz(tz),
        actor=actor)


async def set_subscription_filters(
    session: AsyncSession, subscription_id: int, *, min_severity: str | None, quiet_hours: dict | None,
    actor: str,
) -> Subscription:
    """Replaces a subscription's minimum severity and quiet hours (audited); None clears one."""
    row = await store_subscriptions.get_subscription(session, subscription_id)
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id}")
    return await store_subscriptions.set_subscription_filters(
        session, subscription_id, min_severity=check_min_severity(min_severity),
        quiet_hours=check_quiet_hours(quiet_hours), actor=actor)


async def create_silence(session: AsyncSession, *, matchers: dict, reason: str, created_by: str,
                         starts_at: datetime, ends_at: datetime) -> Silence:
    """A new silence (audited). Raises SilenceError: no reason, no matcher, an unknown code, an end not after
    the start, or an end already past."""
    now = utcnow()
    new = check_silence(matchers, reason, created_by, starts_at, ends_at, now)
    return await store_alerts.create_silence(session, matchers=new.matchers, reason=new.reason,
                                             created_by=new.created_by, starts_at=new.starts_at,
                                             ends_at=new.ends_at, now=now)


async def expire_silence(session: AsyncSession, silence_id: int, by: str) -> Silence:
    """Ends a silence now (audited). Alerts it muted that still fire unacknowledged are sent by the next
    sweep. Raises NotFoundError, or SilenceError if it already ended."""
    row = await store_alerts.get_silence(session, silence_id)
    now = utcnow()
    check_expirable(SilenceView.of_row(row), now)
    return await store_alerts.expire_silence(session, row, by, now)


async def active_silences(session: AsyncSession, now: datetime) -> list[SilenceView]:
    """The silences muting at `now`, oldest first (the first that matches an alert is the one named)."""
    return [SilenceView.of_row(row) for row in reversed(await store_alerts.list_silences(session, active_at=now))]


async def preview_silence(session: AsyncSession, matchers: dict, now: datetime) -> list[Alert]:
    """The firing or acknowledged alerts a silence with these matchers would mute now."""
    view = SilenceView(id=0, matchers=check_matchers(matchers), reason="preview", created_by="preview",
                       starts_at=now, ends_at=now + timedelta(seconds=1))
    return [row for row in await store_alerts.alerts_in(session, lifecycle.LIVE)
            if muted_by([view], AlertMessage.model_validate(row.payload), now)]


async def acknowledge_alert(session: AsyncSession, alert_id: str, by: str, note: str | None) -> Alert:
    """firing -> acknowledged, with who, when and why (audited). Ack stops re-pages, not updates: later
    versions still go to subscribers, and the alert keeps its acknowledgement. Raises NotFoundError."""
    row = await store_alerts.get_alert(session, alert_id)
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    return await store_alerts.acknowledge_alert(session, row, lifecycle.acknowledge(row.state), by, note, utcnow())
