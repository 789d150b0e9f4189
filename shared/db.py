"""Engine, sessions and schema migration for the event log (PostgreSQL in production, SQLite embedded)."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def json_text(value: Any) -> str:
    """A JSON column's text: orjson, a few times faster than the standard library's, which the alert stage
    felt (an alert's payload, an incident's place, every row it writes and reads)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


REPLAN_FIRST_S, REPLAN_MAX_S = 1.0, 600.0
"""A pooled PostgreSQL connection discards its cached query plans (`DISCARD PLANS`, at checkout) 1 s after it
opened, then after 2, 4, 8 s… and every 10 minutes from then on. asyncpg prepares every statement, and after
five runs PostgreSQL may switch it to a generic plan, kept until the table is next analyzed. One made in the
first seconds, when `incidents` held a hundred rows, was a sequential scan; at 100,000 rows each batch's two
id lookups took 80-100 ms, and the alert stage fell 17,000 events behind (bench/throughput.py, on a server that
never vacuums, so never re-plans). The tables grow from empty fastest at first: re-planned at doubling ages, a
plan serves tables at most about twice the size it was made for. Tried and dropped: discarding every 60 s (the
first minute's plans still sank the alert stage, p99 8 s) and `plan_cache_mode = force_custom_plan`, which
re-plans every row of every INSERT (PostgreSQL 20 -> 30-37 % of a core at 500 posts/s)."""
_clock = time.monotonic


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine, its JSON columns written and read with orjson. On SQLite: WAL, foreign keys on, and a
    30 s busy timeout so that the CLI writing from a second terminal waits for `watchfloor up` instead of
    failing with "database is locked". On PostgreSQL, a pooled connection's plans are made afresh at
    doubling ages (`REPLAN_FIRST_S`)."""
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        """A pooled connection the server closed (a restart: PostgreSQL says goodbye on every connection, and
        asyncpg marks it closed) is replaced before use, as SQLAlchemy's pool_pre_ping would. Its ping costs
        three round trips a checkout on asyncpg (BEGIN, a query, ROLLBACK), every transaction of every stage;
        this check none. At doubling ages (`REPLAN_FIRST_S`), the connection's cached plans are discarded."""
        connection = getattr(dbapi_conn, "driver_connection", None)
        if connection is not None and connection.is_closed():
            raise exc.DisconnectionError("the database closed this pooled connection")
        now, info = _clock(), record.info
        if "replan_at" not in info:  # a new connection
            info["replan_every"] = REPLAN_FIRST_S
            info["replan_at"] = now + REPLAN_FIRST_S
        elif now >= info["replan_at"]:
            info["replan_every"] = min(info["replan_every"] * 2, REPLAN_MAX_S)
            info["replan_at"] = now + info["replan_every"]
            try:
                dbapi_conn.run_async(lambda driver: driver.execute("DISCARD PLANS"))
            except Exception as error:  # a connection that died unseen: replaced, as a closed one is
                raise exc.DisconnectionError(f"this pooled connection failed: {error!r}") from error

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed on success, rolled back on any error."""
    async with sessions() as session, session.begin():
        yield session


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Brings the schema to `revision` (Alembic), on the engine's own connection."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)
