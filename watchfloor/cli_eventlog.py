"""`watchfloor export` and `watchfloor explain`: the event log for ops, from a second terminal."""

import json
import re
from datetime import UTC, datetime, timedelta

import click

from services.alert import dryrun, eventlog, store_eventlog
from services.alert.eventlog import LogQuery
from watchfloor.context import CliContext, checked, pass_ctx, run

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")


def when(value: str | None, name: str, now: datetime) -> datetime | None:
    """`7d`, `12h`, `30m`, `2w` (that long ago) or an ISO 8601 time (UTC if no zone is given)."""
    if value is None:
        return None
    found = _AGO.match(value)
    if found:
        unit = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[found.group(2)]
        return now - timedelta(seconds=float(found.group(1)) * unit)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: give 7d, 12h, 30m or an ISO 8601 time", param_hint=name) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.option("--format", "fmt", type=click.Choice(list(eventlog.FORMATS)), default="csv", show_default=True)
@click.option("--of", "kind", type=click.Choice(["events", "alerts"]), default="events", show_default=True,
              help="events: one row per classified post; alerts: one row per alert.")
@click.option("--since", help="7d, 12h, or an ISO 8601 time.")
@click.option("--until", help="7d, 12h, or an ISO 8601 time.")
@click.option("--actor", "actors", multiple=True, help="Actor code (sub-units included), repeatable.")
@click.option("--tactic", "tactics", multiple=True, help="Tactic code, repeatable.")
@click.option("--rule", help="Only what this rule alerted on.")
@click.option("--state", type=click.Choice(eventlog.STATES), help="Alert state.")
@click.option("--country", help="ISO 3166-1 alpha-2, e.g. NE.")
@click.option("--near", help="A place from the gazetteer, e.g. Niamey (with --radius-km).")
@click.option("--radius-km", type=float)
@click.option("--limit", type=int, help="At most this many records.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout).")
@pass_ctx
def export(obj: CliContext, fmt: str, kind: str, since: str | None, until: str | None, actors: tuple[str, ...],
           tactics: tuple[str, ...], rule: str | None, state: str | None, country: str | None, near: str | None,
           radius_km: float | None, limit: int | None, output: str | None) -> None:
    """Export the event log as CSV (RFC 4180), GeoJSON ([lon, lat] points) or JSON lines, newest first."""
    now = datetime.now(UTC)
    query = checked(lambda: LogQuery(
        kind="alerts" if kind == "alerts" else "events", since=when(since, "--since", now),
        until=when(until, "--until", now), actors=actors, tactics=tactics, rule=rule, state=state,
        country=country.upper() if country else None, near=eventlog.resolve_near(near, radius_km, country),
        limit=limit,
    ))
    exporter = eventlog.Exporter(fmt, query.kind)

    with click.open_file(output or "-", "w", encoding="utf-8") as out:

        async def body() -> int:
            count = 0
            out.write(exporter.head())
            async with obj.session() as session:
                async for record in store_eventlog.records(session, query):
                    out.write(exporter.item(record))
                    count += 1
            out.write(exporter.tail())
            return count

        count = run(body)
    click.echo(f"exported {count} {query.kind}" + (f" to {output}" if output else ""), err=True)


@click.command()
@click.argument("post_id")
@click.option("--json", "as_json", is_flag=True, help="The explanation as one JSON object.")
@pass_ctx
def explain(obj: CliContext, post_id: str, as_json: bool) -> None:
    """Why each enabled rule did or did not fire for POST_ID (a full id or a unique prefix of 6 or more):
    every check with its reason, silences and inhibition, and the post's labels with their evidence."""
    async def body() -> dict | None:
        async with obj.session() as session:
            return await dryrun.explain_post(session, post_id, datetime.now(UTC))

    found = run(body)
    if found is None:
        raise click.ClickException(f"no classified post {post_id}: check the id (`watchfloor export --of events "
                                   f"--format jsonl` lists them), or wait for classify to reach it")
    if as_json:
        click.echo(json.dumps({k: v for k, v in found.items() if k != "text"}, ensure_ascii=False, indent=2))
    else:
        click.echo(found["text"])
