"""`watchfloor source …`: the feeds ingest polls (ingest's store)."""

from datetime import UTC, datetime

import click

from services.ingest import store
from services.ingest.api import SourceHealth
from services.ingest.settings import IngestSettings
from watchfloor.context import BY, CliContext, checked, operator, pass_ctx, run


def slug_or(name: str | None, default: str) -> str:
    """The source id `--name` asks for, else the kind's own (`telegram-sahel_relay`)."""
    if name is None:
        return default
    source_id = store.slug(name)
    if not source_id:
        raise click.ClickException(f"name {name!r} has no letters or digits to make a source id from")
    return source_id


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
    """Add a feed (RSS, Atom or JSON Feed), a Telegram channel (telegram:CHANNEL, https://t.me/CHANNEL or
    https://t.me/s/CHANNEL), a Mastodon account or hashtag (mastodon:@user@host, mastodon:#tag@host), a Bluesky
    account (bluesky:HANDLE, https://bsky.app/profile/HANDLE) or a GDELT query (gdelt:"QUERY"); a running `up`
    polls it on its next tick. A feed URL that is not http(s), or whose
    host is a loopback, private, link-local or metadata address, is refused unless
    WATCHFLOOR_ALLOW_PRIVATE_URLS allows it (a platform source is read from its WATCHFLOOR_*_BASE_URL, checked
    the same way at every fetch)."""
    from services.ingest.sources import parse_address
    from shared.urlguard import check_url

    settings = IngestSettings(**obj.overrides)
    address = checked(lambda: parse_address(url))
    if address is not None:
        async def add_kind() -> str:
            async with obj.session() as session:
                src = await store.add_kind_source(
                    session, address.kind, address.handle, address.url, source_id=slug_or(name, address.source_id),
                    name=name or address.name, interval=interval, min_interval=settings.min_interval_seconds,
                )
                return src.id

        source_id = run(add_kind)
        click.echo(f"added source {source_id} {address.kind} {address.name} ({address.url}) every {interval}s")
        return

    async def body() -> str:
        checked_url = await check_url(url, settings.url_policy)  # before the database: nothing stored if refused
        async with obj.session() as session:
            src = await store.add_source(session, checked_url, name=name, interval=interval,
                                         min_interval=settings.min_interval_seconds)
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
        if h.last_warning:
            click.echo(f"{'':<20} warning: {h.last_warning}")


@source.command(name="disable")
@click.argument("source_id")
@BY
@pass_ctx
def disable(obj: CliContext, source_id: str, by: str | None) -> None:
    """Stop polling a source (its posts stay); a running `up` skips it from its next tick."""

    async def body() -> None:
        async with obj.session() as session:
            await store.set_source_enabled(session, source_id, False, actor=by or operator(), now=datetime.now(UTC))

    run(body)
    click.echo(f"source {source_id} disabled: not polled until `watchfloor source enable {source_id}`")


@source.command(name="enable")
@click.argument("source_id")
@BY
@pass_ctx
def enable(obj: CliContext, source_id: str, by: str | None) -> None:
    """Poll a source again, on the next tick (a removed source is restored)."""

    async def body() -> None:
        async with obj.session() as session:
            await store.set_source_enabled(session, source_id, True, actor=by or operator(), now=datetime.now(UTC))

    run(body)
    click.echo(f"source {source_id} enabled: polled on the next tick")


@source.command(name="edit")
@click.argument("source_id")
@click.option("--url", default=None, help="The feed's new address (the source id, and so its posts, stay).")
@click.option("--name", default=None)
@click.option("--interval", default=None, type=click.IntRange(min=1), help="Seconds between polls.")
@BY
@pass_ctx
def edit(obj: CliContext, source_id: str, url: str | None, name: str | None, interval: int | None,
         by: str | None) -> None:
    """Change a feed's URL, name or polling interval. A new URL passes the same address check as `add`."""
    from shared.urlguard import check_url

    settings = IngestSettings(**obj.overrides)

    async def body() -> tuple[str | None, int]:
        new_url = await check_url(url, settings.url_policy) if url is not None else None  # before the database
        async with obj.session() as session:
            src = await store.edit_source(session, source_id, actor=by or operator(), now=datetime.now(UTC),
                                          url=new_url, name=name, interval=interval,
                                          min_interval=settings.min_interval_seconds)
            return src.url, src.interval_seconds

    new_url, every = run(body)
    click.echo(f"source {source_id} {new_url} every {every}s")


@source.command(name="remove")
@click.argument("source_id")
@BY
@pass_ctx
def remove(obj: CliContext, source_id: str, by: str | None) -> None:
    """Stop polling a source and hide it from the list; its posts, events and alerts stay in the log
    (`watchfloor source enable ID` restores it)."""

    async def body() -> None:
        async with obj.session() as session:
            await store.remove_source(session, source_id, actor=by or operator(), now=datetime.now(UTC))

    run(body)
    click.echo(f"source {source_id} removed; its posts stay in the log")
