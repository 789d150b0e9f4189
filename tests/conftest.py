"""Fixtures on real parts: Redis, PostgreSQL and SQLite, HTTP servers on 127.0.0.1.

A missing service is an error, not a skip. Point the tests elsewhere with
WATCHFLOOR_TEST_REDIS_URL and WATCHFLOOR_TEST_POSTGRES_URL.
"""

import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import make_engine, make_sessionmaker, migrate
from tests.servers import FeedServer, WebhookReceiver

# Every test server listens on 127.0.0.1, which the SSRF guard refuses by default; set before any settings
# are built, and inherited by the `watchfloor up` subprocesses. Tests of the guard itself override it.
os.environ.setdefault("WATCHFLOOR_ALLOW_PRIVATE_URLS", "127.0.0.1/32")
# Test feed servers all live on 127.0.0.1, many feeds to one server: no politeness spacing there (default 1 s
# between requests to a host), so tests and `watchfloor up` subprocesses poll at test speed. The spacing tests
# set it explicitly.
os.environ.setdefault("WATCHFLOOR_HOST_SPACING", '{"127.0.0.1": 0}')
# `watchfloor up` processes started by tests record themselves here, not in the user's ~/.local/state, so a
# CLI command in a test never attaches to a system the developer is running.
os.environ.setdefault("WATCHFLOOR_STATE_DIR", tempfile.mkdtemp(prefix="watchfloor-test-state-"))

REDIS_URL = os.environ.get("WATCHFLOOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("WATCHFLOOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _open_mode_rechecked_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process apps ask whether an admin token exists on every request, as tests create tokens and at once
    expect 401 (`watchfloor` trusts "no admin token yet" for 2 s; tests/alert/test_access.py tests that)."""
    from shared import access

    monkeypatch.setattr(access, "OPEN_MODE_RECHECK_S", 0.0)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database, flushed before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc} (start it, or set WATCHFLOOR_TEST_REDIS_URL)")
    yield REDIS_URL
    client.flushdb()
    client.close()


async def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(sa.text("CREATE SCHEMA public"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {url}: {exc} (start it, or set WATCHFLOOR_TEST_POSTGRES_URL)")
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database URL: a fresh SQLite file, or PostgreSQL with its public schema dropped."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'watchfloor.db'}"
    await _reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
async def db_url(empty_db_url: str) -> str:
    """A migrated database URL, once on SQLite and once on PostgreSQL."""
    engine = make_engine(empty_db_url)
    await migrate(engine)
    await engine.dispose()
    return empty_db_url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()
