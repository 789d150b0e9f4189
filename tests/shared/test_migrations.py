"""The event log schema migrates up from empty, down to nothing, and up again, on both databases."""

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from shared.db import alembic_config, downgrade, make_engine, make_sessionmaker, migrate
from shared.models import Base

TABLES = set(Base.metadata.tables)


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        await migrate(engine)
        assert await _tables(engine) == TABLES
        await downgrade(engine, "base")
        assert await _tables(engine) == set()
        await migrate(engine)
        assert await _tables(engine) == TABLES
        async with engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        await engine.dispose()


async def test_models_match_migrations(empty_db_url: str) -> None:
    """Autogenerate finds nothing to add: the models and the migrations describe one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(empty_db_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


async def test_0011_fills_when_each_open_incident_last_had_a_report(empty_db_url: str) -> None:
    """Incidents recorded before the sweeper read `last_report_at` get their latest report's time: they still
    resolve after the quiet delay, and an incident with no report stays as it was (never resolved)."""
    from datetime import UTC, datetime, timedelta

    from services.alert import store_incidents
    from shared.models import Incident, IncidentReport

    engine = make_engine(empty_db_url)
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    try:
        await migrate(engine, "0010e")
        async with engine.begin() as conn:
            for incident_id in ("a" * 64, "b" * 64):
                await conn.execute(Incident.__table__.insert().values(
                    id=incident_id, state="open", first_seen_at=t0, last_seen_at=t0, actors=[], tactics=[],
                    report_count=2, source_count=1, version=1, corroboration="single_source"))
            for n, hours in ((1, 0), (2, 5)):
                await conn.execute(IncidentReport.__table__.insert().values(
                    event_id=f"{n:064x}", incident_id="a" * 64, source_id="s", added_at=t0 + timedelta(hours=hours)))
        await migrate(engine)
        async with make_sessionmaker(engine)() as session:
            rows = {i.id: i.last_report_at for i in (await session.scalars(sa.select(Incident))).all()}
            quiet = await store_incidents.quiet_incidents(session, t0 + timedelta(hours=6))
            not_yet = await store_incidents.quiet_incidents(session, t0 + timedelta(hours=4))
        assert rows == {"a" * 64: t0 + timedelta(hours=5), "b" * 64: None}
        assert (quiet, not_yet) == (["a" * 64], [])
    finally:
        await engine.dispose()
