"""The engine's pooled connections: one the database closed is replaced before a transaction uses it."""

import asyncio

import sqlalchemy as sa

from shared.db import make_engine, make_sessionmaker, session_scope
from tests.conftest import POSTGRES_URL, _reset_postgres


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use() -> None:
    """As after a PostgreSQL restart: the next transaction runs on a new connection, not into an error (the
    check costs no round trip: SQLAlchemy's pool_pre_ping costs three on asyncpg, every transaction)."""
    await _reset_postgres(POSTGRES_URL)
    engine, admin = make_engine(POSTGRES_URL), make_engine(POSTGRES_URL)
    sessions = make_sessionmaker(engine)

    async def backend() -> int:
        async with session_scope(sessions) as session:
            return int((await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())

    try:
        first = await backend()
        assert await backend() == first  # pooled: the same connection again
        async with admin.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await asyncio.sleep(0.3)  # asyncpg reads the server's goodbye
        second = await backend()
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()
