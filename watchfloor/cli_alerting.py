"""`watchfloor rule|subscription|alerts …`: what the alert service reads and writes (alert's store)."""

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path

import click

from services.alert import commands, store_alerts, store_rules, store_subscriptions
from services.alert import rules as rule_files
from watchfloor.context import CliContext, checked, pass_ctx, run

OPERATOR = "cli"


@click.group()
def rule() -> None:
    """Alert rules (YAML)."""


@rule.command(name="add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def rule_add(obj: CliContext, files: tuple[Path, ...]) -> None:
    """Validate and store rules (adding a rule with an existing id replaces it). All files are checked
    before any is stored: an error names the file, the line and the field."""
    loaded = checked(lambda: [rule_files.load_rule_file(path) for path in files])  # nothing stored on error

    async def body() -> None:
        async with obj.session() as session:
            for path, (spec, text) in zip(files, loaded, strict=True):
                await commands.upsert_rule(session, spec, text, origin=str(path), actor=OPERATOR)

    run(body)
    for spec, _ in loaded:
        click.echo(f"rule {spec.id} stored: {spec.name}")


@rule.command(name="list")
@pass_ctx
def rule_list(obj: CliContext) -> None:
    """Stored rules."""

    async def body() -> list:
        async with obj.session() as session:
            return list(await store_rules.list_rules(session))

    for r in run(body):
        click.echo(f"{r.id:<28} {r.severity:<8} {'on ' if r.enabled else 'off'} {r.name}")


@click.group()
def subscription() -> None:
    """Webhook endpoints (Standard Webhooks signatures) and email recipients (mailto:)."""


@subscription.command(name="add")
@click.argument("url")
@click.option("--secret", default=None, help="A whsec_… secret; one is generated and printed if omitted "
                                            "(webhooks only).")
@click.option("--name", default=None)
@click.option("--min-severity", default=None,
              type=click.Choice(["low", "medium", "high", "critical", "I", "II", "III"]),
              help="Only alerts of this rule severity (low…critical) or incident severity (I–III) and above.")
@click.option("--quiet-hours", default=None, metavar="HH:MM-HH:MM[@TZ]",
              help="Hold severity I and II until the window ends (III always goes through), e.g. 22:00-06:00@UTC.")
@click.option("--events", default=None, metavar="PATTERN[,PATTERN…]",
              help="Only these webhook types, e.g. alert.* or source.* or alert.*,source.failing (default: all).")
@click.option("--digest", default=None, metavar="HH:MM[,HH:MM…]",
              help="Email: a shift digest at each of these local times (the shift that just ended), e.g. 06:00,18:00.")
@click.option("--tz", default=None, metavar="ZONE",
              help="Email: the recipient's time zone (IANA, e.g. Africa/Niamey): digest times, and times in emails.")
@click.option("--no-immediate", is_flag=True, help="Email: the digest only, no email per alert.")
@click.option("--digest-skip-empty", is_flag=True, help="Email: no digest for a shift with nothing to report.")
@pass_ctx
def subscription_add(obj: CliContext, url: str, secret: str | None, name: str | None, min_severity: str | None,
                     quiet_hours: str | None, events: str | None, digest: str | None, tz: str | None,
                     no_immediate: bool, digest_skip_empty: bool) -> None:
    """Add a webhook endpoint or an email recipient (mailto:ops@example.org).

    A webhook gets every alert, and every operator alert on a source (source.silent, source.failing), POSTed
    and signed with the secret; --events chooses among them. A URL that is not http(s), or whose host is a
    loopback, private, link-local or metadata address, is refused unless WATCHFLOOR_ALLOW_PRIVATE_URLS allows it.

    An email recipient gets the same alerts by email over the alert service's SMTP server (WATCHFLOOR_SMTP_*),
    unless --no-immediate, and with --digest a shift digest at each time given."""
    from services.alert.channels import EMAIL, channel_of
    from shared.urlguard import check_url

    quiet = checked(lambda: _quiet_hours(quiet_hours))
    wanted = checked(lambda: event_patterns(events))
    times = digest.split(",") if digest is not None else None
    email = channel_of(url) == EMAIL
    policy = obj.settings.url_policy

    async def body() -> tuple[int, str, str]:
        # before the database: nothing stored if refused (an email address is checked by commands)
        checked_url = url if email else await check_url(url, policy)
        async with obj.session() as session:
            sub, used = await commands.add_subscription(session, checked_url, secret=secret, name=name,
                                                        min_severity=min_severity, quiet_hours=quiet,
                                                        events=wanted, immediate=not no_immediate, digest=times,
                                                        digest_skip_empty=digest_skip_empty, tz=tz)
            return sub.id, used, sub.url

    sub_id, used, stored = run(body)
    click.echo(f"subscription {sub_id} -> {stored}")
    if email:
        from services.alert.settings import AlertSettings

        try:
            smtp_host = AlertSettings().smtp_host
        except ValueError:
            smtp_host = "?"  # a settings error is the alert service's to report, at its start
        if not smtp_host:
            click.echo("warning: WATCHFLOOR_SMTP_HOST is not set here; the alert service needs it (and "
                       "WATCHFLOOR_SMTP_FROM) to send email, else these notifications wait, retried, with the "
                       "reason 'no SMTP server configured'", err=True)
    elif secret is None:
        click.echo(f"secret: {used}")


def event_patterns(text: str | None) -> list[str] | None:
    """"alert.*,source.*" -> ["alert.*", "source.*"], each checked against the types sent; None or "all": every
    type."""
    from services.alert.paging import check_events

    if text is None or text.strip().lower() == "all":
        return None
    try:
        return check_events(text.split(","))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--events") from exc


def _quiet_hours(text: str | None) -> dict[str, str] | None:
    """"22:00-06:00@Africa/Niamey" -> {"start": "22:00", "end": "06:00", "tz": "Africa/Niamey"}."""
    if not text:
        return None
    window, _, tz = text.partition("@")
    start, sep, end = window.partition("-")
    if not sep or not re.fullmatch(r"\d{2}:\d{2}", start) or not re.fullmatch(r"\d{2}:\d{2}", end):
        raise click.BadParameter(f"{text!r}: expected HH:MM-HH:MM[@TZ], e.g. 22:00-06:00@UTC",
                                 param_hint="--quiet-hours")
    return {"start": start, "end": end, "tz": tz or "UTC"}


@subscription.command(name="list")
@click.option("--reveal", is_flag=True, help="Show URLs whole, with the credentials or query tokens in them.")
@pass_ctx
def subscription_list(obj: CliContext, reveal: bool) -> None:
    """Webhook endpoints and email recipients, with their channel (secrets not shown; credentials and query
    strings in webhook URLs masked unless --reveal)."""
    from services.alert.channels import EMAIL
    from services.alert.webhook import redact_url

    async def body() -> list:
        async with obj.session() as session:
            return list(await store_subscriptions.list_subscriptions(session))

    for s in run(body):
        state = "enabled" if s.enabled else f"DISABLED: {s.disabled_reason}"
        events = f"  events {','.join(s.events)}" if s.events else ""
        email = s.channel == EMAIL
        address = s.url if reveal or email else redact_url(s.url)
        extra = ""
        if s.min_severity:
            extra += f"  min {s.min_severity}"
        if email:
            extra += "  immediate" if s.immediate else "  digest only"
            if s.digest:
                extra += f"  digest {','.join(s.digest['times'])}" + (" (skip empty)" if s.digest.get(
                    "skip_empty") else "")
            if s.tz:
                extra += f"  tz {s.tz}"
        click.echo(f"{s.id:<4} {s.channel:<7} {state:<10} {address}{extra}{events}")


def _line(alert: dict) -> str:
    place = (alert.get("place") or {}).get("name") or "-"
    muted = f"  MUTED ({alert['muted_by']})" if alert.get("muted_by") else ""
    return (f"{alert.get('alert_id', '')[:12]}  {alert.get('updated_at', '')[:19]}  {alert.get('severity', ''):<8} "
            f"{alert.get('incident_severity') or '-':<3} {alert.get('state', ''):<12} v{alert.get('version')}  "
            f"{alert.get('rule_id')}  {alert.get('title', '')!r}  @ {place}  "
            f"{','.join(alert.get('actors') or [])} {','.join(alert.get('tactics') or [])}{muted}")


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing alerts as they fire or change.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def alerts(obj: CliContext, follow: bool, as_json: bool, limit: int) -> None:
    """The latest alerts, oldest first; with --follow, new ones and updates as they happen."""

    def show(rows: list) -> None:
        for a in rows:
            payload = {**(a.payload or {}), "state": a.state, "version": a.version,
                       "updated_at": a.updated_at.isoformat()}
            click.echo(json.dumps(payload, ensure_ascii=False) if as_json else _line(payload))

    async def fetch(since: datetime | None) -> list:
        async with obj.session() as session:
            return list(await store_alerts.list_alerts(session, limit=limit, since=since))

    async def body() -> None:
        rows = await fetch(None)
        show(list(reversed(rows)))
        if not follow:
            return
        seen = {(a.id, a.version, a.state) for a in rows}
        since = max((a.updated_at for a in rows), default=None)
        while True:
            await asyncio.sleep(1.0)
            fresh = [a for a in reversed(await fetch(since)) if (a.id, a.version, a.state) not in seen]
            show(fresh)
            seen.update((a.id, a.version, a.state) for a in fresh)
            since = max((a.updated_at for a in fresh), default=since)

    try:
        run(body)
    except KeyboardInterrupt:
        pass


def _register_dry_run() -> None:
    """`watchfloor rule dry-run` lives with the noise commands (it replays the event log through a rule)."""
    from watchfloor.cli_noise import rule_dry_run

    rule.add_command(rule_dry_run)


_register_dry_run()


def _register_lifecycle() -> None:
    """`watchfloor subscription disable|enable|edit|remove|rotate-secret` live with the delivery commands."""
    from watchfloor import cli_deliveries as d

    for command in (d.subscription_disable, d.subscription_enable, d.subscription_edit, d.subscription_remove,
                    d.subscription_rotate_secret):
        subscription.add_command(command)


_register_lifecycle()
