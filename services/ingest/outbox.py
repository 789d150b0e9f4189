"""What ingest publishes goes through an outbox: stored first, then published, then marked `queued_at`.

    posts                      -> wf:posts          (PostOutbox)
    operator alerts on sources -> wf:source-watch   (WatchOutbox: a silent or failing source raised or resolved)

A crash or a Redis outage between the commit and the publish leaves the row unmarked, and `requeue` publishes it
again on a later tick: what is stored always reaches its consumer (at least once; consumers are idempotent on the
message's id).

The mark may wait (`publish(..., mark_within=s)`): pushed posts are published a group at a time, many groups a
second, and a transaction of its own for each group's mark cost as much as storing the group. Their marks go
into the next group's transaction (`take_marks`, `write_marks`, `marked`), or, when none comes within `s`, into
one of their own. A crash before the mark is written is a crash between the publish and the mark: the rows are
published again (at least once, as above). This process never requeues a row whose mark waits.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from shared import streams
from shared.db import session_scope
from shared.logs import message_ids
from shared.messages import PostMessage, SourceWatchMessage
from shared.outage import LoopErrors
from shared.periodic import cancel_and_wait

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Publish = Callable[[M], Awaitable[None]]
PublishMany = Callable[[list[M], list[dict[str, str]]], Awaitable[None]]
"""Publishes messages in one round trip, in order, each with its ids as headers; all or nothing may fail."""


class OutboxRows(Protocol[M]):
    """The table an outbox drains: its rows as messages, and their `queued_at` mark."""

    def key(self, message: M) -> str: ...
    def ids(self, message: M) -> dict[str, str]: ...
    async def unqueued(self, session: AsyncSession, older_than: datetime) -> list[M]: ...
    async def queued_since(self, session: AsyncSession, since: datetime, after_key: str) -> list[M]: ...
    async def mark_queued(self, session: AsyncSession, keys: list[str], now: datetime) -> None: ...


@dataclass
class Marks:
    """Rows published whose `queued_at` mark waits for a transaction: their keys, when they were published, and
    (time.monotonic) by when a transaction of their own writes it if no other has."""

    keys: list[str]
    at: datetime
    due: float


class Outbox(Generic[M]):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish[M], rows: OutboxRows[M],
                 stream: str, publish_many: PublishMany[M] | None = None) -> None:
        self._sessions = sessions
        self._publish = publish
        self._publish_many = publish_many
        self._rows = rows
        self.stream = stream
        self._failing: str | None = None  # last publish failure, logged once until it changes
        self._waiting: list[Marks] = []  # published, mark not written yet, in the order published
        self._writing: set[str] = set()  # keys whose mark a transaction not yet committed writes
        self._late: asyncio.Task[None] | None = None  # writes the marks no other transaction took in time

    async def publish(self, messages: list[M], now: datetime, *, mark_within: float | None = None) -> int:
        """Publishes stored rows and marks them queued; returns how many went out. A failure is logged once
        and leaves the rest for `requeue`. With `mark_within`, the mark waits (up to that many seconds) for a
        transaction of the caller's: see the module's docstring."""
        sent: list[str] = []
        try:
            if self._publish_many is not None and len(messages) > 1:  # one round trip for a group
                every_ids = [self._rows.ids(message) for message in messages]
                await self._publish_many(messages, every_ids)
                for message, ids in zip(messages, every_ids, strict=True):
                    logger.info("published %s stream=%s", _short(ids), self.stream, extra=ids)
                    sent.append(self._rows.key(message))
            for message in messages if not sent else ():
                ids = self._rows.ids(message)
                with message_ids(**ids):  # on this line and on the entry's headers
                    await self._publish(message)
                    logger.info("published %s stream=%s", _short(ids), self.stream)
                sent.append(self._rows.key(message))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if reason != self._failing:
                logger.warning("publish failed stream=%s pending=%d reason=%r (will retry)", self.stream,
                               len(messages) - len(sent), reason)
            self._failing = reason
        else:
            if self._failing is not None:
                logger.info("publish recovered stream=%s", self.stream)
            self._failing = None
        if sent and mark_within is None:
            async with session_scope(self._sessions) as session:
                await self._rows.mark_queued(session, sent, now)
        elif sent:
            self._waiting.append(Marks(sent, now, time.monotonic() + mark_within))
            if self._late is None or self._late.done():
                self._late = asyncio.get_running_loop().create_task(self._write_late())
        return len(sent)

    def take_marks(self) -> list[Marks]:
        """The marks waiting, for the caller's transaction to write (`write_marks`); then `marked` once it
        committed, or `put_back` if it failed."""
        taken, self._waiting = self._waiting, []
        for marks in taken:
            self._writing.update(marks.keys)
        return taken

    async def write_marks(self, session: AsyncSession, taken: list[Marks]) -> None:
        """Marks the rows taken, in one statement: published at the latest of their times (a replay since a
        time then finds them all)."""
        if taken:
            await self._rows.mark_queued(session, [k for marks in taken for k in marks.keys],
                                         max(marks.at for marks in taken))

    def marked(self, taken: list[Marks]) -> None:
        for marks in taken:
            self._writing.difference_update(marks.keys)

    def put_back(self, taken: list[Marks]) -> None:
        self.marked(taken)
        self._waiting[:0] = taken

    async def write_waiting_marks(self) -> None:
        """Writes every mark still waiting, in a transaction of its own (when none took them in time, and on
        stop)."""
        taken = self.take_marks()
        if not taken:
            return
        try:
            async with session_scope(self._sessions) as session:
                await self.write_marks(session, taken)
        except BaseException:
            self.put_back(taken)
            raise
        self.marked(taken)

    async def _write_late(self) -> None:
        errors = LoopErrors(f"outbox marks {self.stream}", logger)  # an outage logged when it starts and ends
        while self._waiting:
            wait = self._waiting[0].due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self.write_waiting_marks()
            except Exception as exc:  # the database is away: the rows stay unmarked until it is back
                errors.failed(exc)
                await asyncio.sleep(1.0)
            else:
                errors.ok()

    async def stop(self) -> None:
        """Writes the marks still waiting (a stop is not a crash: nothing is published twice for it)."""
        await cancel_and_wait(self._late)
        self._late = None
        try:
            await self.write_waiting_marks()
        except Exception as exc:
            logger.warning("marking published rows failed stream=%s reason=%r (requeued after a restart)",
                           self.stream, f"{type(exc).__name__}: {exc}"[:300])

    async def requeue(self, now: datetime, after: timedelta) -> int:
        """Publishes rows stored more than `after` ago and never marked queued; returns how many."""
        async with session_scope(self._sessions) as session:
            messages = await self._rows.unqueued(session, now - after)
        published = self._writing.union(*(marks.keys for marks in self._waiting))  # their mark comes
        messages = [m for m in messages if self._rows.key(m) not in published]
        if not messages:
            return 0
        count = await self.publish(messages, now)
        if count:
            logger.info("requeued stream=%s messages=%d", self.stream, count)
        return count

    async def replay_since(self, since: datetime) -> int:
        """Publishes again every row published since `since` (Redis lost them; consumers ignore a repeat)."""
        count, after = 0, ""
        while True:
            async with session_scope(self._sessions) as session:
                page = await self._rows.queued_since(session, since, after)
            if not page:
                return count
            for message in page:
                await self._publish(message)
            count, after = count + len(page), self._rows.key(page[-1])


def _short(ids: dict[str, str]) -> str:
    """`post=1a2b3c source=niger-wire`: ids cut to six characters, as every log line shows them."""
    return " ".join(f"{k.removesuffix('_id')}={v if k == 'source_id' else v[:6]}" for k, v in ids.items())


class _PostRows:
    def key(self, message: PostMessage) -> str:
        return message.post_id

    def ids(self, message: PostMessage) -> dict[str, str]:
        return {"post_id": message.post_id, "source_id": message.source_id}

    async def unqueued(self, session: AsyncSession, older_than: datetime) -> list[PostMessage]:
        return await store.unqueued_posts(session, older_than)

    async def queued_since(self, session: AsyncSession, since: datetime, after_key: str) -> list[PostMessage]:
        return await store.queued_posts_since(session, since, after_key)

    async def mark_queued(self, session: AsyncSession, keys: list[str], now: datetime) -> None:
        await store.mark_queued(session, keys, now)


class _WatchRows:
    def key(self, message: SourceWatchMessage) -> str:
        return store.watch_event_key(message)

    def ids(self, message: SourceWatchMessage) -> dict[str, str]:
        return {"watch_id": message.watch_id, "source_id": message.source_id}

    async def unqueued(self, session: AsyncSession, older_than: datetime) -> list[SourceWatchMessage]:
        return await store.unqueued_watch_events(session, older_than)

    async def queued_since(self, session: AsyncSession, since: datetime, after_key: str
                           ) -> list[SourceWatchMessage]:
        return await store.watch_events_since(session, since, after_key)

    async def mark_queued(self, session: AsyncSession, keys: list[str], now: datetime) -> None:
        await store.mark_watch_events_queued(session, keys, now)


class PostOutbox(Outbox[PostMessage]):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish[PostMessage],
                 publish_many: PublishMany[PostMessage] | None = None) -> None:
        super().__init__(sessions, publish, _PostRows(), streams.POSTS, publish_many)


class WatchOutbox(Outbox[SourceWatchMessage]):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish[SourceWatchMessage]) -> None:
        super().__init__(sessions, publish, _WatchRows(), streams.SOURCE_WATCH)
