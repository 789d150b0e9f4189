"""What every CLI command needs: settings with the command line's overrides, a database session.

Imports of the database, Redis and settings stacks happen inside the functions that use them, so that
`watchfloor --help` and commands that need none of them start in a fraction of a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shared.settings import CommonSettings

T = TypeVar("T")
S = TypeVar("S", bound="CommonSettings")


@dataclass
class CliContext:
    overrides: dict[str, Any] = field(default_factory=dict)
    _noted: bool = False

    def with_data_dir(self, data_dir: Path | None) -> None:
        if data_dir is not None:
            self.overrides["data_dir"] = data_dir

    @property
    def settings(self) -> CommonSettings:
        """The command line's settings; with no data dir or database chosen, those of the running `up`."""
        from shared.settings import CommonSettings
        from watchfloor.locate import overrides_for_cli

        chosen, note = overrides_for_cli(self.overrides)
        if note and not self._noted:
            self._noted = True
            click.echo(note, err=True)
        return CommonSettings(**chosen)

    def settings_of(self, kind: type[S]) -> S:
        """A service's settings (`IngestSettings`…) as `settings` reads the common ones."""
        from watchfloor.locate import overrides_for_cli

        return kind(**overrides_for_cli(self.overrides)[0])

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One committed transaction against the configured database, which must exist and be migrated
        (a command never creates an empty database as a side effect)."""
        import sqlalchemy as sa

        from shared.db import make_engine, make_sessionmaker
        from shared.errors import ReasonError
        from watchfloor.locate import NO_SCHEMA, require_existing_database

        url = self.settings.db_url
        require_existing_database(url)
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                try:
                    await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                except sa.exc.ProgrammingError as exc:
                    raise ReasonError(NO_SCHEMA.format(url=_masked(url))) from exc
                except sa.exc.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise
                    raise ReasonError(NO_SCHEMA.format(url=_masked(url))) from exc
            async with make_sessionmaker(engine)() as session, session.begin():
                yield session
        finally:
            await engine.dispose()


def _masked(url: str) -> str:
    from shared.settings import CommonSettings

    return str(CommonSettings(database_url=url).redacted()["db_url (in force)"])


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Runs an async command body (see `checked` for what becomes a one-line error)."""
    return checked(lambda: asyncio.run(coro_fn()))  # type: ignore[arg-type]


def checked(fn: Callable[[], T]) -> T:
    """Runs a command body. A ReasonError (RuleError, SourceError…), an unreachable database or Redis
    becomes a message and exit status 1; anything else is a bug and raises with its traceback."""
    import redis
    from sqlalchemy import exc as sa_exc

    from shared.errors import ReasonError

    try:
        return fn()
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise click.ClickException(f"database unreachable or unusable: {exc.orig}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise click.ClickException(f"Redis unreachable: {exc}") from exc
    except ReasonError as exc:
        raise click.ClickException(str(exc)) from exc


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)


def operator() -> str:
    """Who runs the command, for the audit table: the login name."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


BY = click.option("--by", default=None, help="Who does it, for the audit table (default: your login name).")
