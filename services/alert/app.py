"""Wiring of the alert side: what comes in, what goes out, in what order.

    wf:events (stage alert)   ─▶ AlertPipeline.on_events ─▶ incidents, alerts (SQL) ─▶ wf:alerts
    clock (sweep_interval_seconds)  ─▶ Sweeper.sweep          ─▶ re-pages, ended silences, resolutions ─▶ wf:alerts
    wf:alerts (stage deliver) ─▶ Dispatcher.on_alert    ─▶ notifications (SQL) ─▶ Dispatcher loop ─▶ webhooks
    wf:alerts (XREAD $)       ─▶ GET /api/alerts/stream ─▶ console
    wf:source-watch (stage source-alerts) ─▶ SourceAlerts.on_watch ─▶ source_alerts, notifications (SQL) ─▶ webhooks

`AlertService` is the first two lines (start as many as you like: they share the consumer groups, and the
pipeline takes a lock per place); `DeliverService` the third and the last: the deliver stage and the webhook
and email sender. `watchfloor run alert` runs both in one process; `run alert --no-deliver` and `run deliver`
run them apart, so that evaluating and sending each have a core (docker-compose.yml). `AlertApi` is the
console and API alone.
"""

import asyncio
from datetime import timedelta

from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert.api import build_router
from services.alert.copies import CopyPolicy
from services.alert.dispatch import Dispatcher
from services.alert.pipeline import AlertPipeline, Rulebook, cluster_policy
from services.alert.settings import AlertSettings
from services.alert.severity import default_policy
from services.alert.source_alerts import SourceAlerts
from services.alert.sweeps import Sweeper
from shared import heap, streams
from shared.consumer import publish_many, publishes, subscribe
from shared.gazetteer import load_gazetteer
from shared.messages import AlertMessage, EventMessage, SourceWatchMessage


def decode_entry(raw: bytes) -> bytes:
    """The JSON body of a wf:alerts entry in FastStream's wire format (plain JSON passes through)."""
    body, _headers = BinaryMessageFormatV1.parse(raw)
    return body


class StreamOutbox:
    """Puts alert versions on wf:alerts and remembers, in a Redis hash beside the stream, the last version
    published per alert (so a version committed but not published is found and sent later)."""

    PUBLISHED = streams.ALERTS_PUBLISHED

    def __init__(self, broker: RedisBroker, redis: Redis, settings: AlertSettings) -> None:
        self.broker, self.redis, self.settings = broker, redis, settings

    async def publish(self, messages: list[AlertMessage], headers: list[dict[str, str]] | None = None) -> None:
        """The versions on wf:alerts, then their numbers in the hash: a crash in between republishes them (the
        deliver stage owes each version once), never loses them."""
        if not messages:
            return
        await publish_many(self.broker, self.redis, streams.ALERTS, messages, headers)
        await self.redis.hset(self.PUBLISHED, mapping={m.alert_id: str(m.version) for m in messages})

    async def published_versions(self, alert_ids: list[str]) -> dict[str, int]:
        if not alert_ids:
            return {}
        values = await self.redis.hmget(self.PUBLISHED, alert_ids)
        return {alert_id: int(v) if v else 0 for alert_id, v in zip(alert_ids, values, strict=True)}


class AlertService:
    """wf:events in, wf:alerts out (the alert stage and the sweeper), and the console's routes."""

    def __init__(self, settings: AlertSettings, broker: RedisBroker, redis: Redis,
                 sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings, self.sessions = settings, sessions
        self._stopping = asyncio.Event()

        outbox = StreamOutbox(broker, redis, settings)
        self.pipeline = AlertPipeline(
            sessions, outbox,
            cluster_policy(settings.incident_radius_km, settings.incident_window_seconds),
            Rulebook(settings.rules_reload_seconds), official_sources=frozenset(settings.official_sources),
            max_event_age=timedelta(seconds=settings.max_event_age_seconds),
            copy_policy=CopyPolicy(threshold=settings.copy_similarity, max_chars=settings.copy_max_chars),
        )
        self.sweeper = Sweeper(settings, sessions, outbox)

        async def on_event(event: EventMessage) -> None:
            await self.pipeline.on_event(event)

        async def on_events(events: list[EventMessage]) -> None:
            await self.pipeline.on_events(events)

        subscribe(broker, stage=streams.ALERT, model=EventMessage, handle=on_event, settings=settings, redis=redis,
                  handle_batch=on_events, max_records=settings.batch_size)
        publishes(broker, streams.ALERTS, AlertMessage, by=streams.ALERT)
        self.router = build_router(sessions, redis, decode_entry, self._stopping, settings.sse_heartbeat_seconds,
                                   url_policy=settings.url_policy, smtp_configured=bool(settings.smtp_host))

    async def start(self) -> None:
        """Loads the rules and starts the sweeper. Call after `await broker.start()`."""
        self._stopping.clear()
        # The gazetteer (for `near:` rules, capitals) takes a second or two: not on the first event's clock.
        await asyncio.to_thread(load_gazetteer)
        self.pipeline.severity = await asyncio.to_thread(default_policy)
        async with self.sessions() as session:
            await self.pipeline.rulebook.current(session)
        heap.settle()  # what lives as long as the process is loaded: out of the collector's full passes
        await self.sweeper.start()

    def end_streams(self) -> None:
        """Ends open console streams within a second. Call it when the HTTP server begins to shut down:
        uvicorn waits for open responses before it runs the lifespan shutdown."""
        self._stopping.set()

    async def stop(self) -> None:
        """Stops the sweeper and ends open console streams (within a second)."""
        self._stopping.set()
        await self.sweeper.stop()


class DeliverService:
    """wf:alerts and wf:source-watch in; notifications owed (SQL), then signed webhooks and emails out."""

    router = None

    def __init__(self, settings: AlertSettings, broker: RedisBroker, redis: Redis,
                 sessions: async_sessionmaker[AsyncSession]) -> None:
        self.dispatcher = Dispatcher(settings, sessions)
        self.source_alerts = SourceAlerts(sessions, self.dispatcher)

        async def on_alert(alert: AlertMessage) -> None:
            await self.dispatcher.on_alert(alert)

        async def on_alerts(alerts: list[AlertMessage]) -> None:
            await self.dispatcher.on_alerts(alerts)

        async def on_source_watch(message: SourceWatchMessage) -> None:
            await self.source_alerts.on_watch(message)

        subscribe(broker, stage=streams.DELIVER, model=AlertMessage, handle=on_alert, settings=settings,
                  redis=redis, handle_batch=on_alerts, max_records=settings.batch_size)
        subscribe(broker, stage=streams.SOURCE_ALERTS, model=SourceWatchMessage, handle=on_source_watch,
                  settings=settings, redis=redis)

    async def start(self) -> None:
        """Starts the sender. Call after `await broker.start()`."""
        heap.settle()
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()


class AlertApi:
    """The console and the HTTP API alone (`watchfloor run api`): no stream consumer, no webhook sender, no
    sweeper. In production it runs once, with the host port, beside any number of alert workers."""

    def __init__(self, settings: AlertSettings, redis: Redis, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._stopping = asyncio.Event()
        self.router = build_router(sessions, redis, decode_entry, self._stopping, settings.sse_heartbeat_seconds,
                                   url_policy=settings.url_policy, smtp_configured=bool(settings.smtp_host))

    async def start(self) -> None:
        self._stopping.clear()

    def end_streams(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
