"""The SQL of operator alerts on sources (`source_alerts`), as recorded from wf:source-watch; callers own the
transaction. One row per raise, keyed by its watch_id and resolved in place, so a re-delivered message changes
nothing."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.store_base import insert_or_ignore
from shared.messages import SourceWatchMessage
from shared.models import SourceAlert


async def record(session: AsyncSession, message: SourceWatchMessage) -> bool:
    """Records the raise, or the resolution (a resolution whose raise was never seen records both at once).
    True if anything changed."""
    inserted = await session.execute(insert_or_ignore(session, SourceAlert).values(
        id=message.watch_id, source_id=message.source_id, source_name=message.source_name,
        source_kind=message.source_kind, source_url=message.source_url, kind=message.kind, state="raised",
        reason=message.reason, raised_at=message.since,
    ).on_conflict_do_nothing(index_elements=["id"]))
    changed = inserted.rowcount == 1  # type: ignore[attr-defined]  # CursorResult of an INSERT
    if message.state == "resolved":
        resolved = await session.execute(
            sa.update(SourceAlert).where(SourceAlert.id == message.watch_id, SourceAlert.state == "raised")
            .values(state="resolved", resolved_at=message.at, resolved_reason=message.resolved_reason)
            .execution_options(synchronize_session=False)
        )
        changed = changed or resolved.rowcount == 1  # type: ignore[attr-defined]
    return changed


async def list_source_alerts(session: AsyncSession, *, resolved_since: datetime | None, limit: int = 200
                             ) -> list[SourceAlert]:
    """Raised ones first (oldest raise first), then those resolved since `resolved_since`, newest first."""
    raised = (await session.scalars(
        sa.select(SourceAlert).where(SourceAlert.state == "raised").order_by(SourceAlert.raised_at).limit(limit)
    )).all()
    resolved: list[SourceAlert] = []
    if resolved_since is not None and len(raised) < limit:
        resolved = list((await session.scalars(
            sa.select(SourceAlert).where(SourceAlert.state == "resolved", SourceAlert.resolved_at >= resolved_since)
            .order_by(SourceAlert.resolved_at.desc()).limit(limit - len(raised))
        )).all())
    return [*raised, *resolved]
