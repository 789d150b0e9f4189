"""Pushed posts stored in groups (issue 11): the posts of concurrent `POST /ingest` requests, and the items of
one array, share one transaction, and each request is answered after that transaction commits.

    request ──▶ the open group ──(GROUP_WAIT_S, and the previous group done)──▶ one transaction ──▶ publish ──▶ answers
                                          └─ the transaction fails ──▶ each post again, in a transaction of its own

One transaction a group, not one per post: a push source's `posts_seen` and rhythm are updated once per group
(a row every POST used to lock in turn), and the posts are inserted in one statement. A post that fails its
group (a constraint, a bug) fails alone: the group is retried post by post, so the others are still stored.

What a group costs the database, in round trips: its sources read and locked in one statement (created first
only when this process has not seen them stored), the ids seen before in one, the posts inserted in one, each
source with new posts updated in one (counts and rhythm together), and the previous groups' outbox marks in one
(`Outbox.take_marks`): no transaction of its own for them while groups keep coming.
"""

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from fastapi import HTTPException, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.filters import PatternError, SourceFilter, kept_out_note, screen, source_filter
from services.ingest.normalise import dedup_key, to_post
from services.ingest.outbox import PostOutbox
from services.ingest.parse import Entry
from services.ingest.settings import IngestSettings
from services.ingest.source_watch import SourceWatch
from shared import metrics
from shared.db import session_scope
from shared.language import language
from shared.messages import PostMessage, SourceWatchMessage
from shared.models import Source

logger = logging.getLogger(__name__)

GROUP_WAIT_S = 0.003
"""How long the first post of a group waits for others before its transaction starts. While a group commits, the
next one keeps filling, so under load groups grow with the commit time, not with this wait."""
MAX_GROUP = 500
"""Posts in one transaction at most (the array limit of `POST /ingest` too)."""
MARK_WITHIN_S = 0.25
"""How long a group's outbox marks wait for the next group's transaction before taking one of their own."""


class Accepted(BaseModel):
    post_id: str
    duplicate: bool
    kept_out: str | None = None
    """Why the source's patterns kept the post out ("by block pattern 'football'"); absent if published."""


@dataclass(frozen=True)
class Push:
    """One pushed post and who pushed it: `pushed_by` is the token's name (None in open mode)."""

    post: "PushedPostLike"
    pushed_by: str | None
    admin: bool


class PushedPostLike(Protocol):
    """The fields of `api.PushedPost` this module reads (api imports this module, not the other way)."""

    source: str
    title: str
    text: str
    url: str | None
    guid: str | None
    published_at: datetime | None
    lang: str | None


Outcome = Accepted | Exception
"""A post's answer: stored (or a duplicate, or kept out), or the error to answer it with (HTTPException 403/409,
or what the database raised: the app's handlers turn an outage into 503)."""


class PushGroups:
    """Gathers pushed posts into groups and stores each group in one transaction, one group at a time."""

    def __init__(self, settings: IngestSettings, sessions: async_sessionmaker[AsyncSession], outbox: PostOutbox,
                 watch: SourceWatch, *, wait_s: float = GROUP_WAIT_S, max_group: int = MAX_GROUP) -> None:
        self._settings, self._sessions, self._outbox, self._watch = settings, sessions, outbox, watch
        self._wait_s, self._max_group = wait_s, max_group
        self._open: list[tuple[Push, asyncio.Future[Outcome]]] | None = None
        self._turn: asyncio.Lock | None = None  # one group stores at a time; made in the running loop
        self._tasks: set[asyncio.Task[None]] = set()
        self._stored: set[str] = set()  # sources this process saw stored (a source is never deleted, only marked)

    async def store(self, pushes: list[Push]) -> list[Outcome]:
        """Stores the posts (with whatever else arrives meanwhile); returns each one's outcome, in order, once
        its transaction has committed and the new posts were handed to the outbox."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome]] = []
        for push in pushes:
            if self._open is None or len(self._open) >= self._max_group:
                self._open = []
                task = loop.create_task(self._flush(self._open))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            future: asyncio.Future[Outcome] = loop.create_future()
            self._open.append((push, future))
            futures.append(future)
        # shield: a client gone mid-wait must not cancel a future the group's task will set
        return [await asyncio.shield(f) for f in futures]

    async def _flush(self, group: list[tuple[Push, "asyncio.Future[Outcome]"]]) -> None:
        try:
            await asyncio.sleep(self._wait_s)
            if self._turn is None:
                self._turn = asyncio.Lock()
            async with self._turn:
                if self._open is group:  # closed now: later posts start the next group
                    self._open = None
                outcomes = await self._store_group([push for push, _ in group])
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
        except BaseException as exc:  # never leave a request waiting for ever
            for _, future in group:
                if not future.done():
                    future.set_result(exc if isinstance(exc, Exception) else RuntimeError("ingest stopping"))
            if not isinstance(exc, Exception):
                raise

    async def _store_group(self, pushes: list[Push]) -> list[Outcome]:
        now = datetime.now(UTC)
        try:
            outcomes, new, watched = await self._commit(pushes, now)
        except Exception as exc:
            if len(pushes) == 1:
                return [exc]
            logger.warning("push group failed posts=%d reason=%r; storing them one by one", len(pushes),
                           f"{type(exc).__name__}: {exc}"[:300])
            outcomes, new, watched = [], [], []
            for push in pushes:
                try:
                    one, one_new, one_watched = await self._commit([push], now)
                except Exception as one_exc:
                    one, one_new, one_watched = [one_exc], [], []
                outcomes += one
                new += one_new
                watched += one_watched
        kept_out = sum(1 for o in outcomes if isinstance(o, Accepted) and o.kept_out)
        metrics.count_posts("push", new=len(new), kept_out=kept_out)
        # After the commit; if Redis is down the outbox publishes them on a later tick.
        if new:
            await self._outbox.publish(new, now, mark_within=MARK_WITHIN_S)
        await self._watch.publish(watched, now)
        return outcomes

    async def _commit(self, pushes: list[Push], now: datetime
                      ) -> tuple[list[Outcome], list[PostMessage], list[SourceWatchMessage]]:
        marks = self._outbox.take_marks()
        try:
            async with session_scope(self._sessions) as session:
                staged = await self._stage(session, pushes, now)
                await self._outbox.write_marks(session, marks)
        except BaseException:
            self._outbox.put_back(marks)
            raise
        self._outbox.marked(marks)
        return staged

    async def _sources(self, session: AsyncSession, pushes: list[Push]) -> dict[str, Source]:
        """The group's sources, read and locked (`store.lock_sources`); those not stored yet are created first,
        each owned by the first pusher in the group."""
        owners: dict[str, str | None] = {}
        for push in pushes:
            owners.setdefault(push.post.source, push.pushed_by)
        valid = [source_id for source_id in owners if store.SOURCE_ID.match(source_id)]
        if not self._stored.issuperset(valid):
            await store.add_push_sources(session, {s: owners[s] for s in valid if s not in self._stored})
        rows = await store.lock_sources(session, valid)
        if len(rows) < len(valid):  # seen stored here, but by a transaction that rolled back
            await store.add_push_sources(session, {s: owners[s] for s in valid if s not in rows})
            rows = await store.lock_sources(session, valid)
        self._stored.update(rows)
        return rows

    async def _stage(self, session: AsyncSession, pushes: list[Push], now: datetime
                     ) -> tuple[list[Outcome], list[PostMessage], list[SourceWatchMessage]]:
        """The group's writes, in its transaction: each post's source checked (once per source and pusher), new
        posts inserted in one statement, each source's counters and rhythm updated once."""
        outcomes: list[Outcome | None] = [None] * len(pushes)
        rows = await self._sources(session, pushes)
        changed: set[str] = set()  # sources whose row this group changes: written once, at the end
        sources: dict[tuple[str, str | None, bool], Source | HTTPException] = {}
        filters: dict[str, SourceFilter | HTTPException | None] = {}
        prepared: list[tuple[int, PostMessage, str, SourceFilter | None]] = []
        for i, push in enumerate(pushes):
            post = push.post
            who = (post.source, push.pushed_by, push.admin)
            if who not in sources:
                try:
                    store.check_source_id(post.source)
                    if store.admit_push(rows[post.source], push.pushed_by, admin=push.admin):
                        changed.add(post.source)
                    sources[who] = rows[post.source]
                except store.SourceOwnerError as exc:
                    sources[who] = HTTPException(status.HTTP_403_FORBIDDEN, exc.reason)
                except store.SourceError as exc:
                    sources[who] = HTTPException(status.HTTP_409_CONFLICT, exc.reason)
            source = sources[who]
            if isinstance(source, HTTPException):
                outcomes[i] = source
                continue
            if post.source not in filters:
                try:
                    filters[post.source] = source_filter(source.keep_patterns, source.block_patterns)
                except PatternError as exc:  # stored by hand, or refused by a newer RE2: `source edit` fixes it
                    filters[post.source] = HTTPException(status.HTTP_409_CONFLICT,
                                                         f"source {post.source}: {exc.reason}")
            patterns = filters[post.source]
            if isinstance(patterns, HTTPException):
                outcomes[i] = patterns
                continue
            entry = Entry(
                guid=post.guid, link=post.url, title=post.title, text=post.text,
                published_at=post.published_at.astimezone(UTC) if post.published_at else None,
                lang=language(post.lang),
            )
            key = dedup_key(entry)
            prepared.append((i, to_post(entry, post.source, now, key, lang_hint=source.lang), key, patterns))

        # a post seen before (published or kept out) is a duplicate, whatever the patterns are now: looked up
        # first when patterns decide; without patterns, insert_posts leaves out what was seen (one statement)
        screened_ids = [m.post_id for _, m, _, patterns in prepared if patterns is not None]
        seen = await store.existing_post_ids(session, screened_ids) if screened_ids else set()
        to_insert: list[tuple[int, PostMessage, str]] = []
        to_keep_out: list[tuple[int, PostMessage, str, str]] = []
        for i, message, key, patterns in prepared:
            if message.post_id in seen:  # stored before, or earlier in this group
                outcomes[i] = Accepted(post_id=message.post_id, duplicate=True)
                continue
            seen.add(message.post_id)
            screened = screen([(message, key)], patterns, self._settings.filter_max_chars)
            if screened.kept:
                to_insert.append((i, message, key))
            else:
                to_keep_out.append((i, *screened.kept_out[0]))

        stored = await store.insert_posts(session, [(m, k) for _, m, k in to_insert])
        new: list[PostMessage] = []
        new_by_source: dict[str, list[PostMessage]] = defaultdict(list)
        for i, message, _ in to_insert:
            fresh = message.post_id in stored  # not stored meanwhile by another process
            outcomes[i] = Accepted(post_id=message.post_id, duplicate=not fresh)
            if fresh:
                new.append(message)
                new_by_source[message.source_id].append(message)
        kept_by_source: dict[str, list[str]] = defaultdict(list)
        for i, message, key, reason in to_keep_out:
            recorded = await store.insert_kept_out(session, [(message, key, reason)], now)
            outcomes[i] = Accepted(post_id=message.post_id, duplicate=not recorded,
                                   kept_out=reason if recorded else None)
            if recorded:
                kept_by_source[message.source_id].append(reason)

        watched: list[SourceWatchMessage] = []
        for source_id in sorted(kept_by_source):
            reasons = kept_by_source[source_id]
            store.count_kept_out(rows[source_id], kept_out_note(reasons), now, len(reasons))
            logger.info("kept out source=%s posts=%d %s", source_id, len(reasons), kept_out_note(reasons))
        for source_id in sorted(new_by_source):
            store.count_pushed(rows[source_id], now, len(new_by_source[source_id]))
            watched += await self._watch.after_activity(session, source_id, now, new_by_source[source_id],
                                                        locked=rows[source_id])
        changed.update(kept_by_source, new_by_source)
        await store.write_sources(session, [rows[source_id] for source_id in sorted(changed)])
        assert all(o is not None for o in outcomes)
        return outcomes, new, watched  # type: ignore[return-value]  # every slot set above
