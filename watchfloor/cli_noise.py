"""`watchfloor silence|ack|rule dry-run`: noise control from a second terminal (the alert service's store).

    watchfloor silence add --rule ID --actor CODE … --reason TEXT [--for 2h | --until ISO] [--preview]
    watchfloor silence list [--all]          active silences (--all: ended ones too)
    watchfloor silence expire ID             end a silence now; what it muted and still fires is sent
    watchfloor ack ALERT_ID [--note TEXT]    firing -> acknowledged: stops re-pages, not updates
    watchfloor rule dry-run FILE.yaml [--since 7d] [--until ISO]
                                             what the rule would have fired on the event log, and why

Every change is in the audit table under `--by` (default: the login name). A running `watchfloor up` sees it
at its next sweep or event, without a restart.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from services.alert import commands, store_alerts
from services.alert import rules as rule_files
from services.alert.dryrun import dry_run
from services.alert.rules import parse_duration
from shared.messages import AlertMessage
from watchfloor.context import BY, CliContext, checked, operator, pass_ctx, run


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a time like 2026-11-24T18:00Z", param_hint=name) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _span(value: str, name: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 2h or 7d", param_hint=name) from exc


def _alert_line(alert: AlertMessage, state: str) -> str:
    place = alert.place.name if alert.place else "-"
    return f"  {alert.alert_id[:12]}  {state:<12} {alert.rule_id}  {alert.title!r} @ {place}"


@click.group()
def silence() -> None:
    """Silences: mute matching alerts for a while, with a reason (audited)."""


@silence.command(name="add")
@click.option("--rule", "rule_ids", multiple=True, help="Rule id (repeatable).")
@click.option("--actor", "actors", multiple=True, help="Actor code, sub-units included (repeatable).")
@click.option("--tactic", "tactics", multiple=True, help="Tactic code (repeatable).")
@click.option("--country", "countries", multiple=True, help="ISO country code (repeatable).")
@click.option("--severity", "severities", multiple=True, help="low…critical or I, II, III (repeatable).")
@click.option("--incident", "incident_ids", multiple=True, help="Incident id (repeatable).")
@click.option("--reason", required=True, help="Why: shown to the next shift and in the audit table.")
@click.option("--for", "duration", default=None, help="How long, e.g. 2h (default 2h unless --until).")
@click.option("--until", default=None, help="End time, ISO 8601 (UTC unless a zone is given).")
@click.option("--starts", default=None, help="Start time, ISO 8601 (default: now).")
@click.option("--preview", is_flag=True, help="Only list the alerts it would mute now; create nothing.")
@BY
@pass_ctx
def silence_add(obj: CliContext, rule_ids: tuple[str, ...], actors: tuple[str, ...], tactics: tuple[str, ...],
                countries: tuple[str, ...], severities: tuple[str, ...], incident_ids: tuple[str, ...],
                reason: str, duration: str | None, until: str | None, starts: str | None, preview: bool,
                by: str | None) -> None:
    """Mute alerts matching every given matcher (ANDed) from --starts to --until (or for --for)."""
    matchers = {k: list(v) for k, v in (("rule_ids", rule_ids), ("actors", actors), ("tactics", tactics),
                                        ("countries", countries), ("severities", severities),
                                        ("incident_ids", incident_ids)) if v}
    now = datetime.now(UTC)
    start = _when(starts, "--starts") or now
    if until and duration:
        raise click.UsageError("give --for or --until, not both")
    end = _when(until, "--until") or start + _span(duration or "2h", "--for")

    async def body() -> tuple[int | None, list]:
        async with obj.session() as session:
            muted = await commands.preview_silence(session, matchers, now)
            if preview:
                return None, muted
            row = await commands.create_silence(session, matchers=matchers, reason=reason,
                                             created_by=by or operator(), starts_at=start, ends_at=end)
            return row.id, muted

    silence_id, muted = run(body)
    if silence_id is not None:
        click.echo(f"silence {silence_id} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC: {reason}")
    click.echo(f"{'would mute' if silence_id is None else 'mutes'} {len(muted)} alert(s) now"
               + (":" if muted else ""))
    for row in muted:
        click.echo(_alert_line(AlertMessage.model_validate(row.payload), row.state))


@silence.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Ended and expired silences too.")
@pass_ctx
def silence_list(obj: CliContext, show_all: bool) -> None:
    """Silences, newest first: id, window, creator, matchers, reason."""

    async def body() -> list:
        async with obj.session() as session:
            return await store_alerts.list_silences(session, active_at=None if show_all else datetime.now(UTC))

    for row in run(body):
        ended = f" (expired by {row.expired_by})" if row.expired_at else ""
        matchers = " ".join(f"{k}={','.join(v)}" for k, v in row.matchers.items())
        click.echo(f"{row.id:<4} {row.starts_at:%Y-%m-%d %H:%M} → {row.ends_at:%Y-%m-%d %H:%M}{ended}  "
                   f"by {row.created_by}  {matchers}  {row.reason!r}")


@silence.command(name="expire")
@click.argument("silence_id", type=int)
@BY
@pass_ctx
def silence_expire(obj: CliContext, silence_id: int, by: str | None) -> None:
    """End a silence now. Alerts it muted that still fire unacknowledged are sent at the next sweep."""

    async def body() -> None:
        async with obj.session() as session:
            await commands.expire_silence(session, silence_id, by=by or operator())

    run(body)
    click.echo(f"silence {silence_id} expired")


@click.command()
@click.argument("alert_id")
@click.option("--note", default=None, help="For the next shift, e.g. 'Niamey desk informed'.")
@BY
@pass_ctx
def ack(obj: CliContext, alert_id: str, note: str | None, by: str | None) -> None:
    """Acknowledge an alert (its id, or the first 8+ characters of it): stops re-pages, not updates."""

    async def body() -> tuple[str, str]:
        async with obj.session() as session:
            full = await store_alerts.resolve_alert_id(session, alert_id)
            row = await commands.acknowledge_alert(session, full, by or operator(), note)
            return row.id, row.state

    full, state = run(body)
    click.echo(f"alert {full[:12]} {state} by {by or operator()}" + (f": {note}" if note else ""))


@click.command(name="dry-run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--since", default="7d", show_default=True, help="How far back (a duration) or an ISO time.")
@click.option("--until", default=None, help="ISO time (default: now).")
@pass_ctx
def rule_dry_run(obj: CliContext, file: Path, since: str, until: str | None) -> None:
    """What FILE's rule would have fired on the event log (one line per incident), and why. Nothing is
    stored or sent; the rule need not be added first."""
    spec, _text = checked(lambda: rule_files.load_rule_file(file))
    end = _when(until, "--until") or datetime.now(UTC)
    start = _when(since, "--since") if since[:1].isdigit() and len(since) > 8 else end - _span(since, "--since")
    assert start is not None

    async def body() -> list:
        async with obj.session() as session:
            return await dry_run(session, spec, since=start, until=end)

    hits = run(body)
    click.echo(f"rule {spec.id}: {len(hits)} alert(s) between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC")
    for hit in hits:
        click.echo(f"  {hit.at:%Y-%m-%d %H:%M}  event {hit.event_id[:12]}  incident {hit.incident_id[:12]}")
        for reason in hit.reasons:
            click.echo(f"      {reason}")
