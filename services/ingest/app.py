"""Ingest wiring: no stream in; feeds polled and `POST /ingest` in, one `PostMessage` per new post out on
`wf:posts`, one `SourceWatchMessage` per operator alert on a source raised or resolved out on `wf:source-watch`.
The only FastStream user in ingest."""

from datetime import datetime, timedelta

import redis.asyncio
from faststream.redis import RedisBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.api import build_router
from services.ingest.outbox import PostOutbox, WatchOutbox
from services.ingest.politeness import HostGate, HostSpacing
from services.ingest.poller import Poller, PollReport
from services.ingest.settings import IngestSettings
from services.ingest.source_watch import SourceWatch
from shared import streams
from shared.consumer import publish, publish_many, publishes
from shared.epoch import EpochWatch
from shared.messages import PostMessage, SourceWatchMessage


class IngestService:
    """Sources (feeds, pushed posts) in; `wf:posts` and `wf:source-watch` out. Subscribes to nothing."""

    def __init__(
        self,
        settings: IngestSettings,
        broker: RedisBroker,
        redis: redis.asyncio.Redis,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self._broker = broker
        publishes(broker, streams.POSTS, PostMessage, by=streams.INGEST)
        publishes(broker, streams.SOURCE_WATCH, SourceWatchMessage, by=streams.INGEST)
        self._redis = redis
        self.outbox = PostOutbox(sessions, self._publish_post, self._publish_posts)
        self.watch = SourceWatch(settings, sessions, WatchOutbox(sessions, self._publish_watch))
        self.epoch = EpochWatch(redis, "ingest", self._replay_since, timedelta(seconds=settings.replay_window_seconds))
        spacing = HostSpacing(settings.host_min_spacing_seconds, settings.spacing_per_host)
        gate = HostGate(redis, spacing, max_wait=settings.host_max_wait_seconds)
        self.poller = Poller(settings, sessions, self.outbox, gate, self.watch)
        self.router = build_router(settings, sessions, self.outbox, self.watch)

    async def _publish_post(self, post: PostMessage) -> None:
        await publish(self._broker, streams.POSTS, post, self.settings)

    async def _publish_posts(self, posts: list[PostMessage], ids: list[dict[str, str]]) -> None:
        await publish_many(self._broker, self._redis, streams.POSTS, posts, headers=ids)

    async def _publish_watch(self, message: SourceWatchMessage) -> None:
        await publish(self._broker, streams.SOURCE_WATCH, message, self.settings)

    async def _replay_since(self, since: datetime) -> int:
        return await self.outbox.replay_since(since) + await self.watch.outbox.replay_since(since)

    async def start(self) -> None:
        """Starts the poll loop, the source watch and the watch for a Redis that lost its data; call after
        `await broker.start()`."""
        await self.poller.start()
        self.watch.start()
        self.epoch.start()

    async def stop(self) -> None:
        """Stops the poll loop and any poll in flight."""
        await self.epoch.stop()
        await self.watch.stop()
        await self.poller.stop()
        await self.outbox.stop()

    async def poll_once(self, source_id: str) -> PollReport:
        return await self.poller.poll_once(source_id)

    async def drain(self) -> list[PollReport]:
        return await self.poller.drain()
