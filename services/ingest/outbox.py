"""Posts go to `wf:posts` through an outbox: stored first, then published, then marked `queued_at`.

A crash or a Redis outage between the commit and the publish leaves the post unmarked, and `requeue`
publishes it again on a later tick: a stored post always reaches classify (at least once; classify is
idempotent on `post_id`).
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from shared.db import session_scope
from shared.logs import message_ids
from shared.messages import PostMessage

logger = logging.getLogger(__name__)

Publish = Callable[[PostMessage], Awaitable[None]]


class PostOutbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish) -> None:
        self._sessions = sessions
        self._publish = publish
        self._failing: str | None = None  # last publish failure, logged once until it changes

    async def publish(self, posts: list[PostMessage], now: datetime) -> int:
        """Publishes stored posts and marks them queued; returns how many went out. A failure is logged once
        and leaves the rest for `requeue`."""
        sent: list[str] = []
        try:
            for post in posts:
                with message_ids(post_id=post.post_id):  # on this line and on the entry's headers
                    await self._publish(post)
                    logger.info("published post=%s source=%s stream=wf:posts", post.post_id[:6], post.source_id,
                                extra={"source_id": post.source_id})
                sent.append(post.post_id)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if reason != self._failing:
                logger.warning("publish failed stream=wf:posts pending=%d reason=%r (will retry)",
                               len(posts) - len(sent), reason)
            self._failing = reason
        else:
            if self._failing is not None:
                logger.info("publish recovered stream=wf:posts")
            self._failing = None
        if sent:
            async with session_scope(self._sessions) as session:
                await store.mark_queued(session, sent, now)
        return len(sent)

    async def requeue(self, now: datetime, after: timedelta) -> int:
        """Publishes posts stored more than `after` ago and never marked queued; returns how many."""
        async with session_scope(self._sessions) as session:
            posts = await store.unqueued_posts(session, now - after)
        if not posts:
            return 0
        count = await self.publish(posts, now)
        if count:
            logger.info("requeued stream=wf:posts posts=%d", count)
        return count

    async def replay_since(self, since: datetime) -> int:
        """Publishes again every post published since `since` (Redis lost them; classify ignores a repeat)."""
        count, after = 0, ""
        while True:
            async with session_scope(self._sessions) as session:
                page = await store.queued_posts_since(session, since, after)
            if not page:
                return count
            for post in page:
                await self._publish(post)
            count, after = count + len(page), page[-1].post_id
