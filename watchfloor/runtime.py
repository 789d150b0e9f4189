"""Builds and runs services in one process: `watchfloor up` (all three) or `watchfloor run NAME` (one).

Order matters: Redis and the database first, then every service registers its subscribers, then the
broker starts, then the services' background tasks. Shutdown runs the other way round: the subscribers stop
taking messages, the services' background tasks end, the broker disconnects.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import sqlalchemy as sa
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import health as health_checks
from shared import http_guards, metrics, outage, streams
from shared.consumer import downstream, make_broker, start_broker, stop_consuming
from shared.db import make_engine, make_sessionmaker, migrate
from shared.errors import ReasonError
from shared.logs import configure_logging
from shared.settings import CommonSettings
from shared.trim import Trimmer
from watchfloor import apidocs, locate
from watchfloor.embedded_redis import EmbeddedRedis

logger = logging.getLogger(__name__)
VERSION = "0.1.0"
SERVICE_NAMES = ("ingest", "classify", "alert", "deliver")
RUNNABLE_NAMES = (*SERVICE_NAMES, "api")
"""`watchfloor run` also runs `api`: the console and the API without the alert pipeline (alert workers scale)."""
CONSOLE_SERVICES = {"alert", "api"}
"""The services whose router serves the console page."""
SOURCE_STATE_SERVICES = {"ingest"}
SUBSCRIPTION_STATE_SERVICES = {"alert", "api"}
"""The processes whose /metrics report the sources failing or silent, and the subscriptions disabled: those that
own that state, so a scrape of a classify worker costs no query."""


def run_names(service: str, deliver: bool = True) -> tuple[str, ...]:
    """What `watchfloor run SERVICE` runs in its process: `alert` is a whole alert worker, the deliver side
    included, unless `deliver` is False (`--no-deliver`: a `run deliver` process sends)."""
    return ("alert", "deliver") if service == "alert" and deliver else (service,)


class Service(Protocol):
    router: APIRouter | None

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def build_service(
    name: str, overrides: dict[str, Any], broker: RedisBroker, redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
) -> Service:
    """Each service reads its own settings from the environment, with the CLI's overrides on top."""
    if name == "ingest":
        from services.ingest.app import IngestService
        from services.ingest.settings import IngestSettings

        return IngestService(IngestSettings(**overrides), broker, redis, sessions)
    if name == "classify":
        from services.classify.app import ClassifyService
        from services.classify.settings import ClassifySettings

        return ClassifyService(ClassifySettings(**overrides), broker, redis, sessions)
    if name == "alert":
        from services.alert.app import AlertService
        from services.alert.settings import AlertSettings

        return AlertService(AlertSettings(**overrides), broker, redis, sessions)
    if name == "deliver":
        from services.alert.app import DeliverService
        from services.alert.settings import AlertSettings

        return DeliverService(AlertSettings(**overrides), broker, redis, sessions)
    if name == "api":
        from services.alert.app import AlertApi
        from services.alert.settings import AlertSettings

        return AlertApi(AlertSettings(**overrides), redis, sessions)
    raise ValueError(f"unknown service {name!r}: choose from {', '.join(RUNNABLE_NAMES)}")


def consumed_stages(names: tuple[str, ...]) -> list[str]:
    """The stages whose input streams the named services consume (each process trims its own inputs)."""
    by_service = {"ingest": [], "classify": [streams.CLASSIFY],
                  "alert": [streams.ALERT], "deliver": [streams.DELIVER, streams.SOURCE_ALERTS], "api": []}
    return [stage for name in names for stage in by_service[name]]


def redis_url_for_cli(settings: CommonSettings) -> str:
    """The Redis a CLI command should talk to: the configured one, or the embedded one `up` runs."""
    if settings.redis_url:
        return settings.redis_url
    sock = settings.embedded_redis_socket
    if sock.exists():
        return f"unix://{sock}"
    raise ReasonError(
        f"no Redis to talk to: WATCHFLOOR_REDIS_URL is not set and no `watchfloor up` is running on "
        f"{settings.data_dir} (no {sock})"
    )


@dataclass
class Serving:
    names: tuple[str, ...]
    host: str
    port: int
    overrides: dict[str, Any]
    migrate_first: bool
    announce: bool = False
    """Record this process for CLI commands run beside it (watchfloor.locate); `up` does."""


async def _schema_is_current(engine: Any) -> bool:
    async with engine.connect() as conn:
        try:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        except sa.exc.DBAPIError:
            return False
    return version is not None


def build_app(
    names: tuple[str, ...], overrides: dict[str, Any], redis_url: str,
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[FastAPI, list[Service]]:
    """One ASGI app: the services' routers, a health check, and a lifespan that runs the pipeline."""
    common = CommonSettings(**overrides)
    broker = make_broker(redis_url)
    redis = Redis.from_url(redis_url)
    services = [build_service(name, overrides, broker, redis, sessions) for name in names]
    stuck_after = health_checks.stuck_after_seconds(common.claim_idle_ms)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        trimmer = Trimmer(redis, [streams.STREAM_FOR_STAGE[s] for s in consumed_stages(names)],
                          common.trim_interval_seconds)
        downstream_watch = health_checks.DownstreamWatch(broker, redis, stuck_after) \
            if downstream(broker) else None
        async with broker:
            await start_broker(broker, redis)
            started: list[Service] = []
            try:
                for service in services:
                    await service.start()
                    started.append(service)
                trimmer.start()
                if downstream_watch is not None:
                    downstream_watch.start()
                logger.info("watchfloor running services=%s", ",".join(names))
                yield
            finally:
                # No new message is taken once stopping has begun; then the services' own loops end.
                await stop_consuming(broker)
                await trimmer.stop()
                if downstream_watch is not None:
                    await downstream_watch.stop()
                for service in reversed(started):
                    await service.stop()
        await redis.aclose()

    # /docs and /redoc with assets from a package, not FastAPI's CDN: the floor may have no internet
    app = FastAPI(title="watchfloor", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None)
    apidocs.install_pages(app)
    apidocs.install_asyncapi(app, broker)
    http_guards.install(app, common.max_request_bytes)
    for service in services:
        if service.router is not None:
            app.include_router(service.router)
    if CONSOLE_SERVICES & set(names) and "ingest" not in names:
        # The console's sources page reads GET /api/sources from the server that served it; without ingest
        # in this process (`run api`, `run alert`), the read-only route comes on its own.
        from services.ingest.api import build_sources_router

        app.include_router(build_sources_router(sessions))

    outage.install_http(app)  # a database or Redis outage: 503 + Retry-After, logged once, not a 500 per request

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, Any]:
        """Liveness: 200 while the process lives, with each consumer's pending, lag and last handled time."""
        return {**await health_checks.liveness(broker, redis, stuck_after=stuck_after), "services": ",".join(names)}

    @app.get("/health/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Readiness: 503 when the database or Redis is down or a consumer is stuck, with the reasons."""
        ok, report = await health_checks.readiness(broker, redis, sessions, stuck_after=stuck_after)
        return JSONResponse({**report, "services": ",".join(names)}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics_page() -> Response:
        """Prometheus text format: what this process counted (messages per stage, polls, deliveries, latencies)
        and the shared state read now (lag and pending per consumer group, dead letters, sources failing,
        subscriptions disabled). Open like /health: counts only, no post, alert or subscription content."""
        reading = await health_checks.state_reading(
            broker, redis, sessions, version=VERSION, services=",".join(names),
            sources=bool(SOURCE_STATE_SERVICES & set(names)),
            subscriptions=bool(SUBSCRIPTION_STATE_SERVICES & set(names)), stuck_after=stuck_after,
        )
        return Response(metrics.exposition(reading), media_type=metrics.CONTENT_TYPE)

    return app, services


def streams_document(overrides: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI document `watchfloor up` serves at /asyncapi.json, built without running anything: the
    three services register their subscribers and publishers on a broker that never connects."""
    common = CommonSettings(**overrides)
    redis_url = common.redis_url or f"unix://{common.embedded_redis_socket}"
    broker = make_broker(redis_url)
    redis = Redis.from_url(redis_url)
    sessions = make_sessionmaker(make_engine(common.db_url))  # never connected: building a service only wires it
    for name in SERVICE_NAMES:
        build_service(name, overrides, broker, redis, sessions)
    return apidocs.asyncapi_document(broker, VERSION)


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured Ctrl-C once its graceful shutdown is done, which would cancel our own
    clean-up (the database pool, the embedded Redis). Here a signal only asks the server to stop, and
    tells the services at once, so that long-lived responses (the console's event stream) end."""

    def __init__(self, config: uvicorn.Config, services: list[Service]) -> None:
        super().__init__(config)
        self._services = services

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for open connections
        self.should_exit = True
        for service in self._services:
            end_streams = getattr(service, "end_streams", None)
            if end_streams is not None:
                asyncio.get_event_loop().call_soon_threadsafe(end_streams)


async def serve(serving: Serving) -> None:
    common = CommonSettings(**serving.overrides)
    configure_logging(common.log_format, common.log_level)
    embedded: EmbeddedRedis | None = None
    redis_url = common.redis_url
    if not serving.migrate_first:
        locate.require_existing_database(common.db_url)  # `run` must not create an empty SQLite file
    if redis_url is None:
        embedded = EmbeddedRedis(Path(common.data_dir))
        redis_url = embedded.start()
    engine = make_engine(common.db_url)
    record: Path | None = None
    try:
        if serving.migrate_first:
            await migrate(engine)
        elif not await _schema_is_current(engine):
            raise ReasonError(f"the database at {common.db_url} has no schema: run `watchfloor migrate` first")
        if {"alert", "api"} & set(serving.names):
            from shared import store_access

            async with make_sessionmaker(engine)() as session:
                notice = await store_access.bootstrap_notice(session)
            if notice:
                logger.warning(notice)
        app, services = build_app(serving.names, serving.overrides, redis_url, make_sessionmaker(engine))
        config = uvicorn.Config(
            app, host=serving.host, port=serving.port, log_config=None, timeout_graceful_shutdown=3,
        )
        logger.info("console on http://%s:%d  database=%s  loop=%s", serving.host, serving.port, common.db_url,
                    type(asyncio.get_running_loop()).__module__.split(".")[0])
        if serving.announce:
            record = locate.record(data_dir=Path(common.data_dir), database_url=common.database_url,
                                   redis_url=redis_url, console=f"http://{serving.host}:{serving.port}")
        server = _Server(config, services)
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits when it cannot bind; its log line says why
            raise ReasonError(
                f"the HTTP server could not start on {serving.host}:{serving.port} (is the port in use?)"
            ) from exc
    finally:
        if record is not None:
            record.unlink(missing_ok=True)
        await engine.dispose()
        if embedded is not None:
            embedded.stop()
