"""`watchfloor source …`: the feeds ingest polls (ingest's store)."""

import click

from services.ingest import store
from watchfloor.context import CliContext, pass_ctx, run


@click.group()
def source() -> None:
    """Feeds to poll."""


@source.command(name="add")
@click.argument("url")
@click.option("--name", default=None, help="A short name; also the source id.")
@click.option("--interval", default=300, show_default=True, type=click.IntRange(min=10),
              help="Seconds between polls.")
@pass_ctx
def add(obj: CliContext, url: str, name: str | None, interval: int) -> None:
    """Add a feed (RSS, Atom or JSON Feed); a running `up` polls it on its next tick."""

    async def body() -> str:
        async with obj.session() as session:
            src = await store.add_source(session, url, name=name, interval=interval)
            return src.id

    source_id = run(body)
    click.echo(f"added source {source_id} {url} every {interval}s")


@source.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(obj: CliContext, as_json: bool) -> None:
    """Sources with their health: last success, last error and its reason, consecutive failures."""
    import json

    async def body() -> list[dict]:
        async with obj.session() as session:
            return [
                {
                    "id": s.id, "name": s.name, "url": s.url, "kind": s.kind, "interval": s.interval_seconds,
                    "last_success_at": s.last_success_at, "last_error": s.last_error,
                    "consecutive_failures": s.consecutive_failures, "next_poll_at": s.next_poll_at,
                }
                for s in await store.list_sources(session)
            ]

    rows = run(body)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    for r in rows:
        health = "ok" if not r["consecutive_failures"] else f"FAILING x{r['consecutive_failures']}: {r['last_error']}"
        click.echo(f"{r['id']:<20} {r['kind']:<5} every {r['interval']}s  last ok {r['last_success_at'] or '-'}  "
                   f"{health}  {r['url'] or ''}")
