"""The only SQL of the classify service: one `events` row per post, overwritten on re-classification."""

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.messages import EventMessage, PostMessage
from shared.models import Event, Post


def _row(event: EventMessage) -> dict[str, Any]:
    place = event.place
    return {
        "id": event.event_id,
        "post_id": event.post_id,
        "source_id": event.source_id,
        "is_event": event.is_event,
        "actors": [a.model_dump(mode="json") for a in event.actors],
        "perpetrator": event.perpetrator,
        "tactics": [t.model_dump(mode="json") for t in event.tactics],
        "place": place.model_dump(mode="json") if place else None,
        "lat": place.lat if place else None,
        "lon": place.lon if place else None,
        "country": place.country if place else None,
        "killed": event.killed,
        "status": event.status,
        "status_reason": event.status_reason,
        "status_evidence": [s.model_dump(mode="json") for s in event.status_evidence],
        "unresolved_place": event.unresolved_place.model_dump(mode="json") if event.unresolved_place else None,
        "confidence": event.confidence,
        "classifier": event.classifier,
        "gazetteer": event.gazetteer,
        "published_at": event.published_at,
        "classified_at": event.classified_at,
    }


@functools.cache
def _upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (id) DO UPDATE of every column, built once per dialect (the statement is the same
    for every batch: the rows go as parameters). On the table, not the mapped class: a Core statement, so the
    ORM's bulk-insert machinery (a copy of the statement and its cache key per batch) is not paid per batch."""
    table = Event.__table__
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    columns = [c.name for c in table.columns if c.name != "id"]
    return stmt.on_conflict_do_update(index_elements=[table.c.id], set_={k: stmt.excluded[k] for k in columns})


async def upsert_event(session: AsyncSession, event: EventMessage) -> None:
    """Inserts the event, or overwrites the row of the same id (a redelivery or a new classifier)."""
    await upsert_events(session, [event])


async def upsert_events(session: AsyncSession, events: list[EventMessage]) -> None:
    """`upsert_event` for many: one statement, its rows sent together (one executemany, one round trip). An id
    given twice keeps its last event (one statement may not touch a row twice)."""
    rows = list({e.event_id: _row(e) for e in events}.values())
    if rows:
        connection = await session.connection()  # Core: the session's transaction, without the ORM's bulk path
        await connection.execute(_upsert(connection.dialect.name), rows)


async def posts(session: AsyncSession, ids: list[str]) -> list[PostMessage]:
    """The stored posts of `ids` as PostMessages, to classify again (the whole text was kept)."""
    if not ids:
        return []
    rows = await session.scalars(sa.select(Post).where(Post.id.in_(ids)))
    return [
        PostMessage(post_id=p.id, source_id=p.source_id, url=p.url, guid=p.guid, title=p.title or "",
                    text=p.text or "", lang=p.lang, published_at=p.published_at, fetched_at=p.fetched_at)
        for p in rows
    ]


async def post_ids_classified_since(session: AsyncSession, since: datetime, after_id: str = "",
                                    limit: int = 500) -> list[str]:
    """Ids of the posts classified since `since`, after `after_id` (keyset pages): what to publish again when
    Redis lost its streams."""
    rows = await session.scalars(
        sa.select(Event.post_id).where(Event.classified_at >= since, Event.post_id > after_id)
        .group_by(Event.post_id).order_by(Event.post_id).limit(limit)
    )
    return list(rows)
