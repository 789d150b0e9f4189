"""The engine's pooled connections: one the database closed is replaced before a transaction uses it; on
PostgreSQL, no statement keeps for long a generic plan made while its table was small."""

import asyncio

import sqlalchemy as sa

from services.alert import store_incidents
from shared import db
from shared.db import make_engine, make_sessionmaker, migrate, session_scope
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


async def test_postgresql_plans_are_made_again_for_the_table_as_it_is_now(monkeypatch) -> None:
    """A batch's id lookup, run ten times on an empty table, then on 20,000 rows. After five runs PostgreSQL
    switches a prepared statement to a generic plan, here a sequential scan made for the empty table, and keeps
    it until the table is analyzed (never, on a server without autovacuum): 80-100 ms a lookup at 100,000
    incidents in the throughput bench. A connection checked out past its re-plan age discards its plans: the
    lookup is planned again, on the primary key."""
    await _reset_postgres(POSTGRES_URL)
    monkeypatch.setattr(db, "REPLAN_FIRST_S", 3600.0)  # no re-plan until the test says so
    engine = make_engine(POSTGRES_URL, pool_size=1, max_overflow=0)
    sessions = make_sessionmaker(engine)
    ids = [f"{n:064x}" for n in range(3)]

    async def plan_of_lookup() -> str:
        async with engine.connect() as conn:
            name = (await conn.execute(sa.text(
                "SELECT name FROM pg_prepared_statements WHERE statement LIKE 'SELECT incidents.id %FROM incidents%'"
            ))).scalar_one()
            values = ", ".join(f"'{i}'" for i in ids)
            rows = (await conn.execute(sa.text(f"EXPLAIN EXECUTE {name}({values})"))).scalars().all()
            return "\n".join(rows)

    async def lookups(times: int) -> None:
        async with session_scope(sessions) as session:
            for _ in range(times):
                await store_incidents.existing_incidents(session, ids)

    try:
        await migrate(engine)
        await lookups(10)
        async with session_scope(sessions) as session:
            await session.execute(sa.text(
                "INSERT INTO incidents (id, state, first_seen_at, last_seen_at, actors, tactics, report_count, "
                "source_count, version) SELECT lpad(to_hex(n), 64, '0'), 'open', now(), now(), '[]', '[]', 1, 1, 1 "
                "FROM generate_series(1, 20000) n"))
        await lookups(10)
        assert "Seq Scan on incidents" in await plan_of_lookup()  # the plan made for the empty table, kept

        later = db._clock() + 3600
        monkeypatch.setattr(db, "_clock", lambda: later)
        await lookups(10)  # the checkout discards the plans; the lookup is planned again
        plan = await plan_of_lookup()
        assert "pk_incidents" in plan and "Seq Scan" not in plan, plan
    finally:
        await engine.dispose()
