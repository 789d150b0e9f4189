"""Ingest test helpers: real feed bytes, a running IngestService on real Redis, and what reached wf:posts."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from click.testing import CliRunner, Result
from faststream.redis.parser import BinaryMessageFormatV1
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from shared import streams
from shared.consumer import make_broker
from shared.db import session_scope
from shared.models import Source
from watchfloor.cli import main

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


async def add_platform_source(sessions: async_sessionmaker[AsyncSession], written: str) -> str:
    """`watchfloor source add WRITTEN` for a platform address (telegram:, mastodon:, bluesky:, gdelt:), stored
    as the CLI stores it; returns the source id."""
    from services.ingest.sources import parse_address

    address = parse_address(written)
    assert address is not None
    async with session_scope(sessions) as s:
        src = await store.add_kind_source(s, address.kind, address.handle, address.url,
                                          source_id=address.source_id, name=address.name)
    return src.id


async def due_now(sessions: async_sessionmaker[AsyncSession], source_id: str) -> Source:
    """Makes the source due at once and returns it as stored."""
    async with session_scope(sessions) as s:
        found = await s.get(Source, source_id)
        assert found is not None
        found.next_poll_at = None
    return found


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`watchfloor …` as an operator types it, on the test's migrated database; `ok=False` expects a refusal."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    async def invoke(*args: str, ok: bool = True) -> Result:
        result = await asyncio.to_thread(runner.invoke, main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return invoke
