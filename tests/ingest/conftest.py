"""Ingest test helpers: real feed bytes, a running IngestService on real Redis, and what reached wf:posts."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from faststream.redis.parser import BinaryMessageFormatV1
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from shared import streams
from shared.consumer import make_broker

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


def feed_bytes(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


async def posts_on_stream(redis_url: str) -> list[dict]:
    """Every message on wf:posts, decoded from FastStream's wire format."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        rows = await client.xrange(streams.POSTS)
    finally:
        await client.aclose()
    return [json.loads(BinaryMessageFormatV1.parse(fields[b"__data__"])[0]) for _id, fields in rows]


@pytest.fixture
def settings(db_url: str, redis_url: str) -> IngestSettings:
    return IngestSettings(
        database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05, fetch_timeout_seconds=2.0,
        requeue_after_seconds=0.0,
    )


@pytest.fixture
async def service(
    settings: IngestSettings, redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[IngestService]:
    """The real ingest service on a started broker; its poll loop is not started (tests drain it)."""
    broker = make_broker(redis_url)
    client = redis.asyncio.Redis.from_url(redis_url)
    svc = IngestService(settings, broker, client, sessions)
    async with broker:
        await broker.start()
        yield svc
        await svc.stop()
    await client.aclose()
