"""`watchfloor source …`: the feeds ingest polls (ingest's store)."""

from datetime import UTC, datetime

import click

from services.ingest import store
from services.ingest.api import SourceHealth
from services.ingest.settings import IngestSettings
from watchfloor.context import CliContext, pass_ctx, run


@click.group()
def source() -> None:
    """Feeds to poll."""


@source.command(name="add")
@click.argument("url")
@click.option("--name", default=None, help="A short name; also the source id.")
@click.option("--interval", default=300, show_default=True, type=click.IntRange(min=1),
              help="Seconds between polls (at least WATCHFLOOR_MIN_INTERVAL_SECONDS, default 10).")
@pass_ctx
def add(obj: CliContext, url: str, name: str | None, interval: int) -> None:
    """Add a feed (RSS, Atom or JSON Feed); a running `up` polls it on its next tick."""

    async def body() -> str:
        async with obj.session() as session:
            src = await store.add_source(session, url, name=name, interval=interval,
                                         min_interval=IngestSettings(**obj.overrides).min_interval_seconds)
            return src.id

    source_id = run(body)
    click.echo(f"added source {source_id} {url} every {interval}s")


@source.command(name="poll")
@click.argument("source_id")
@pass_ctx
def poll(obj: CliContext, source_id: str) -> None:
    """Poll a source now (a running `up` takes it on its next tick, whatever its backoff)."""

    async def body() -> None:
        async with obj.session() as session:
            await store.make_due(session, source_id, datetime.now(UTC))

    run(body)
    click.echo(f"source {source_id} will be polled on the next tick")


@source.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
def list_(obj: CliContext, as_json: bool) -> None:
    """Sources with their health (the same view as GET /api/sources): status, last success, last error."""

    async def body() -> list[SourceHealth]:
        async with obj.session() as session:
            return [SourceHealth.of(s) for s in await store.list_sources(session)]

    for h in run(body):
        if as_json:
            click.echo(h.model_dump_json())
            continue
        status = h.status.upper() if h.status == "failing" else h.status
        failing = f" x{h.consecutive_failures}: {h.last_error}" if h.status == "failing" else ""
        last_ok = h.last_success_at.isoformat(timespec="seconds") if h.last_success_at else "-"
        click.echo(f"{h.id:<20} {h.kind:<5} {status}{failing}  every {h.interval_seconds}s  "
                   f"last ok {last_ok}  posts {h.posts_seen}  {h.url or ''}")
