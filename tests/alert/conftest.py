"""The alert service running for real: FastStream on real Redis, the database (SQLite and PostgreSQL)."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from faststream.redis import RedisBroker
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands
from services.alert.app import AlertService, DeliverService, decode_entry
from services.alert.rules import load_rule_text
from services.alert.settings import AlertSettings
from shared import streams
from shared.consumer import make_broker
from shared.db import session_scope
from shared.messages import AlertMessage, EventMessage, to_wire
from tests.alert.test_rules import FIRST_RULE

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 5.0, interval: float = 0.05) -> T:
    """Polls `check` until it returns something truthy; fails the test with its last value otherwise."""
    deadline = time.monotonic() + within
    value = await check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await check()
    assert value, f"not true within {within}s: {value!r}"
    return value


@dataclass
class Running:
    service: AlertService
    broker: RedisBroker
    redis: Redis
    sessions: async_sessionmaker[AsyncSession]
    settings: AlertSettings
    deliver: DeliverService

    async def publish_event(self, event: EventMessage | dict[str, Any]) -> bytes:
        """Puts the event on wf:events as classify does; returns the stream entry id."""
        body = to_wire(event) if isinstance(event, EventMessage) else event
        return await self.broker.publish(body, stream=streams.EVENTS)

    async def handled(self, entry_id: bytes) -> bool:
        """True once the alert stage has read up to `entry_id` and acked everything."""
        groups = {g["name"]: g for g in await self.redis.xinfo_groups(streams.EVENTS)}
        group = groups.get(streams.GROUP_FOR_STAGE[streams.ALERT].encode())
        pending = await self.redis.xpending(streams.EVENTS, streams.GROUP_FOR_STAGE[streams.ALERT])
        return bool(group) and group["last-delivered-id"] == entry_id and pending["pending"] == 0

    async def alerts_on_stream(self) -> list[AlertMessage]:
        """Every valid AlertMessage on wf:alerts (a test may have put poison there too)."""
        out = []
        for _, fields in await self.redis.xrange(streams.ALERTS):
            try:
                out.append(AlertMessage.model_validate_json(decode_entry(fields[b"__data__"])))
            except ValidationError:
                continue
        return out

    async def parked(self, stage: str) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in await self.redis.xrange(streams.dlq_stream(stage))]


def alert_settings(redis_url: str, db_url: str, **overrides: Any) -> AlertSettings:
    values: dict[str, Any] = dict(
        redis_url=redis_url, database_url=db_url, claim_idle_ms=300, max_deliveries=2,
        retry_schedule_seconds=[0.2, 0.2], retry_jitter=0.0, dispatch_poll_seconds=0.2, rules_reload_seconds=0.0,
        consumer_name="test-alert", sse_heartbeat_seconds=0.5,
    )
    values.update(overrides)
    return AlertSettings(**values)


@pytest.fixture
async def running(redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
                  ) -> AsyncIterator[Running]:
    """The service with the first rule ops wrote (ISSP or any car bomb within 50 km of Niamey)."""
    async with run_service(alert_settings(redis_url, db_url), sessions) as service:
        yield service


@contextlib.asynccontextmanager
async def run_service(settings: AlertSettings, sessions: async_sessionmaker[AsyncSession]
                      ) -> AsyncIterator[Running]:
    """The alert worker (alert and deliver) on `settings`, with the first rule ops wrote, running until the block
    ends."""
    redis_url = settings.redis_url
    assert redis_url is not None
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE, "issp-niamey-50km.yaml"), FIRST_RULE,
                                "rules/issp-niamey-50km.yaml", actor="test")
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)
    service = AlertService(settings, broker, redis, sessions)
    deliver = DeliverService(settings, broker, redis, sessions)  # in one process, as `watchfloor run alert`
    async with broker:
        await broker.start()
        await service.start()
        await deliver.start()
        try:
            yield Running(service, broker, redis, sessions, settings, deliver)
        finally:
            await deliver.stop()
            await service.stop()
    await redis.aclose()
