"""The two counts `/metrics` reads from the database at scrape time; callers own the session and its timeout."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Source, Subscription


async def watched_sources(session: AsyncSession) -> dict[str, int]:
    """Sources (not removed) with an operator alert raised, by its state: {"failing": 2, "silent": 1}."""
    rows = await session.execute(
        sa.select(Source.watch_state, sa.func.count())
        .where(Source.watch_state.is_not(None), Source.removed_at.is_(None))
        .group_by(Source.watch_state)
    )
    return {state: int(n) for state, n in rows.all()}


async def disabled_subscriptions(session: AsyncSession) -> int:
    """Subscriptions disabled and not removed."""
    return int((await session.execute(
        sa.select(sa.func.count()).select_from(Subscription)
        .where(Subscription.enabled.is_(False), Subscription.removed_at.is_(None))
    )).scalar_one())
