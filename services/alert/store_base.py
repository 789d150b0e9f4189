"""What the alert service's store modules share: the not-found error and INSERT … ON CONFLICT DO NOTHING."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import ReasonError


class NotFoundError(ReasonError, LookupError):
    """No such alert, silence or subscription; `reason` names what was asked for."""


def insert_or_ignore(session: AsyncSession, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (PostgreSQL or SQLite)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
