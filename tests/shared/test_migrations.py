"""The event log schema migrates up from empty, down to nothing, and up again, on both databases."""

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from shared.db import alembic_config, downgrade, make_engine, migrate
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
