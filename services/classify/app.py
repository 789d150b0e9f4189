"""Wiring of the classify service: wf:posts in, an `events` row and wf:events out (in that order)."""

import logging
import time
from datetime import UTC, datetime

import fastapi
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.classify import store
from services.classify.classify import classify_post
from services.classify.settings import ClassifySettings
from shared import streams
from shared.consumer import publish, subscribe
from shared.db import session_scope
from shared.gazetteer import load_gazetteer
from shared.messages import PostMessage

logger = logging.getLogger(__name__)


class ClassifyService:
    """Consumes PostMessages from wf:posts; stores and publishes one EventMessage per post to wf:events."""

    router: fastapi.APIRouter | None = None

    def __init__(
        self, settings: ClassifySettings, broker: RedisBroker, redis: Redis, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings, self.broker, self.redis, self.sessions = settings, broker, redis, sessions
        self.gazetteer = load_gazetteer(settings.gazetteer_cache_dir)
        subscribe(
            broker, stage=streams.CLASSIFY, model=PostMessage, handle=self.on_post, settings=settings, redis=redis
        )

    async def on_post(self, post: PostMessage) -> None:
        started = time.perf_counter()
        event = classify_post(
            post, now=datetime.now(UTC), gazetteer=self.gazetteer, max_chars=self.settings.classify_max_chars
        )
        async with session_scope(self.sessions) as session:
            await store.upsert_event(session, event)
        # Publish after the commit: a crash in between means a redelivery and an overwrite, never a lost event.
        await publish(self.broker, streams.EVENTS, event, self.settings)
        logger.info(
            "classified post=%s event=%s actors=%s perp=%s tactic=%s place=%s killed=%s conf=%.2f %.0fms",
            post.post_id[:6],
            "yes" if event.is_event else "no",
            ",".join(event.actor_codes) or "-",
            event.perpetrator or "-",
            ",".join(event.tactic_codes) or "-",
            event.place.name if event.place else "-",
            event.killed if event.killed is not None else "-",
            event.confidence,
            (time.perf_counter() - started) * 1000,
        )

    async def start(self) -> None:
        """Builds the matchers now (one throw-away classification), so the first real post is not the slow one;
        nothing else runs in the background beyond the broker's subscribers."""
        now = datetime.now(UTC)
        warm_up = PostMessage(post_id="0" * 64, source_id="warm-up", title="Attack near Niamey", fetched_at=now)
        classify_post(warm_up, now=now, gazetteer=self.gazetteer)

    async def stop(self) -> None:
        """Nothing to stop: the broker owns the subscribers."""
