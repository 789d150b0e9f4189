"""`watchfloor source …`: the feeds ingest polls (ingest's store)."""

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.ingest import store
from services.ingest.api import SourceHealth
from services.ingest.settings import IngestSettings
from watchfloor.context import BY, CliContext, checked, operator, pass_ctx, run

if TYPE_CHECKING:
    from services.ingest.fetch import FetchResult


def slug_or(name: str | None, default: str) -> str:
    """The source id `--name` asks for, else the kind's own (`telegram-sahel_relay`)."""
    if name is None:
        return default
    source_id = store.slug(name)
    if not source_id:
        raise click.ClickException(f"name {name!r} has no letters or digits to make a source id from")
    return source_id


def screen_options(lang: str | None, keep: tuple[str, ...], block: tuple[str, ...]
                   ) -> tuple[str | None, list[str], list[str]]:
    """The language hint and patterns as they will be stored, checked before anything is fetched or stored: a
    code that is no language or a pattern RE2 refuses is a one-line error (exit status 1)."""
    from services.ingest.filters import check_patterns

    return (checked(lambda: store.lang_hint(lang)) if lang else None,
            checked(lambda: check_patterns(keep, "keep")), checked(lambda: check_patterns(block, "block")))


LANG = click.option("--lang", default=None, metavar="CODE",
                    help="The language of its posts that declare none (ISO 639: fr, ar, ha…); a post that declares "
                         "one keeps it.")
KEEP = click.option("--keep", multiple=True, metavar="PATTERN",
                    help="Publish a new post only if its title or text matches one of these (repeatable; RE2 "
                         "syntax, case- and accent-insensitive).")
BLOCK = click.option("--block", multiple=True, metavar="PATTERN",
                     help="Keep out a new post whose title or text matches any of these (repeatable; wins over "
                          "--keep). Kept-out posts are counted in `source list`, not published.")


@click.group()
def source() -> None:
    """Feeds to poll."""


@source.command(name="add")
@click.argument("url")
@click.option("--name", default=None, help="A short name; also the source id.")
@click.option("--interval", default=300, show_default=True, type=click.IntRange(min=1),
              help="Seconds between polls (at least WATCHFLOOR_MIN_INTERVAL_SECONDS, default 10).")
@click.option("--as-is", is_flag=True, help="Add the URL as given, without looking for a site page's feed.")
@LANG
@KEEP
@BLOCK
@pass_ctx
def add(obj: CliContext, url: str, name: str | None, interval: int, as_is: bool, lang: str | None,
        keep: tuple[str, ...], block: tuple[str, ...]) -> None:
    """Add a feed (RSS, Atom or JSON Feed), a Telegram channel (telegram:CHANNEL, https://t.me/CHANNEL or
    https://t.me/s/CHANNEL), a Mastodon account or hashtag (mastodon:@user@host, mastodon:#tag@host), a Bluesky
    account (bluesky:HANDLE, https://bsky.app/profile/HANDLE) or a GDELT query (gdelt:"QUERY"); a running `up`
    polls it on its next tick. A feed URL that is not http(s), or whose host is a loopback, private,
    link-local or metadata address, is refused unless WATCHFLOOR_ALLOW_PRIVATE_URLS allows it (a platform
    source is read from its WATCHFLOOR_*_BASE_URL, checked the same way at every fetch). A URL that answers a
    web page is replaced by the first feed its <link rel="alternate"> offers, the others listed, unless
    --as-is."""
    from services.ingest.sources import parse_address
    from shared.urlguard import check_url

    settings = IngestSettings(**obj.overrides)
    hint, keeps, blocks = screen_options(lang, keep, block)
    address = checked(lambda: parse_address(url))
    if address is not None:
        async def add_kind() -> str:
            async with obj.session() as session:
                src = await store.add_kind_source(
                    session, address.kind, address.handle, address.url, source_id=slug_or(name, address.source_id),
                    name=name or address.name, interval=interval, min_interval=settings.min_interval_seconds,
                    lang=hint, keep=keeps, block=blocks,
                )
                return src.id

        source_id = run(add_kind)
        click.echo(f"added source {source_id} {address.kind} {address.name} ({address.url}) every {interval}s")
        return

    async def body() -> tuple[str, str, list[str]]:
        checked_url = await check_url(url, settings.url_policy)  # before the database: nothing stored if refused
        feed_url, others = checked_url, []
        if not as_is:
            feed_url, others = await _discovered(checked_url, settings)
        async with obj.session() as session:
            src = await store.add_source(session, feed_url, name=name, interval=interval,
                                         min_interval=settings.min_interval_seconds, lang=hint, keep=keeps,
                                         block=blocks)
            return src.id, feed_url, others

    source_id, feed_url, others = run(body)
    if feed_url != url.strip():
        click.echo(f"{url} is a web page; its feed {feed_url} was picked")
        for other in others:
            click.echo(f"  also offered: {other}")
    click.echo(f"added source {source_id} {feed_url} every {interval}s")


DISCOVERY_TIMEOUT = 5.0


async def _discovered(url: str, settings: IngestSettings) -> tuple[str, list[str]]:
    """The feed a URL names: itself, unless it answers an HTML page whose `<link rel="alternate">` offers
    feeds; then the first of them (checked by the address guard like any URL added) and the others, as
    "URL (type)". A page that cannot be fetched now is added as given (the poller reports why it fails);
    an HTML page with no feed link is refused."""
    from services.ingest.fetch import FeedFetchError, fetch_feed, make_client
    from services.ingest.opml import discover_feeds
    from services.ingest.parse import looks_like_html
    from shared.urlguard import check_url

    probe = settings.model_copy(update={"fetch_timeout_seconds": min(settings.fetch_timeout_seconds,
                                                                       DISCOVERY_TIMEOUT)})
    async with make_client(probe) as client:
        try:
            got = await fetch_feed(client, url, None, None, probe)
        except FeedFetchError:
            return url, []
    content_type = got.headers.get("content-type", "").lower()
    body = got.body or b""
    if not (looks_like_html(body) or ("html" in content_type.split(";")[0] and not _is_feed(body, got))):
        return url, []  # a feed (some servers send RSS as text/html): added as given
    found = discover_feeds(body, got.url)
    if not found:
        raise click.ClickException(f"{url} is a web page with no <link rel=\"alternate\"> to an RSS, Atom or "
                                   "JSON feed; give the feed's own address")
    first = await check_url(found[0].url, settings.url_policy)
    return first, [f"{f.url} ({f.type})" for f in found[1:]]


def _is_feed(body: bytes, got: "FetchResult") -> bool:
    from services.ingest.parse import FeedParseError, parse_feed

    try:
        parse_feed(body, got.url, got.headers)
    except FeedParseError:
        return False
    return True


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
        settings = [f"lang {h.lang}"] if h.lang else []
        settings += [f"keep {p!r}" for p in h.keep] + [f"block {p!r}" for p in h.block]
        if settings:
            click.echo(f"{'':<20} {'  '.join(settings)}")
        if h.posts_filtered:
            click.echo(f"{'':<20} kept out {h.posts_filtered} posts in all; last: {h.last_filtered}")
        if h.watch_state:
            since = h.watch_since.isoformat(timespec="minutes") if h.watch_since else "?"
            click.echo(f"{'':<20} {h.watch_state.upper()} since {since}: {h.watch_reason}")


@source.command(name="alerts")
@click.option("--hours", default=24.0, show_default=True, type=click.FloatRange(min=0),
              help="Also those resolved in the last HOURS.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
def alerts(obj: CliContext, hours: float, as_json: bool) -> None:
    """Operator alerts on sources (silent, failing) as the alert service recorded them: those raised now, then
    those resolved lately (the same view as GET /api/source-alerts)."""
    import json
    from datetime import timedelta

    from services.alert import store_source_alerts

    async def body() -> list:
        async with obj.session() as session:
            return await store_source_alerts.list_source_alerts(
                session, resolved_since=datetime.now(UTC) - timedelta(hours=hours))

    rows = run(body)
    for r in rows:
        if as_json:
            click.echo(json.dumps({"id": r.id, "source_id": r.source_id, "kind": r.kind, "state": r.state,
                                   "reason": r.reason, "resolved_reason": r.resolved_reason,
                                   "raised_at": r.raised_at.isoformat(),
                                   "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None}))
            continue
        when = r.raised_at.isoformat(timespec="minutes")
        end = (f"  resolved {r.resolved_at.isoformat(timespec='minutes')}: {r.resolved_reason}"
               if r.resolved_at else "")
        click.echo(f"{r.id[:12]}  {r.state.upper() if r.state == 'raised' else r.state:<8} {r.kind:<7} "
                   f"{r.source_id:<20} {when}  {r.reason}{end}")
    if not rows and not as_json:
        click.echo("no source is silent or failing")


def _set_enabled(obj: CliContext, source_id: str, enabled: bool, by: str | None) -> None:
    async def body() -> None:
        async with obj.session() as session:
            await store.set_source_enabled(session, source_id, enabled, actor=by or operator(), now=datetime.now(UTC))

    run(body)


@source.command(name="disable")
@click.argument("source_id")
@BY
@pass_ctx
def disable(obj: CliContext, source_id: str, by: str | None) -> None:
    """Stop polling a source (its posts stay); a running `up` skips it from its next tick."""
    _set_enabled(obj, source_id, False, by)
    click.echo(f"source {source_id} disabled: not polled until `watchfloor source enable {source_id}`")


@source.command(name="enable")
@click.argument("source_id")
@BY
@pass_ctx
def enable(obj: CliContext, source_id: str, by: str | None) -> None:
    """Poll a source again, on the next tick (a removed source is restored)."""
    _set_enabled(obj, source_id, True, by)
    click.echo(f"source {source_id} enabled: polled on the next tick")


@source.command(name="edit")
@click.argument("source_id")
@click.option("--url", default=None, help="The feed's new address (the source id, and so its posts, stay).")
@click.option("--name", default=None)
@click.option("--interval", default=None, type=click.IntRange(min=1), help="Seconds between polls.")
@LANG
@click.option("--no-lang", is_flag=True, help="Clear the language hint.")
@click.option("--keep", multiple=True, metavar="PATTERN",
              help="Replace the keep patterns with these (repeatable; RE2 syntax, case- and accent-insensitive).")
@click.option("--no-keep", is_flag=True, help="Clear the keep patterns: every post not blocked is published.")
@click.option("--block", multiple=True, metavar="PATTERN", help="Replace the block patterns with these (repeatable).")
@click.option("--no-block", is_flag=True, help="Clear the block patterns.")
@BY
@pass_ctx
def edit(obj: CliContext, source_id: str, url: str | None, name: str | None, interval: int | None,
         lang: str | None, no_lang: bool, keep: tuple[str, ...], no_keep: bool, block: tuple[str, ...],
         no_block: bool, by: str | None) -> None:
    """Change a source's URL, name, polling interval, language hint or keep/block patterns (a push source's
    too). A new URL passes the same address check as `add`. New patterns decide posts not seen yet: what was
    published or kept out before stays so."""
    from shared.urlguard import check_url

    settings = IngestSettings(**obj.overrides)
    for given, cleared, what in ((lang, no_lang, "lang"), (keep, no_keep, "keep"), (block, no_block, "block")):
        if given and cleared:
            raise click.ClickException(f"give --{what} or --no-{what}, not both")
    hint, keeps, blocks = screen_options(lang, keep, block)

    async def body() -> SourceHealth:
        new_url = await check_url(url, settings.url_policy) if url is not None else None  # before the database
        async with obj.session() as session:
            src = await store.edit_source(
                session, source_id, actor=by or operator(), now=datetime.now(UTC), url=new_url, name=name,
                interval=interval, min_interval=settings.min_interval_seconds,
                lang="" if no_lang else hint, keep=[] if no_keep else (keeps or None),
                block=[] if no_block else (blocks or None),
            )
            return SourceHealth.of(src)

    h = run(body)
    click.echo(f"source {source_id} {h.url or '(push)'} every {h.interval_seconds}s  lang {h.lang or '-'}  "
               f"keep {h.keep or '-'}  block {h.block or '-'}")


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


@source.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--interval", default=300, show_default=True, type=click.IntRange(min=1),
              help="Seconds between polls for an outline without wf:interval.")
@pass_ctx
def import_(obj: CliContext, file: Path, interval: int) -> None:
    """Add every feed of an OPML file (outlines with xmlUrl, nested folders included), with the language hint
    and patterns a watchfloor export wrote (wf:lang, wf:keep, wf:block). Feeds already added are skipped; a URL
    the address guard refuses, a bad hint or pattern, or one that cannot be added, is reported with its reason
    and the others are still added (exit status 1 if any was refused)."""
    from services.ingest.filters import check_patterns
    from services.ingest.opml import parse_opml
    from shared.errors import ReasonError
    from shared.urlguard import UrlRefused, check_url

    settings = IngestSettings(**obj.overrides)
    feeds = checked(lambda: parse_opml(file.read_bytes()))

    async def body() -> list[tuple[str, str, str]]:
        outcomes: list[tuple[str, str, str]] = []  # (added|skipped|refused, url, what)
        for feed in feeds:
            try:
                url = await check_url(feed.url, settings.url_policy)
            except UrlRefused as exc:
                outcomes.append(("refused", feed.url, exc.reason))
                continue
            try:
                hint = store.lang_hint(feed.lang) if feed.lang else None
                keeps, blocks = check_patterns(feed.keep, "keep"), check_patterns(feed.block, "block")
            except ReasonError as exc:
                outcomes.append(("refused", url, exc.reason))
                continue
            try:
                async with obj.session() as session:  # one transaction a feed: one refusal undoes nothing else
                    known = await store.source_by_url(session, url)
                    if known is None:
                        src = await store.add_source(session, url, name=feed.name or feed.source_id,
                                                     interval=feed.interval or interval,
                                                     min_interval=settings.min_interval_seconds, lang=hint,
                                                     keep=keeps, block=blocks)
                        src_id, every = src.id, src.interval_seconds
            except store.SourceError as exc:
                outcomes.append(("refused", url, exc.reason))
                continue
            if known is not None:
                removed = " (removed; `watchfloor source enable` restores it)" if known.removed_at else ""
                outcomes.append(("skipped", url, f"already polled as source {known.id!r}{removed}"))
                continue
            outcomes.append(("added", url, f"as {src_id} every {every}s"
                             + (f" (folder {feed.folder})" if feed.folder else "")))
        return outcomes

    outcomes = run(body)
    for status, url, what in outcomes:
        click.echo(f"{status:<8} {url}  {what}")
    counts = {k: sum(1 for o in outcomes if o[0] == k) for k in ("added", "skipped", "refused")}
    click.echo(f"{counts['added']} added, {counts['skipped']} skipped, {counts['refused']} refused "
               f"of {len(feeds)} feeds in {file}")
    if counts["refused"]:
        raise SystemExit(1)


@source.command(name="export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="Write here instead of standard output.")
@pass_ctx
def export(obj: CliContext, output: Path | None) -> None:
    """The feed sources as OPML 2.0 (platform sources such as Telegram channels are not feeds and are left
    out); wf:id, wf:interval, wf:lang, wf:keep and wf:block keep each source's id, polling interval, language
    hint and patterns for a later import."""
    from services.ingest.opml import FeedSource, write_opml

    async def body() -> list[FeedSource]:
        async with obj.session() as session:
            return [FeedSource(s.id, s.name or s.url, s.url, s.interval_seconds, s.lang, s.keep_patterns or [],
                               s.block_patterns or [])
                    for s in await store.list_sources(session) if s.kind == "feed" and s.url]

    document = write_opml(run(body))
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document, encoding="utf-8")
        click.echo(f"wrote {document.count('<outline ')} feeds to {output}", err=True)
