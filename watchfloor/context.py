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


@dataclass
class CliContext:
    overrides: dict[str, Any] = field(default_factory=dict)

    def with_data_dir(self, data_dir: Path | None) -> None:
        if data_dir is not None:
            self.overrides["data_dir"] = data_dir

    @property
    def settings(self) -> CommonSettings:
        from shared.settings import CommonSettings

        return CommonSettings(**self.overrides)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One committed transaction against the configured database."""
        from shared.db import make_engine, make_sessionmaker

        engine = make_engine(self.settings.db_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                yield session
        finally:
            await engine.dispose()


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
