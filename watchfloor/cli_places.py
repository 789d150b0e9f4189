"""`watchfloor place …`: the watch floor's own gazetteer (villages no package has), and what to add next."""

import json
from datetime import UTC, datetime, timedelta

import click

from shared import placebook
from watchfloor.context import BY, CliContext, operator, pass_ctx, run


@click.group()
def place() -> None:
    """Places officers add to the gazetteer."""


@place.command(name="add")
@click.argument("name")
@click.option("--lat", type=float, required=True, help="Latitude, WGS84 degrees.")
@click.option("--lon", type=float, required=True, help="Longitude, WGS84 degrees.")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. NE.")
@click.option("--kind", default="village", show_default=True, type=click.Choice(placebook.KINDS))
@click.option("--admin1", default=None, help="The region it is in, e.g. Tillabéri.")
@click.option("--alias", "aliases", multiple=True, help="Another spelling (repeat for several).")
@click.option("--source", required=True, help="The public reference the point comes from.")
@BY
@pass_ctx
def add(obj: CliContext, name: str, lat: float, lon: float, country: str, kind: str, admin1: str | None,
        aliases: tuple[str, ...], source: str, by: str | None) -> None:
    """Add a place (audited). A running `up` uses it for the next post, without a restart, and classifies again
    the last week's posts that named it unresolved, so their incidents are placed."""

    async def body() -> placebook.OfficerPlace:
        async with obj.session() as session:
            return await placebook.add_place(
                session, placebook.NewPlace(name, lat, lon, country, source, kind, admin1, aliases),
                actor=by or operator())

    row = run(body)
    click.echo(f"added place {row.id} {row.name} ({row.country}) {row.lat:.5f},{row.lon:.5f}")


@place.command(name="list")
@click.option("--unresolved", is_flag=True, help="Places posts named that no gazetteer knows, most named first.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1),
              help="With --unresolved: how far back.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
def list_(obj: CliContext, unresolved: bool, days: int, as_json: bool) -> None:
    """The places officers added, or (--unresolved) those they should add."""
    since = datetime.now(UTC) - timedelta(days=days)

    async def body() -> list:
        async with obj.session() as session:
            if unresolved:
                return await placebook.unresolved(session, since=since)
            return await placebook.list_places(session)

    rows = run(body)
    if unresolved:
        for u in rows:
            item = {"name": u.name, "admin1": u.admin1, "country": u.country, "mentions": u.mentions,
                    "last_seen": u.last_seen.isoformat(), "example_event": u.example_event}
            where = ", ".join(x for x in (u.admin1, u.country) if x) or "?"
            line = f"{u.mentions:>4}  {u.name} ({where})  last {u.last_seen:%Y-%m-%d %H:%M}  e.g. {u.example_event[:8]}"
            click.echo(json.dumps(item, ensure_ascii=False) if as_json else line)
        if not rows and not as_json:
            click.echo(f"no unresolved places in the last {days} days")
        return
    for r in rows:
        item = {"id": r.id, "name": r.name, "lat": r.lat, "lon": r.lon, "country": r.country, "admin1": r.admin1,
                "kind": r.kind, "aliases": r.aliases, "source": r.source, "created_by": r.created_by,
                "created_at": r.created_at.isoformat()}
        click.echo(json.dumps(item, ensure_ascii=False) if as_json else
                   f"{r.id:>4}  {r.name} ({r.country}, {r.kind}) {r.lat:.5f},{r.lon:.5f}  by {r.created_by}  "
                   f"source: {r.source}")
    if not rows and not as_json:
        click.echo("no places added yet (watchfloor place add NAME --lat --lon --country --source REF)")
