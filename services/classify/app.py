"""Wiring of the classify service: wf:posts in, an `events` row and wf:events out (in that order).

The gazetteer is the packaged one plus the places officers add (shared.placebook), polled every
`places_reload_seconds`: a new place applies to the next post, and the recent posts that named it
unresolved are classified again (once, by whichever worker takes the Redis claim) so their incidents get it.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import fastapi
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.classify import store
from services.classify.events import classify_events, warm_up
from services.classify.settings import ClassifySettings
from services.classify.warm import classify_gazetteer
from shared import metrics, placebook, streams
from shared.consumer import publish, publish_many, publishes, subscribe
from shared.db import session_scope
from shared.epoch import EpochWatch
from shared.gazetteer import Gazetteer
from shared.logs import message_ids
from shared.messages import EventMessage, PostMessage
from shared.outage import LoopErrors
from shared.periodic import cancel_and_wait

# How far back a newly added place re-resolves posts that named it unresolved.
RERESOLVE_WINDOW = timedelta(days=7)

logger = logging.getLogger(__name__)


class ClassifyService:
    """Consumes PostMessages from wf:posts; stores and publishes one EventMessage per post to wf:events."""

    router: fastapi.APIRouter | None = None

    def __init__(
        self, settings: ClassifySettings, broker: RedisBroker, redis: Redis, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings, self.broker, self.redis, self.sessions = settings, broker, redis, sessions
        self.base_gazetteer = classify_gazetteer(settings.gazetteer_cache_dir)
        self.gazetteer: Gazetteer = self.base_gazetteer
        self._places_version: tuple[int, int] | None = None
        self._place_keys: set[tuple[str, str]] = set()
        self._watcher: asyncio.Task | None = None
        self.epoch = EpochWatch(redis, "classify", self.replay_since,
                                timedelta(seconds=settings.replay_window_seconds))
        subscribe(
            broker, stage=streams.CLASSIFY, model=PostMessage, handle=self.on_post, settings=settings, redis=redis,
            handle_batch=self.on_posts, max_records=settings.batch_size,
        )
        publishes(broker, streams.EVENTS, EventMessage, by=streams.CLASSIFY)

    async def on_post(self, post: PostMessage) -> None:
        await self.on_posts([post])

    async def on_posts(self, posts: list[PostMessage]) -> None:
        """Classifies a batch (CPU), stores its events in one transaction, then publishes them in one round trip."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        classified = [(post, classify_events(post, now=now, gazetteer=self.gazetteer,
                                             max_chars=self.settings.classify_max_chars)) for post in posts]
        events = [event for _, post_events in classified for event in post_events]
        async with session_scope(self.sessions) as session:
            await store.upsert_events(session, events)
        # Publish after the commit: a crash in between means a redelivery and an overwrite, never a lost event.
        await publish_many(self.broker, self.redis, streams.EVENTS, events)
        per_post = (time.perf_counter() - started) / len(posts)  # the batch's time, shared by its posts
        for post, post_events in classified:
            metrics.classify_seconds.observe(per_post)
            with message_ids(post_id=post.post_id):
                self._log(post, post_events[0], per_post * 1000)

    def _log(self, post: PostMessage, event: EventMessage, elapsed_ms: float) -> None:
        logger.info(
            "classified post=%s event=%s status=%s actors=%s perp=%s tactic=%s place=%s killed=%s also=%d conf=%.2f"
            " %.0fms",
            post.post_id[:6],
            "yes" if event.is_event else "no",
            event.status or "-",
            ",".join(event.actor_codes) or "-",
            event.perpetrator or "-",
            ",".join(event.tactic_codes) or "-",
            event.place.name if event.place else "-",
            event.killed if event.killed is not None else "-",
            len(event.also),
            event.confidence,
            elapsed_ms,
        )

    async def start(self) -> None:
        """Loads the officers' places and builds the matchers now (one throw-away classification), so the first
        real post is not the slow one; then watches for new places."""
        await self.refresh_places()
        warm_up(self.gazetteer, datetime.now(UTC))
        self._watcher = asyncio.create_task(self._watch_places())
        self.epoch.start()

    async def stop(self) -> None:
        await self.epoch.stop()
        await cancel_and_wait(self._watcher)
        self._watcher = None

    async def _watch_places(self) -> None:
        errors = LoopErrors("officer places reload", logger)  # an outage: keep the gazetteer we have, say so once
        while True:
            await asyncio.sleep(self.settings.places_reload_seconds)
            try:
                await self.refresh_places()
            except Exception as exc:
                errors.failed(exc)
            else:
                errors.ok()

    async def refresh_places(self) -> None:
        """Swaps in a gazetteer with the officers' places when they changed; classifies again the recent posts
        that named a new one unresolved."""
        async with self.sessions() as session:
            version = await placebook.version(session)
            if version == self._places_version:
                return
            rows = await placebook.list_places(session)
        places = [placebook.as_gazetteer_place(r) for r in rows]
        self.gazetteer = (
            self.base_gazetteer.extended(places, f"{len(places)} officer places") if places else self.base_gazetteer
        )
        keys = {(r.key, r.country) for r in rows}
        new = keys - self._place_keys
        first = self._places_version is None
        logger.info("gazetteer places=%d officer_places=%d new=%d", len(self.gazetteer.places), len(rows),
                    0 if first else len(new))
        if new and not first:
            await self.reresolve({key for key, _country in new}, version)
        # Only once the posts were re-resolved: if that failed (Redis or the database away), the next round
        # tries again rather than taking this version as done.
        self._places_version, self._place_keys = version, keys

    async def reresolve(self, keys: set[str], version: tuple[int, int]) -> None:
        """Classifies again the posts of the last RERESOLVE_WINDOW that named one of `keys` unresolved, and
        publishes their events anew (same ids): the alert stage then places their incidents."""
        # One worker does it: the others see the claim and only swap their gazetteer. The claim names its worker,
        # which tries again after a failure (its claim still held) until the events are out.
        claim, me = f"wf:places:reresolved:{version[0]}:{version[1]}", self.settings.consumer_name
        if not await self.redis.set(claim, me, nx=True, ex=86_400):
            held = await self.redis.get(claim)
            if (held.decode() if isinstance(held, bytes) else held) != me:
                return
        now = datetime.now(UTC)
        async with self.sessions() as session:
            ids = await placebook.events_naming(session, keys, since=now - RERESOLVE_WINDOW)
            posts = await store.posts(session, ids)
        await self.classify_again(posts, now)
        logger.info("re-resolved posts=%d places=%s", len(posts), ",".join(sorted(keys)))

    async def classify_again(self, posts: list[PostMessage], now: datetime) -> None:
        """Classifies stored posts anew and publishes their events (same ids: the alert stage updates, never
        doubles). Published before they are stored: the stored row is what says a post still names a place
        unresolved, so if Redis fails first the next round finds the post again and publishes it then."""
        for post in posts:
            events = classify_events(
                post, now=now, gazetteer=self.gazetteer, max_chars=self.settings.classify_max_chars
            )
            for event in events:
                await publish(self.broker, streams.EVENTS, event, self.settings)
            async with session_scope(self.sessions) as session:
                await store.upsert_events(session, events)

    async def replay_since(self, since: datetime) -> int:
        """Publishes again the events of every post classified since `since` (Redis lost them)."""
        count, after = 0, ""
        while True:
            async with self.sessions() as session:
                ids = await store.post_ids_classified_since(session, since, after)
                posts = await store.posts(session, ids)
            if not ids:
                return count
            await self.classify_again(posts, datetime.now(UTC))
            count, after = count + len(posts), ids[-1]
