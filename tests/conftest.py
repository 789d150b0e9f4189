"""Fixtures on real parts: Redis, PostgreSQL and SQLite, HTTP servers on 127.0.0.1.

A missing service is an error, not a skip. Point the tests elsewhere with
WATCHFLOOR_TEST_REDIS_URL and WATCHFLOOR_TEST_POSTGRES_URL.

Run in parallel (pytest-xdist, `-n N`), each worker has a Redis database, a PostgreSQL database and a
`watchfloor up` state dir of its own, derived from those base URLs (see `worker_redis_url` and
`worker_postgres_url`); without xdist the base URLs are used as they are.
"""

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.db import make_engine, make_sessionmaker, migrate
from tests.servers import FeedServer, WebhookReceiver

REDIS_DATABASES = 16
"""Redis' default number of databases (`databases 16`): a worker's database is one of 0-15."""


def worker_redis_url(base: str, worker: str | None, workers: int) -> str:
    """The Redis URL xdist worker `worker` ("gw0", "gw1", ...) of `workers` uses: the base URL's database number
    N plus the worker's number (N, N+1, ... N+workers-1), or minus it when that block would pass database 15
    (the default base 15 gives 15, 14, 13). Without xdist (`worker` None), the base URL itself."""
    if worker is None:
        return base
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query))
    in_query = "db" in query or parts.scheme == "unix"  # unix:///path?db=N; redis://host:port/N
    db = int(query.get("db", 0) if in_query else (parts.path.strip("/") or 0))
    n = int(worker.removeprefix("gw"))
    mine = db + n if db + workers - 1 < REDIS_DATABASES else db - n
    if not 0 <= mine < REDIS_DATABASES:
        raise pytest.UsageError(f"{workers} xdist workers need {workers} Redis databases next to {base}'s: "
                                f"use fewer workers or another WATCHFLOOR_TEST_REDIS_URL database")
    path, query_text = (parts.path, urlencode({**query, "db": str(mine)})) if in_query else (f"/{mine}", parts.query)
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query_text}" if query_text else "")


def worker_postgres_url(base: str, worker: str | None) -> str:
    """The PostgreSQL URL xdist worker `worker` uses: the base database's name with `_gw0`, `_gw1`, ... appended
    (created when missing, `ensure_postgres_database`). Without xdist, the base URL itself."""
    if worker is None:
        return base
    url = make_url(base)
    return url.set(database=f"{url.database}_{worker}").render_as_string(hide_password=False)


# Under xdist (a worker process), PYTEST_XDIST_WORKER names the worker; the controller and a plain run have none.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))

# Every test server listens on 127.0.0.1, which the SSRF guard refuses by default; set before any settings
# are built, and inherited by the `watchfloor up` subprocesses. Tests of the guard itself override it.
os.environ.setdefault("WATCHFLOOR_ALLOW_PRIVATE_URLS", "127.0.0.1/32")
# Test feed servers all live on 127.0.0.1, many feeds to one server: no politeness spacing there (default 1 s
# between requests to a host), so tests and `watchfloor up` subprocesses poll at test speed. The spacing tests
# set it explicitly.
os.environ.setdefault("WATCHFLOOR_HOST_SPACING", '{"127.0.0.1": 0}')
# `watchfloor up` processes started by tests record themselves here, not in the user's ~/.local/state, so a
# CLI command in a test never attaches to a system the developer is running. Each xdist worker has a folder of
# its own (workers inherit the controller's environment): a CLI command in one worker's test must not find the
# `up` another worker's test runs.
if "WATCHFLOOR_STATE_DIR" not in os.environ:
    os.environ["WATCHFLOOR_STATE_DIR"] = tempfile.mkdtemp(prefix="watchfloor-test-state-")
    atexit.register(shutil.rmtree, os.environ["WATCHFLOOR_STATE_DIR"], ignore_errors=True)  # workers' folders too
if WORKER is not None:
    os.environ["WATCHFLOOR_STATE_DIR"] = os.path.join(os.environ["WATCHFLOOR_STATE_DIR"], WORKER)
    os.makedirs(os.environ["WATCHFLOOR_STATE_DIR"], exist_ok=True)

BASE_REDIS_URL = os.environ.get("WATCHFLOOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BASE_POSTGRES_URL = os.environ.get("WATCHFLOOR_TEST_POSTGRES_URL",
                                   "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = worker_redis_url(BASE_REDIS_URL, WORKER, WORKERS)
POSTGRES_URL = worker_postgres_url(BASE_POSTGRES_URL, WORKER)


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


_postgres_ready: set[str] = set()


async def ensure_postgres_database(url: str, base: str) -> None:
    """Creates the database of `url` when it is missing, connected to the `base` database (which must exist).
    Safe when several workers, or two runs, create it at once: "already exists" is success. From template0,
    which nobody connects to: CREATE DATABASE from template1 fails while any session is connected to it."""
    if url in _postgres_ready or url == base:
        return
    name = make_url(url).database
    engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = (await conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}))
            if exists.scalar() is None:
                quoted = conn.dialect.identifier_preparer.quote(name)
                try:
                    await conn.execute(sa.text(f"CREATE DATABASE {quoted} TEMPLATE template0"))
                except sa.exc.DBAPIError as exc:
                    # 42P04 duplicate_database; 23505 when two CREATE DATABASE of one name race in the catalog
                    if _sqlstate(exc) not in {"42P04", "23505"}:
                        raise
    finally:
        await engine.dispose()
    _postgres_ready.add(url)


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None)


async def _reset_postgres(url: str) -> None:
    try:
        await ensure_postgres_database(url, BASE_POSTGRES_URL)
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {BASE_POSTGRES_URL}: {exc} (start it, or set "
                    f"WATCHFLOOR_TEST_POSTGRES_URL)")
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
