"""The watch on sources: a source gone silent or failing for hours raises an operator alert, once, and resolves it
when the source speaks again.

    posts stored (poll, push) ─▶ learn its rhythm (cadence.learn) ──┐
    poll recorded (failing_since set on the first failure, cleared)  ├─▶ decide (cadence.watch, pure)
    every source_watch_interval_seconds: `sweep`, in pages ─────────┘      │ conditional UPDATE on watch_version
                                                                           ▼ (one decision per source, any number
                         outbox row (source_watch_events) in the same transaction   of ingest processes)
                                        └─▶ after the commit: wf:source-watch, marked queued; requeued if not

A post or a successful poll resolves at once, on its own path; a failing source is raised by the poll that
finds it failing long enough (or the sweep), a silence by the sweep (an uneventful poll of a quiet source does not
look, so a 304 costs what it did). A disabled or removed source's alert is resolved by the next sweep.
"""

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import cadence, store
from services.ingest.outbox import WatchOutbox
from services.ingest.settings import IngestSettings
from shared import ids
from shared.db import session_scope
from shared.messages import PostMessage, SourceWatchMessage
from shared.models import Source
from shared.outage import LoopErrors
from shared.periodic import Periodic

logger = logging.getLogger(__name__)
PAGE = 500


def policy_of(settings: IngestSettings) -> cadence.WatchPolicy:
    return cadence.WatchPolicy(
        min_posts=settings.silent_min_posts, silent_factor=settings.silent_factor,
        silent_floor=timedelta(seconds=settings.silent_floor_seconds),
        failing_after=timedelta(seconds=settings.failing_after_seconds),
        history_days=settings.silent_history_days,
    )


def cadence_of(source: Source) -> cadence.Cadence:
    return cadence.of_row(source.posts_learned or 0, source.gap_mean_seconds, source.daily_longest_gaps,
                          source.learned_until)


def _message(source: Source, watch_id: str, kind: str, state: str, since: datetime, at: datetime, reason: str,
             resolved_reason: str | None = None) -> SourceWatchMessage:
    return SourceWatchMessage(
        watch_id=watch_id, source_id=source.id, source_name=(source.name or source.id)[:200],
        source_kind=source.kind, source_url=source.url, kind=kind, state=state, since=since, at=at,  # type: ignore[arg-type]
        reason=reason[:2000], resolved_reason=resolved_reason, last_post_at=source.last_post_at,
    )


async def decide(session: AsyncSession, source: Source, now: datetime, policy: cadence.WatchPolicy
                 ) -> list[SourceWatchMessage]:
    """Decides on one source as read and writes the decision with its outbox rows, unless another decision was
    written since it was read; returns what to publish after the commit."""
    change = cadence.transition(source.watch_state, cadence.watch(source, cadence_of(source), now, policy))
    if change is None:
        return []
    out: list[SourceWatchMessage] = []
    if change.resolve is not None:
        since = source.watch_since or now
        out.append(_message(source, source.watch_id or ids.watch_id(source.id, change.resolve, since.isoformat()),
                            change.resolve, "resolved", since, now, source.watch_reason or "", change.resolved_reason))
    raised = change.raise_
    watch_id = ids.watch_id(source.id, raised.state, now.isoformat()) if raised and raised.state else None
    if raised is not None and raised.state is not None and watch_id is not None:
        out.append(_message(source, watch_id, raised.state, "raised", now, now, raised.reason))
    written = await store.set_watch(
        session, source.id, read_version=source.watch_version or 0, state=raised.state if raised else None,
        since=now if raised else None, reason=raised.reason if raised else None, watch_id=watch_id)
    if not written:
        return []
    await store.add_watch_events(session, out)
    for m in out:
        logger.log(logging.WARNING if m.state == "raised" else logging.INFO, "source %s %s source=%s reason=%r",
                   m.kind, m.state, m.source_id, m.reason if m.state == "raised" else m.resolved_reason)
    return out


class SourceWatch(Periodic):
    """The sweep, and the decision the poll and push paths make after they store."""

    name = "source-watch"

    def __init__(self, settings: IngestSettings, sessions: async_sessionmaker[AsyncSession],
                 outbox: WatchOutbox) -> None:
        super().__init__(settings.source_watch_interval_seconds)
        self.settings, self.sessions, self.outbox = settings, sessions, outbox
        self.policy = policy_of(settings)
        self._errors = LoopErrors("source watch", logger)

    async def after_activity(self, session: AsyncSession, source_id: str, now: datetime,
                             new_posts: list[PostMessage], locked: Source | None = None) -> list[SourceWatchMessage]:
        """In the transaction that stored a poll's or a push's outcome: learns the new posts, then decides (a
        post resolves a silence, a success a failure, at once). `locked`: the source's row, if the transaction
        locked it already (`store.lock_sources`)."""
        def learn(row: Source) -> None:
            learned = cadence.learn(cadence_of(row), [p.published_at for p in new_posts], now,
                                    self.policy.history_days)
            row.posts_learned, row.gap_mean_seconds = learned.posts, learned.mean_gap_s
            row.daily_longest_gaps = [list(d) for d in learned.daily_longest]
            row.learned_until = learned.learned_until

        if new_posts:
            source = await store.learn_posts(session, source_id, learn, now, locked)
            if locked is None:
                await session.flush()
        else:
            source = locked if locked is not None else await store.fresh_source(session, source_id)
        if source is None:
            return []
        return await decide(session, source, now, self.policy)

    async def publish(self, messages: list[SourceWatchMessage], now: datetime) -> None:
        if messages:
            await self.outbox.publish(messages, now)

    async def sweep(self, now: datetime) -> list[SourceWatchMessage]:
        """Decides on every watched source, a page a transaction (linear in sources, bounded memory), publishes
        what changed, then what an earlier publish left behind. Returns what this sweep decided."""
        decided: list[SourceWatchMessage] = []
        after = ""
        while True:
            async with session_scope(self.sessions) as session:
                page = await store.watched_sources(session, after, PAGE)
                changed = [m for source in page for m in await decide(session, source, now, self.policy)]
            await self.publish(changed, now)
            decided += changed
            if len(page) < PAGE:
                break
            after = page[-1].id
        await self.outbox.requeue(now, timedelta(seconds=self.settings.requeue_after_seconds))
        return decided

    async def round(self) -> None:
        await self.sweep(datetime.now(UTC))

    def failed(self, exc: Exception) -> None:
        self._errors.failed(exc)

    def succeeded(self) -> None:
        self._errors.ok()
