"""Ingest's SQL, and the only place it is written: sources and their health, posts and their outbox mark.

Works on PostgreSQL and SQLite alike; every write is idempotent (post ids are deterministic), so a poll
retried after a crash, or run by two ingest processes at once, never stores a post twice.
"""

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.errors import ReasonError
from shared.language import known_language
from shared.messages import PostMessage, SourceWatchMessage
from shared.models import AuditEntry, FilteredPost, Post, Source, SourceWatchEvent

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_INTERVAL_SECONDS = 10


class SourceError(ReasonError):
    """A source cannot be added or used as asked. `reason` says what to change."""


class SourceOwnerError(SourceError):
    """A push under a source the caller does not own: another token's, or a polled one."""


def lang_hint(tag: str) -> str:
    """The ISO 639 code a source's language hint is stored as ("fr-FR" -> "fr"). Raises `SourceError` for a
    code no language has, so that a typo is refused, not silently never matched."""
    code = known_language(tag)
    if code is None:
        raise SourceError(f"language {tag.strip()!r} is not an ISO 639 language code; give one such as fr, en, ar,"
                          " ha, bm or ff")
    return code


def slug(name: str) -> str:
    """A source id from a human name: "Veille Sahel (FR)" -> "veille-sahel-fr"."""
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")[:64].strip("-")


async def add_source(
    session: AsyncSession, url: str, *, name: str | None = None, interval: int = 300,
    min_interval: int = MIN_INTERVAL_SECONDS, lang: str | None = None, keep: list[str] | None = None,
    block: list[str] | None = None,
) -> Source:
    """Adds a feed to poll, due at once. Raises `SourceError` for a bad URL, a taken id, a URL already added or
    a language hint that is no language. `min_interval` protects the feed's host from an operator's typo
    (IngestSettings.min_interval_seconds). `keep` and `block` are patterns checked by `filters.check_patterns`."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"{url!r} is not an http(s) URL; give the feed's full address, e.g. https://host/rss")
    if interval < min_interval:
        raise SourceError(f"interval {interval} s is too short; use at least {min_interval} s")
    source_id = slug(name) if name else ids.source_id(url)
    if not source_id:
        raise SourceError(f"name {name!r} has no letters or digits to make a source id from")
    same_url = (await session.execute(sa.select(Source).where(Source.url == url))).scalar_one_or_none()
    if same_url is not None:
        raise SourceError(f"{url} is already polled as source {same_url.id!r}")
    if await session.get(Source, source_id) is not None:
        raise SourceError(f"a source with id {source_id!r} exists already; choose another name")
    source = Source(id=source_id, name=name or url, url=url, kind="feed", interval_seconds=interval,
                    enabled=True, consecutive_failures=0, posts_seen=0, **_screen(lang, keep, block))
    session.add(source)
    try:
        await session.flush()
    except IntegrityError as exc:  # another process added it between our check and our insert
        raise SourceError(f"{url} (id {source_id!r}) was just added by someone else") from exc
    return source


async def source_by_url(session: AsyncSession, url: str) -> Source | None:
    """The source polling exactly this URL, removed ones included (they keep their URL)."""
    return (await session.execute(sa.select(Source).where(Source.url == url.strip()))).scalar_one_or_none()


def _screen(lang: str | None, keep: list[str] | None, block: list[str] | None) -> dict[str, object]:
    return {"lang": lang_hint(lang) if lang else None, "keep_patterns": list(keep or []),
            "block_patterns": list(block or []), "posts_filtered": 0}


async def add_kind_source(
    session: AsyncSession, kind: str, handle: str, url: str, *, source_id: str, name: str, interval: int = 300,
    min_interval: int = MIN_INTERVAL_SECONDS, lang: str | None = None, keep: list[str] | None = None,
    block: list[str] | None = None,
) -> Source:
    """Adds a platform source (a Telegram channel…) to poll through its kind's adapter, due at once, with no
    cursor yet (its first poll reads back). Raises `SourceError` for a short interval or one already added
    (handles compare case-insensitively, as Telegram and Mastodon names do)."""
    if interval < min_interval:
        raise SourceError(f"interval {interval} s is too short; use at least {min_interval} s")
    same_handle = sa.and_(Source.kind == kind, sa.func.lower(Source.handle) == handle.lower())
    same = (await session.execute(sa.select(Source).where(sa.or_(Source.url == url, same_handle)))).scalar_one_or_none()
    if same is not None:
        raise SourceError(f"{url} is already polled as source {same.id!r}")
    if await session.get(Source, source_id) is not None:
        raise SourceError(f"a source with id {source_id!r} exists already")
    source = Source(id=source_id, name=name, url=url, kind=kind, handle=handle, interval_seconds=interval,
                    enabled=True, consecutive_failures=0, posts_seen=0, **_screen(lang, keep, block))
    session.add(source)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SourceError(f"{url} (id {source_id!r}) was just added by someone else") from exc
    return source


async def get_source(session: AsyncSession, source_id: str) -> Source | None:
    return await session.get(Source, source_id)


async def make_due(session: AsyncSession, source_id: str, now: datetime) -> Source:
    """Asks for a poll now (after fixing a feed, say): a running poller takes it on its next tick, backoff
    or not. Raises `SourceError` if there is no such feed source."""
    source = await session.get(Source, source_id)
    if source is None or source.kind == "push" or source.removed_at is not None:
        raise SourceError(f"no feed source {source_id!r}; `watchfloor source list` shows them")
    if not source.enabled:
        raise SourceError(f"source {source_id!r} is disabled; `watchfloor source enable {source_id}` polls it again")
    source.next_poll_at = now
    return source


async def list_sources(session: AsyncSession, include_removed: bool = False) -> list[Source]:
    """Sources by id; removed ones (their posts stay in the log) only with `include_removed`."""
    query = sa.select(Source).order_by(Source.id)
    if not include_removed:
        query = query.where(Source.removed_at.is_(None))
    return list((await session.execute(query)).scalars())


async def _changeable(session: AsyncSession, source_id: str, *, removed_ok: bool = False) -> Source:
    source = await session.get(Source, source_id, with_for_update={"key_share": True})  # see learn_posts
    if source is None:
        raise SourceError(f"no source {source_id!r}; `watchfloor source list` shows them")
    if source.removed_at is not None and not removed_ok:
        raise SourceError(f"source {source_id!r} was removed; `watchfloor source enable {source_id}` restores it")
    return source


def _audit(session: AsyncSession, actor: str, action: str, source_id: str, detail: dict | None) -> None:
    session.add(AuditEntry(actor=actor, action=action, target_kind="source", target_id=source_id, detail=detail))


async def set_source_enabled(session: AsyncSession, source_id: str, enabled: bool, *, actor: str,
                             now: datetime) -> Source:
    """Disabled: never polled, and its pushed posts are refused; enabled: polled on the next tick. Enabling a removed
    source restores it. Audited."""
    source = await _changeable(session, source_id, removed_ok=enabled)
    restored = source.removed_at is not None
    source.enabled, source.removed_at = enabled, None
    if enabled:
        source.next_poll_at = now
    _audit(session, actor, "source.enabled" if enabled else "source.disabled", source_id,
           {"restored": True} if restored else None)
    return source


async def edit_source(session: AsyncSession, source_id: str, *, actor: str, now: datetime, url: str | None = None,
                      name: str | None = None, interval: int | None = None,
                      min_interval: int = MIN_INTERVAL_SECONDS, lang: str | None = None,
                      keep: list[str] | None = None, block: list[str] | None = None) -> Source:
    """Changes a source's URL, name, interval, language hint or patterns (its id stays, so its posts stay its
    own). A new URL forgets the old validators and is polled on the next tick. `lang=""` clears the hint; `keep`
    and `block` replace the lists (`[]` clears one; checked by `filters.check_patterns`). New patterns apply to
    posts not seen yet: a post published or kept out before stays as it was. Push sources take the hint and
    the patterns too. Audited."""
    source = await _changeable(session, source_id)
    changed: dict[str, object] = {}
    if url is not None and url.strip() != source.url:
        url = url.strip()
        parts = urlsplit(url)
        if source.kind == "push":
            raise SourceError(f"source {source_id!r} is a push source: it has no URL to change")
        if source.kind != "feed":
            raise SourceError(f"source {source_id!r} is a {source.kind} source: its address is not a URL to change;"
                              f" `watchfloor source remove {source_id}` and add the new address")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"{url!r} is not an http(s) URL; give the feed's full address, e.g. https://host/rss")
        taken = (await session.execute(sa.select(Source.id).where(Source.url == url))).scalar_one_or_none()
        if taken is not None:
            raise SourceError(f"{url} is already polled as source {taken!r}")
        source.url, source.etag, source.last_modified, source.next_poll_at = url, None, None, now
        changed["url"] = url
    if name is not None:
        source.name = changed["name"] = name
    if interval is not None:
        if interval < min_interval:
            raise SourceError(f"interval {interval} s is too short; use at least {min_interval} s")
        source.interval_seconds = changed["interval_seconds"] = interval
    if lang is not None:
        source.lang = changed["lang"] = lang_hint(lang) if lang else None
    if keep is not None:
        source.keep_patterns = changed["keep_patterns"] = list(keep)
    if block is not None:
        source.block_patterns = changed["block_patterns"] = list(block)
    if not changed:
        raise SourceError("nothing to change: give a new --url, --name, --interval, --lang, --keep or --block")
    _audit(session, actor, "source.edited", source_id, changed)
    return source


async def remove_source(session: AsyncSession, source_id: str, *, actor: str, now: datetime) -> Source:
    """Soft delete: the source is no longer polled or listed, and its posts (and what was classified and
    alerted from them) stay in the log. `set_source_enabled(..., True)` restores it. Audited."""
    source = await _changeable(session, source_id)
    source.enabled, source.removed_at = False, now
    _audit(session, actor, "source.removed", source_id, {"url": source.url, "posts_seen": source.posts_seen})
    return source


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        Source.kind != "push",  # feeds and every platform kind are polled; push sources are heard
        Source.enabled.is_(True),
        sa.or_(Source.next_poll_at.is_(None), Source.next_poll_at <= now),
    )


async def due_sources(session: AsyncSession, now: datetime, limit: int | None = None) -> list[Source]:
    """Enabled polled sources whose next poll time has come (never polled ones first). Read each tick, so a
    source added by another process is picked up without a restart."""
    query = sa.select(Source).where(_due(now)).order_by(Source.next_poll_at.is_not(None), Source.next_poll_at)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars())


async def claim_due_sources(
    session: AsyncSession, now: datetime, lease_until: datetime, limit: int
) -> list[Source]:
    """Due sources this process will poll now (never polled ones first). Each is leased by moving
    `next_poll_at` to `lease_until`, in one conditional UPDATE ... RETURNING, so two ingest processes never
    poll one source at once, and a poller that dies mid-poll leaves the source due again when the lease runs
    out. On PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED: processes claiming together take
    different sources instead of queueing on the same rows."""
    picked = (
        sa.select(Source.id).where(_due(now))
        .order_by(Source.next_poll_at.is_not(None), Source.next_poll_at).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    # A CTE, not `id IN (subquery)`: PostgreSQL may run a LIMIT ... FOR UPDATE subquery once per row and
    # claim more than `limit` sources (seen: 5 claimed with limit 2); a CTE runs once.
    ids = picked.cte("picked")
    result = await session.execute(
        sa.update(Source)
        .where(Source.id == ids.c.id, _due(now))  # due again: another process may have claimed it meanwhile
        .values(next_poll_at=lease_until)
        .returning(Source),
        execution_options={"synchronize_session": False},
    )
    return list(result.scalars())


async def defer_poll(session: AsyncSession, source_id: str, next_poll_at: datetime) -> None:
    """Gives back a claimed source unpolled, due again at `next_poll_at` (its host is not free before); its
    health is unchanged: waiting for a busy host is not a failure."""
    await session.execute(
        sa.update(Source).where(Source.id == source_id).values(next_poll_at=next_poll_at)
        .execution_options(synchronize_session=False)
    )


async def record_poll(
    session: AsyncSession,
    source_id: str,
    *,
    now: datetime,
    next_poll_at: datetime,
    error: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    keep_validators: bool = False,
    new_posts: int = 0,
    cursor: str | None = None,
    warning: str | None = None,
    content_read: bool = False,
    kept_out: int = 0,
    kept_out_note: str | None = None,
) -> None:
    """Writes one poll's outcome into the source's health. A success resets `consecutive_failures` and
    stores the validators (a 304 keeps the old ones unless it sent new ones, RFC 9111 §4.3.4); a failure
    counts up and keeps `last_error` until the next failure replaces it, so ops can see what last went wrong;
    `failing_since` is the first failure of the run, cleared by a success.
    `warning` (items dropped over the cap) is set by a poll that read the feed (`content_read`) and cleared by
    one that read it without a warning; a 304 or a failure leaves it as it was. `kept_out` new posts the
    source's patterns kept out are counted, and `kept_out_note` replaces `last_filtered` (a poll that kept
    nothing out leaves the last note, so ops see when it last happened)."""
    values: dict[str, object] = {"last_polled_at": now, "next_poll_at": next_poll_at}
    if kept_out:
        values.update(posts_filtered=Source.posts_filtered + kept_out, last_filtered=kept_out_note,
                      last_filtered_at=now)
    if content_read:
        values.update(last_warning=warning, last_warning_at=now if warning else None)
    if error is None:
        values.update(last_success_at=now, consecutive_failures=0, posts_seen=Source.posts_seen + new_posts,
                      failing_since=None)
        if cursor is not None:
            values["cursor"] = cursor[:200]
        if not keep_validators or etag is not None:
            values["etag"] = etag[:500] if etag else None
        if not keep_validators or last_modified is not None:
            values["last_modified"] = last_modified[:100] if last_modified else None
    else:
        values.update(last_error=error, last_error_at=now, consecutive_failures=Source.consecutive_failures + 1,
                      failing_since=sa.func.coalesce(Source.failing_since, now))  # the run's first failure
    await session.execute(
        sa.update(Source).where(Source.id == source_id).values(**values)
        .execution_options(synchronize_session=False)
    )


def _insert(session: AsyncSession) -> type[postgresql.Insert] | type[sqlite.Insert]:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.Insert
    if dialect == "sqlite":
        return sqlite.Insert
    raise RuntimeError(f"unsupported database {dialect!r}: use PostgreSQL or SQLite")


def _row(post: PostMessage, dedup_key: str) -> dict[str, object]:
    return {
        "id": post.post_id, "source_id": post.source_id, "dedup_key": dedup_key, "guid": post.guid,
        "url": post.url, "title": post.title, "text": post.text, "lang": post.lang,
        "published_at": post.published_at, "fetched_at": post.fetched_at, "queued_at": None,
        "forwarded_from": post.forwarded_from,
    }


async def existing_post_ids(session: AsyncSession, post_ids: list[str]) -> set[str]:
    """The ids already seen: stored posts and posts a source's patterns kept out, so that neither is published
    or evaluated again."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # one statement (and one prepared statement) for any number of ids
        return set((await session.execute(_seen_ids(dialect), {"ids": post_ids})).scalars())
    found: set[str] = set()
    for start in range(0, len(post_ids), 500):  # stay under SQLite's bound-parameter limit
        found.update((await session.execute(_seen_ids(dialect), {"ids": post_ids[start:start + 500]})).scalars())
    return found


def _ids_param(dialect: str) -> Any:
    """The list of ids a hot statement takes: an array on PostgreSQL (`= ANY(:ids)`, one SQL text whatever the
    number), an expanding IN elsewhere."""
    if dialect == "postgresql":
        return sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)))
    return sa.bindparam("ids", expanding=True)


@functools.cache
def _seen_ids(dialect: str) -> Any:
    """Built once per dialect: building a statement costs more than running it."""
    posts, filtered = Post.__table__.c, FilteredPost.__table__.c
    if dialect == "postgresql":
        return sa.union_all(sa.select(posts.id).where(posts.id == _ids_param(dialect)),
                            sa.select(filtered.id).where(filtered.id == _ids_param(dialect)))
    return sa.union_all(sa.select(posts.id).where(posts.id.in_(_ids_param(dialect))),
                        sa.select(filtered.id).where(filtered.id.in_(_ids_param(dialect))))


async def unseen_posts(session: AsyncSession, posts: list[tuple[PostMessage, str]]) -> list[tuple[PostMessage, str]]:
    """The posts whose id is neither stored nor kept out before: the only ones a source's patterns decide."""
    known = await existing_post_ids(session, [p.post_id for p, _ in posts])
    return [(p, k) for p, k in posts if p.post_id not in known]


async def insert_kept_out(session: AsyncSession, posts: list[tuple[PostMessage, str, str]], now: datetime) -> int:
    """Records posts the source's patterns kept out (post, dedup key, reason), each once; returns how many were
    new. Idempotent on the id, as `insert_post_if_new`."""
    insert = _insert(session)
    recorded = 0
    for post, key, reason in posts:
        stmt = insert(FilteredPost).values(
            id=post.post_id, source_id=post.source_id, dedup_key=key, title=post.title[:1000], url=post.url,
            reason=reason, filtered_at=now,
        ).on_conflict_do_nothing(index_elements=["id"])
        recorded += (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]  # CursorResult
    return recorded


async def insert_post_if_new(session: AsyncSession, post: PostMessage, dedup_key: str) -> bool:
    """Stores the post unless its id is already there; True if it was new. Idempotent on the primary key
    (INSERT ... ON CONFLICT DO NOTHING), so a concurrent insert of the same post is not an error."""
    insert = _insert(session)
    stmt = insert(Post).values(**_row(post, dedup_key)).on_conflict_do_nothing(index_elements=["id"])
    result = await session.execute(stmt)
    return result.rowcount == 1  # type: ignore[attr-defined]  # CursorResult of an INSERT


async def insert_posts(session: AsyncSession, posts: list[tuple[PostMessage, str]]) -> set[str]:
    """Stores the posts whose id is neither stored nor kept out before (`existing_post_ids`), in one statement;
    returns the ids stored now. Idempotent as `insert_post_if_new` (ON CONFLICT DO NOTHING); the ids must be
    distinct."""
    if not posts:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # the rows as arrays: one SQL text and one prepared statement for any number
        columns: dict[str, list[Any]] = {name: [] for name in _POST_COLUMNS}
        for post, key in posts:
            for name, value in _row(post, key).items():
                if name in columns:
                    columns[name].append(value)
        return set((await session.execute(_insert_unseen_posts(), columns)).scalars())
    seen = await existing_post_ids(session, [post.post_id for post, _ in posts])
    rows = [_row(post, key) for post, key in posts if post.post_id not in seen]
    return set((await session.execute(_insert_posts(dialect), rows)).scalars()) if rows else set()


_POST_COLUMNS = ("id", "source_id", "dedup_key", "guid", "url", "title", "text", "lang", "published_at", "fetched_at",
                 "forwarded_from")
"""A new post's columns (queued_at is NULL: not published yet)."""


@functools.cache
def _insert_unseen_posts() -> Any:
    """INSERT … SELECT FROM unnest(arrays) WHERE not kept out … ON CONFLICT DO NOTHING RETURNING id (PostgreSQL)."""
    names = ", ".join(_POST_COLUMNS)
    arrays = ", ".join(f"CAST(:{name} AS {'TIMESTAMPTZ' if name.endswith('_at') else 'TEXT'}[])"
                       for name in _POST_COLUMNS)
    return sa.text(f"INSERT INTO posts ({names}) SELECT {names} FROM unnest({arrays}) AS new ({names}) "
                   "WHERE NOT EXISTS (SELECT 1 FROM filtered_posts WHERE filtered_posts.id = new.id) "
                   "ON CONFLICT (id) DO NOTHING RETURNING id")


@functools.cache
def _insert_posts(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, built once per dialect: the rows go as parameters, sent in
    pages under the drivers' parameter limits by SQLAlchemy ("insertmanyvalues"). On the table, not the ORM
    class: the ORM's bulk insert costs more than the statement."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Post.__table__
    return insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)


async def insert_new_posts(session: AsyncSession, posts: list[tuple[PostMessage, str]]) -> list[PostMessage]:
    """Stores the posts not seen before and returns them, in the given order."""
    known = await existing_post_ids(session, [p.post_id for p, _ in posts])
    new = []
    for post, key in posts:
        if post.post_id in known:
            continue
        known.add(post.post_id)  # the same id twice in one batch is stored once
        if await insert_post_if_new(session, post, key):
            new.append(post)
    return new


async def update_changed_posts(session: AsyncSession, posts: list[PostMessage]) -> list[PostMessage]:
    """Rewrites stored posts whose text changed (an edited Telegram message) and returns them, each marked
    unqueued so the outbox publishes it again: classify overwrites the event of the same `post_id`, and what
    followed from it is updated, never doubled. Posts not stored are ignored (they predate the source's
    read-back), and so are unchanged ones."""
    changed: list[PostMessage] = []
    for post in posts:
        row = await session.get(Post, post.post_id)
        if row is None or (row.text == post.text and row.title == post.title):
            continue
        row.text, row.title, row.queued_at = post.text, post.title, None
        row.fetched_at = post.fetched_at
        if post.published_at is not None:
            row.published_at = post.published_at
        changed.append(_message(row))
    return changed


def check_source_id(source_id: str) -> None:
    """Raises SourceError for an id no source may have."""
    if not SOURCE_ID.match(source_id):
        raise SourceError(
            f"source {source_id!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter"
            " or digit"
        )


async def ensure_push_source(session: AsyncSession, source_id: str, pushed_by: str | None = None, *,
                             admin: bool = False) -> Source:
    """Creates the push source `source_id` if it does not exist (a pushed post names its source); raises
    SourceError if ops disabled or removed it, so that a bridge they turned off is refused, not heard.
    The source's row stays locked until the transaction ends (`lock_sources`). The rules: `admit_push`.
    Returns the source: its language hint and patterns apply to the post."""
    check_source_id(source_id)
    await add_push_sources(session, {source_id: pushed_by})
    row = (await lock_sources(session, [source_id]))[source_id]
    if admit_push(row, pushed_by, admin=admin):
        await write_sources(session, [row])
    return row


async def add_push_sources(session: AsyncSession, owners: dict[str, str | None]) -> None:
    """Creates the push sources not stored yet, each owned by the token given (its name; None in open mode), in
    one statement; a source that exists is left as it is. The ids must be valid (`check_source_id`)."""
    if not owners:
        return
    insert = _insert(session)
    await session.execute(insert(Source).values([
        {"id": source_id, "name": source_id, "url": None, "kind": "push", "interval_seconds": 0, "enabled": True,
         "consecutive_failures": 0, "posts_seen": 0, "pushed_by": pushed_by}
        for source_id, pushed_by in sorted(owners.items())
    ]).on_conflict_do_nothing(index_elements=["id"]))


_LOCK_SOURCES = (
    sa.select(Source).where(Source.id.in_(sa.bindparam("ids", expanding=True))).order_by(Source.id)
    # FOR NO KEY UPDATE, as the UPDATEs of this transaction take: see learn_posts
    .with_for_update(key_share=True).execution_options(populate_existing=True)
)


async def lock_sources(session: AsyncSession, source_ids: list[str]) -> dict[str, Source]:
    """The sources as stored now, by id, each row locked until the transaction ends: nothing else changes them
    meanwhile, so what this transaction writes on them is computed on these. Locked in id order, the order of
    every transaction that locks several. The rows are detached from the session: what is changed on them is
    written by `write_sources` (in one statement, without the ORM's unit of work), never by a flush."""
    rows = list((await session.execute(_LOCK_SOURCES, {"ids": sorted(set(source_ids))})).scalars())
    for row in rows:
        session.expunge(row)
    return {row.id: row for row in rows}


_PUSH_COLUMNS = ("pushed_by", "posts_seen", "last_success_at", "posts_filtered", "last_filtered", "last_filtered_at",
                 "posts_learned", "gap_mean_seconds", "daily_longest_gaps", "learned_until", "last_post_at")
"""What a push changes on its source: the owner claimed, the counts, the rhythm learned."""
_WRITE_SOURCES = (
    sa.update(Source.__table__).where(Source.__table__.c.id == sa.bindparam("source_id"))
    .values({name: sa.bindparam(name, type_=sa.JSON(none_as_null=True) if name == "daily_longest_gaps"  # as read
                                else Source.__table__.c[name].type) for name in _PUSH_COLUMNS})
)


async def write_sources(session: AsyncSession, sources: list[Source]) -> None:
    """Writes what a push changed on sources read by `lock_sources` (owner, counts, rhythm), in one statement."""
    if sources:
        await session.execute(_WRITE_SOURCES, [
            {"source_id": source.id, **{name: getattr(source, name) for name in _PUSH_COLUMNS}} for source in sources
        ])


def admit_push(source: Source, pushed_by: str | None, *, admin: bool) -> bool:
    """Whether a post pushed by `pushed_by` (a token's name; None in open mode) may go under `source`, locked
    (`lock_sources`): raises SourceError if ops disabled or removed it, SourceOwnerError if it is not the
    pusher's.

    A push source belongs to the token that pushed to it first: a post under it from a token of another name,
    or without a token, raises SourceOwnerError, so that one bridge cannot speak as another, and an outlet's
    story pushed under a second name is the pusher's own doing. A source made in open mode, or before owners
    were recorded, is claimed by the first token to push to it: True then (on the row; `write_sources` writes
    it). An admin token may push under any push source (and claims none it did not create). A polled source (a
    feed) takes no pushed posts."""
    source_id = source.id
    if source.removed_at is not None or not source.enabled:
        state = "removed" if source.removed_at is not None else "disabled"
        raise SourceError(f"source {source_id} is {state}: its posts are refused until `watchfloor source enable "
                          f"{source_id}`")
    if source.kind != "push":
        raise SourceOwnerError(f"source {source_id} is a polled {source.kind} source: push under a source id of "
                               "your own")
    if admin or source.pushed_by == pushed_by:
        return False
    if source.pushed_by is None and pushed_by is not None:
        source.pushed_by = pushed_by
        return True
    raise SourceOwnerError(f"source {source_id} is pushed by token {source.pushed_by!r}: push under a source id "
                           "of your own, or with that token")


def count_pushed(source: Source, now: datetime, posts: int = 1) -> None:
    """Pushed posts count as the push source's last success (its health in `GET /api/sources`). On the row
    read by `lock_sources`, for `write_sources`."""
    source.posts_seen += posts
    source.last_success_at = now


def count_kept_out(source: Source, note: str, now: datetime, posts: int = 1) -> None:
    """Pushed posts the push source's patterns kept out count in its health, as polled ones do. On the row
    read by `lock_sources`, for `write_sources`."""
    source.posts_filtered += posts
    source.last_filtered, source.last_filtered_at = note, now


def _message(post: Post) -> PostMessage:
    return PostMessage(
        post_id=post.id, source_id=post.source_id, url=post.url, guid=post.guid, title=post.title,
        text=post.text, lang=post.lang, published_at=post.published_at, fetched_at=post.fetched_at,
        forwarded_from=post.forwarded_from,
    )


async def unqueued_posts(session: AsyncSession, older_than: datetime, limit: int = 500) -> list[PostMessage]:
    """Posts stored before `older_than` but never marked as published: the outbox to drain again."""
    rows = await session.execute(
        sa.select(Post).where(Post.queued_at.is_(None), Post.fetched_at <= older_than)
        .order_by(Post.fetched_at).limit(limit)
    )
    return [_message(p) for p in rows.scalars()]


async def queued_posts_since(session: AsyncSession, since: datetime, after_id: str = "",
                             limit: int = 500) -> list[PostMessage]:
    """Posts published since `since`, by id after `after_id` (keyset pages): what to publish again when Redis
    lost its streams."""
    rows = await session.execute(
        sa.select(Post).where(Post.queued_at >= since, Post.id > after_id).order_by(Post.id).limit(limit)
    )
    return [_message(p) for p in rows.scalars()]


async def mark_queued(session: AsyncSession, post_ids: list[str], now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    step = (len(post_ids) or 1) if dialect == "postgresql" else 500  # an array on PostgreSQL: one statement
    for start in range(0, len(post_ids), step):
        await session.execute(_mark_queued(dialect), {"ids": post_ids[start:start + step], "now": now})


@functools.cache
def _mark_queued(dialect: str) -> Any:
    posts = Post.__table__.c
    where = posts.id == _ids_param(dialect) if dialect == "postgresql" else posts.id.in_(_ids_param(dialect))
    return (sa.update(Post.__table__).where(where, posts.queued_at.is_(None))
            .values(queued_at=sa.bindparam("now", type_=posts.queued_at.type)))


# -- the watch on sources: their rhythm, and the operator alerts raised on them (services/ingest/source_watch.py) --


async def learn_posts(session: AsyncSession, source_id: str, learn: Callable[[Source], None], stored_at: datetime,
                      locked: Source | None = None) -> Source | None:
    """Locks the source's row, lets `learn` update its rhythm from the posts just stored, and records when its
    newest post was stored. Call it after the posts are inserted, in their transaction: on SQLite the write lock
    is then held, on PostgreSQL the row lock, so two stores of one source's posts learn one after the other.
    `locked`: the row as `lock_sources` locked it earlier in the transaction (then not read again, and the
    caller writes it: `write_sources`)."""
    # FOR NO KEY UPDATE, as the UPDATEs of this transaction take: FOR UPDATE would wait for the KEY SHARE lock
    # that another push's post insert holds (its foreign key), while that push waits for this one's UPDATE.
    source = locked if locked is not None else await session.get(
        Source, source_id, with_for_update={"key_share": True}, populate_existing=True)
    if source is None:
        return None
    learn(source)
    source.last_post_at = stored_at
    return source


async def fresh_source(session: AsyncSession, source_id: str) -> Source | None:
    """The source as stored now (the session's copy refreshed: an UPDATE of this transaction may have changed it)."""
    return await session.get(Source, source_id, populate_existing=True)


async def watched_sources(session: AsyncSession, after_id: str = "", limit: int = 500) -> list[Source]:
    """A page of the sources the watch decides on, by id after `after_id`: the live ones, and any other with an
    alert raised (a disabled or removed source's alert is resolved)."""
    live = sa.and_(Source.enabled.is_(True), Source.removed_at.is_(None))
    rows = await session.execute(
        sa.select(Source).where(Source.id > after_id, sa.or_(live, Source.watch_state.is_not(None)))
        .order_by(Source.id).limit(limit)
    )
    return list(rows.scalars())


async def set_watch(session: AsyncSession, source_id: str, *, read_version: int, state: str | None,
                    since: datetime | None, reason: str | None, watch_id: str | None) -> bool:
    """Writes a decision on the source's alert if no other decision was written since it was read
    (`watch_version`): one conditional UPDATE, so two ingest processes deciding at once write one. True if
    written."""
    result = await session.execute(
        sa.update(Source).where(Source.id == source_id, Source.watch_version == read_version)
        .values(watch_state=state, watch_since=since, watch_reason=reason, watch_id=watch_id,
                watch_version=read_version + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]  # CursorResult of an UPDATE


def watch_event_key(message: SourceWatchMessage) -> str:
    return ids.watch_event_id(message.watch_id, message.state)


async def add_watch_events(session: AsyncSession, messages: list[SourceWatchMessage]) -> None:
    """Stores raises and resolutions in the outbox (a repeat of one is ignored: its id is deterministic)."""
    insert = _insert(session)
    for m in messages:
        await session.execute(insert(SourceWatchEvent).values(
            id=watch_event_key(m), watch_id=m.watch_id, source_id=m.source_id, kind=m.kind, state=m.state,
            at=m.at, payload=m.model_dump(mode="json", by_alias=True), queued_at=None,
        ).on_conflict_do_nothing(index_elements=["id"]))


async def unqueued_watch_events(session: AsyncSession, older_than: datetime, limit: int = 500
                                ) -> list[SourceWatchMessage]:
    rows = await session.execute(
        sa.select(SourceWatchEvent.payload).where(SourceWatchEvent.queued_at.is_(None),
                                                  SourceWatchEvent.at <= older_than)
        .order_by(SourceWatchEvent.at).limit(limit)
    )
    return [SourceWatchMessage.model_validate(p) for p in rows.scalars()]


async def watch_events_since(session: AsyncSession, since: datetime, after_key: str = "", limit: int = 500
                             ) -> list[SourceWatchMessage]:
    rows = await session.execute(
        sa.select(SourceWatchEvent.payload).where(SourceWatchEvent.queued_at >= since,
                                                  SourceWatchEvent.id > after_key)
        .order_by(SourceWatchEvent.id).limit(limit)
    )
    return [SourceWatchMessage.model_validate(p) for p in rows.scalars()]


async def mark_watch_events_queued(session: AsyncSession, keys: list[str], now: datetime) -> None:
    for start in range(0, len(keys), 500):
        await session.execute(
            sa.update(SourceWatchEvent)
            .where(SourceWatchEvent.id.in_(keys[start:start + 500]), SourceWatchEvent.queued_at.is_(None))
            .values(queued_at=now).execution_options(synchronize_session=False)
        )
