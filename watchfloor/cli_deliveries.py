"""`watchfloor delivery list|replay` and `watchfloor subscription disable|enable|edit|remove|rotate-secret`:
what is owed to webhook subscribers, and the subscriptions' lifecycle (alert's store).

A replay only marks notifications pending again; the running dispatcher (`watchfloor up`, or `watchfloor run
alert`) sends them, with their original webhook-id, within `WATCHFLOOR_DISPATCH_POLL_SECONDS`."""

import json
import math
from datetime import UTC, datetime, timedelta

import click

from services.alert import store_alerts, store_deliveries, store_subscriptions
from services.alert.rules import parse_duration
from watchfloor.context import BY, CliContext, checked, operator, pass_ctx, run

SEVERITIES = ["low", "medium", "high", "critical", "I", "II", "III", "none"]


def _since(value: str | None) -> datetime | None:
    """`--since`: a duration back from now (30m, 6h, 2d) or an ISO time."""
    if value is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is neither a duration like 30m, 6h or 2d nor an ISO time",
                                 param_hint="--since") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration_back_to(when: datetime) -> str:
    """The shortest `--since` duration (whole minutes or hours) that reaches back to `when`."""
    minutes = max(1, math.ceil((datetime.now(UTC) - when).total_seconds() / 60) + 1)
    return f"{minutes}m" if minutes < 120 else f"{math.ceil(minutes / 60)}h"


@click.group()
def delivery() -> None:
    """Webhook deliveries: what is owed, what failed; replay with the original webhook-id."""


@delivery.command(name="list")
@click.option("--failed", is_flag=True, help="Only what `delivery replay` would send: failed, or missed while "
                                            "the subscription was disabled.")
@click.option("--subscription", "subscription_id", type=int, default=None, help="Only this subscription's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@pass_ctx
def delivery_list(obj: CliContext, failed: bool, subscription_id: int | None, as_json: bool, limit: int) -> None:
    """Notifications, newest first: state, attempts, last attempt and its error."""

    async def body() -> list[dict]:
        async with obj.session() as session:
            rows = await store_deliveries.list_owed(session, replayable=failed, subscription_id=subscription_id,
                                                    limit=limit)
            last = await store_deliveries.last_attempts(session, [n.id for n in rows])
        return [store_deliveries.as_dict(n, last.get(n.id)) for n in rows]

    rows = run(body)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        last = row["last_attempt"] or {}
        when = (last.get("attempted_at") or row["created_at"])[:19]
        error = f"  {row['last_error']}" if row["last_error"] and row["state"] != "delivered" else ""
        click.echo(f"{row['id']:<6} sub {row['subscription_id']:<4} {row['state']:<10} {when}  "
                   f"alert {row['alert_id'][:12]} v{row['alert_version']}  attempts {row['attempts']}  "
                   f"{row['webhook_id']}{error}")
    if not rows and not as_json:
        click.echo("nothing to replay" if failed else "no deliveries yet")


@delivery.command(name="replay")
@click.option("--subscription", "subscription_id", type=int, default=None, help="Only this subscription's.")
@click.option("--since", default=None, help="Only notifications created since: a duration (30m, 6h, 2d) or an "
                                            "ISO time.")
@click.option("--alert", "alert_id", default=None, help="Only this alert's (its id or first 8+ characters).")
@BY
@pass_ctx
def delivery_replay(obj: CliContext, subscription_id: int | None, since: str | None, alert_id: str | None,
                    by: str | None) -> None:
    """Send failed and missed notifications again, each with its original webhook-id (receivers de-duplicate
    on it). The running dispatcher sends them; this prints how many were queued."""
    start = _since(since)

    async def body() -> store_deliveries.Replay:
        async with obj.session() as session:
            if subscription_id is not None:
                await store_subscriptions.live_subscription(session, subscription_id)
            full = await store_alerts.resolve_alert_id(session, alert_id) if alert_id else None
            return await store_deliveries.replay(session, subscription_id=subscription_id, alert_id=full,
                                                 since=start, actor=by or operator())

    done = run(body)
    click.echo(f"{done.queued} notification(s) queued for replay; the running dispatcher sends them")
    if done.skipped_count:
        click.echo(f"{done.skipped_count} left as they are:")
        for reason in done.skipped.values():
            click.echo(f"  {reason}")


# --- subscription lifecycle (registered on `watchfloor subscription` by cli_alerting) --------------------


@click.command(name="disable")
@click.argument("subscription_id", type=int)
@click.option("--reason", default=None, help="Why, for the next shift (shown by `subscription list`).")
@BY
@pass_ctx
def subscription_disable(obj: CliContext, subscription_id: int, reason: str | None, by: str | None) -> None:
    """Stop sending to a subscription; what fires meanwhile is kept and offered when it is enabled."""

    async def body() -> None:
        async with obj.session() as session:
            await store_subscriptions.disable(session, subscription_id, by or operator(), reason)

    run(body)
    click.echo(f"subscription {subscription_id} disabled")


@click.command(name="enable")
@click.argument("subscription_id", type=int)
@click.option("--replay-missed", is_flag=True, help="Also send what fired while it was disabled.")
@BY
@pass_ctx
def subscription_enable(obj: CliContext, subscription_id: int, replay_missed: bool, by: str | None) -> None:
    """Send to a subscription again (one a 410 Gone disabled too), and say what it missed meanwhile."""
    actor = by or operator()

    async def body() -> tuple[store_subscriptions.Enabled, int]:
        async with obj.session() as session:
            enabled = await store_subscriptions.enable(session, subscription_id, actor)
            queued = 0
            if replay_missed and enabled.missed:
                queued = (await store_deliveries.replay(session, subscription_id=subscription_id,
                                                        since=enabled.disabled_since, actor=actor)).queued
            return enabled, queued

    enabled, queued = run(body)
    click.echo(f"subscription {subscription_id} enabled")
    if queued:
        click.echo(f"{queued} notification(s) missed while disabled queued for replay; the running dispatcher "
                   "sends them")
    elif enabled.missed:
        since = f" --since {_duration_back_to(enabled.disabled_since)}" if enabled.disabled_since else ""
        click.echo(f"{enabled.missed} alert(s) fired while disabled; "
                   f"`watchfloor delivery replay --subscription {subscription_id}{since}` sends them")
    if enabled.failed:
        click.echo(f"{enabled.failed} earlier failed delivery(ies) kept: "
                   f"`watchfloor delivery replay --subscription {subscription_id}` sends them too")


@click.command(name="edit")
@click.argument("subscription_id", type=int)
@click.option("--url", default=None, help="The receiver's new address (a mailto: one for an email subscription).")
@click.option("--name", default=None)
@click.option("--min-severity", default=None, type=click.Choice(SEVERITIES),
              help="low…critical (the rule's) or I–III (the incident's); none clears it.")
@click.option("--quiet-hours", default=None, metavar="HH:MM-HH:MM[@TZ]|none",
              help="Hold severity I and II until the window ends; none clears it.")
@click.option("--events", default=None, metavar="PATTERN[,PATTERN…]|all",
              help="Only these webhook types, e.g. alert.* or source.*; all takes every type again.")
@click.option("--digest", default=None, metavar="HH:MM[,HH:MM…]|none",
              help="Email: shift digest times (local to --tz); none stops the digest.")
@click.option("--tz", default=None, metavar="ZONE|none", help="Email: the recipient's time zone; none: UTC.")
@click.option("--immediate/--no-immediate", default=None, help="Email: an email per alert, or the digest only.")
@click.option("--digest-skip-empty/--digest-send-empty", default=None,
              help="Email: skip, or send, the digest of a shift with nothing to report.")
@BY
@pass_ctx
def subscription_edit(obj: CliContext, subscription_id: int, url: str | None, name: str | None,
                      min_severity: str | None, quiet_hours: str | None, events: str | None, digest: str | None,
                      tz: str | None, immediate: bool | None, digest_skip_empty: bool | None, by: str | None) -> None:
    """Change a subscription's address, name, filters or email settings (what is already owed keeps its
    body). The secret changes with `rotate-secret`; a new URL passes the same address check as `add`."""
    from services.alert.channels import EMAIL, channel_of
    from services.alert.webhook import redact_url
    from shared.urlguard import check_url
    from watchfloor.cli_alerting import _quiet_hours, event_patterns

    U = store_subscriptions.UNCHANGED
    changes = {
        "url": U if url is None else url,
        "name": U if name is None else name,
        "min_severity": U if min_severity is None else (None if min_severity == "none" else min_severity),
        "quiet_hours": U if quiet_hours is None else (None if quiet_hours == "none" else
                                                      checked(lambda: _quiet_hours(quiet_hours))),
        "events": U if events is None else event_patterns(events),
        "digest": U if digest is None else (None if digest == "none" else digest.split(",")),
        "tz": U if tz is None else (None if tz == "none" else tz),
        "immediate": U if immediate is None else immediate,
        "digest_skip_empty": U if digest_skip_empty is None else digest_skip_empty,
    }

    async def body() -> str:
        if url is not None and channel_of(url) != EMAIL:  # before the database: nothing changed if refused
            changes["url"] = await check_url(url, obj.settings.url_policy)
        async with obj.session() as session:
            row = await store_subscriptions.edit_subscription(session, subscription_id, actor=by or operator(),
                                                              **changes)
            return redact_url(row.url)

    address = run(body)
    changed = ", ".join(k.replace("_", "-") for k, v in changes.items() if v is not U)
    click.echo(f"subscription {subscription_id} -> {address}: changed {changed}")


@click.command(name="remove")
@click.argument("subscription_id", type=int)
@BY
@pass_ctx
def subscription_remove(obj: CliContext, subscription_id: int, by: str | None) -> None:
    """Remove a subscription. Its notifications and delivery attempts are kept (soft delete), so the delivery
    history stays auditable; what it was still owed is cancelled."""

    async def body() -> int:
        async with obj.session() as session:
            return await store_subscriptions.remove(session, subscription_id, by or operator())

    cancelled = run(body)
    click.echo(f"subscription {subscription_id} removed (history kept)"
               + (f"; {cancelled} pending notification(s) cancelled" if cancelled else ""))


@click.command(name="rotate-secret")
@click.argument("subscription_id", type=int)
@click.option("--overlap", default="24h", show_default=True,
              help="How long payloads also carry a signature with the old secret (0: switch at once).")
@click.option("--secret", default=None, help="The new whsec_… secret; one is generated and printed if omitted.")
@BY
@pass_ctx
def subscription_rotate_secret(obj: CliContext, subscription_id: int, overlap: str, secret: str | None,
                               by: str | None) -> None:
    """A new signing secret. During the overlap each payload is signed with both (space-separated `v1,…` in
    `webhook-signature`, as Standard Webhooks allows): give the receiver the new secret before it ends."""
    if overlap.strip() in ("0", "0s", "0m", "0h"):
        span = timedelta(0)
    else:
        try:
            span = parse_duration(overlap)
        except ValueError as exc:
            raise click.BadParameter(f"{overlap!r} is not a duration like 30m, 24h or 7d", param_hint="--overlap") \
                from exc

    async def body() -> tuple[datetime | None, str]:
        async with obj.session() as session:
            row, new = await store_subscriptions.rotate_secret(session, subscription_id, overlap=span,
                                                               actor=by or operator(), secret=secret)
            return row.previous_secret_until, new

    until, new = run(body)
    click.echo(f"subscription {subscription_id}: new secret in use"
               + (f"; the old one also signs until {until.isoformat(timespec='seconds')}" if until else
                  "; the old one no longer signs"))
    if secret is None:
        click.echo(f"secret: {new}")
