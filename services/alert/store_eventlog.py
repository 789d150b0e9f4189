"""The SQL of the event log as ops read it: events (with their post and incident) and alerts, by time,
country, rule and state, in pages; the rest of a LogQuery is applied by `eventlog.keep`. Also rebuilds the
EventMessage of a stored post for `explain`, and reads the log back for conditions over time and dry runs.
Read-only."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert import eventlog
from services.alert.eventlog import LogQuery
from shared.messages import EventMessage
from shared.models import Alert, Event, Incident, IncidentReport, Post

logger = logging.getLogger(__name__)
PAGE = 500


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in sa.inspect(row).mapper.column_attrs}


def _event_time() -> Any:
    return sa.func.coalesce(Event.published_at, Event.classified_at)


def _events_statement(query: LogQuery) -> Any:
    at = _event_time()
    stmt = (sa.select(Event, Post, IncidentReport.incident_id)
            .outerjoin(Post, Post.id == Event.post_id)
            .outerjoin(IncidentReport, IncidentReport.event_id == Event.id)
            .order_by(at.desc(), Event.id))
    if query.since is not None:
        stmt = stmt.where(at >= query.since)
    if query.until is not None:
        stmt = stmt.where(at < query.until)
    if query.country:
        stmt = stmt.where(Event.country == query.country.upper())
    if query.is_event is not None:
        stmt = stmt.where(Event.is_event.is_(query.is_event))
    if query.text:
        # ILIKE on PostgreSQL; lower(x) LIKE lower(y) on SQLite (which folds ASCII letters only).
        pattern = eventlog.like_pattern(query.text)
        stmt = stmt.where(sa.or_(Post.title.ilike(pattern, escape="\\"), Post.text.ilike(pattern, escape="\\")))
    if query.rule is not None or query.state is not None:
        alerts = sa.select(Alert.incident_id)
        if query.rule is not None:
            alerts = alerts.where(Alert.rule_id == query.rule)
        if query.state is not None:
            alerts = alerts.where(Alert.state == query.state)
        stmt = stmt.where(IncidentReport.incident_id.in_(alerts))
    return stmt


async def _alerts_by_incident(session: AsyncSession, incident_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not incident_ids:
        return out
    rows = await session.execute(sa.select(Alert.incident_id, Alert.rule_id, Alert.state, Alert.id)
                                 .where(Alert.incident_id.in_(incident_ids)))
    for incident_id, rule_id, state, alert_id in rows:
        out.setdefault(incident_id, []).append({"rule_id": rule_id, "state": state, "id": alert_id})
    return out


async def _paged(
    session: AsyncSession, stmt: Any, query: LogQuery,
    to_records: Callable[[Sequence[Any]], Awaitable[list[dict[str, Any]]]],
) -> AsyncIterator[dict[str, Any]]:
    """Runs `stmt` a page at a time (an export of a year never sits in memory), keeps the records the
    query wants, and stops at its limit."""
    sent, offset = 0, 0
    while True:
        page = (await session.execute(stmt.limit(PAGE).offset(offset))).all()
        if not page:
            return
        offset += len(page)
        for record in await to_records(page):
            if eventlog.keep(record, query):
                yield record
                sent += 1
                if query.limit is not None and sent >= query.limit:
                    return


def events(session: AsyncSession, query: LogQuery) -> AsyncIterator[dict[str, Any]]:
    """Event records, newest first."""

    async def to_records(page: Sequence[Any]) -> list[dict[str, Any]]:
        alerts = await _alerts_by_incident(session, {i for _, _, i in page if i})
        return [
            eventlog.event_record(_columns(event), _columns(post) if post else None, incident_id,
                                  alerts.get(incident_id, []) if incident_id else [])
            for event, post, incident_id in page
        ]

    return _paged(session, _events_statement(query), query, to_records)


def _alerts_statement(query: LogQuery) -> Any:
    stmt = (sa.select(Alert, Incident).outerjoin(Incident, Incident.id == Alert.incident_id)
            .order_by(Alert.fired_at.desc(), Alert.id))
    if query.since is not None:
        stmt = stmt.where(Alert.fired_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Alert.fired_at < query.until)
    if query.rule is not None:
        stmt = stmt.where(Alert.rule_id == query.rule)
    if query.state is not None:
        stmt = stmt.where(Alert.state == query.state)
    if query.country:
        stmt = stmt.where(Incident.country == query.country.upper())
    return stmt


def alerts(session: AsyncSession, query: LogQuery) -> AsyncIterator[dict[str, Any]]:
    """Alert records, newest fired first."""

    async def to_records(page: Sequence[Any]) -> list[dict[str, Any]]:
        return [eventlog.alert_record(_columns(alert), _columns(incident) if incident else None)
                for alert, incident in page]

    return _paged(session, _alerts_statement(query), query, to_records)


def records(session: AsyncSession, query: LogQuery) -> AsyncIterator[dict[str, Any]]:
    return events(session, query) if query.kind == "events" else alerts(session, query)


async def post_texts(session: AsyncSession, event_ids: list[str]) -> dict[str, str]:
    """The text of each event's post (search results show a snippet of it)."""
    if not event_ids:
        return {}
    rows = await session.execute(sa.select(Event.id, Post.text).join(Post, Post.id == Event.post_id)
                                 .where(Event.id.in_(event_ids)))
    return {event_id: text or "" for event_id, text in rows}


# --- explain -----------------------------------------------------------------------------------------


async def stored_event(session: AsyncSession, post_id: str) -> tuple[EventMessage, dict[str, Any]] | None:
    """The EventMessage classify published for `post_id`, rebuilt from its `events` and `posts` rows, and the
    `events` row's columns; None when the post was never classified. A short id prefix (≥ 6) is accepted when
    it names one post."""
    event = await session.get(Event, post_id)
    if event is None and len(post_id) >= 6:
        found = (await session.scalars(sa.select(Event).where(Event.id.startswith(post_id)).limit(2))).all()
        event = found[0] if len(found) == 1 else None
    if event is None:
        return None
    post = await session.get(Post, event.post_id or event.id)
    message = EventMessage(
        event_id=event.id, post_id=event.post_id, source_id=event.source_id,
        url=post.url if post else None, title=post.title if post else "", text=post.text if post else "",
        lang=post.lang if post else None, published_at=event.published_at or (post.published_at if post else None),
        fetched_at=post.fetched_at if post else None, classified_at=event.classified_at,
        is_event=event.is_event, actors=event.actors or [], perpetrator=event.perpetrator,
        tactics=event.tactics or [], place=event.place, killed=event.killed, confidence=event.confidence,
        classifier=event.classifier, gazetteer=event.gazetteer, status=event.status,
        status_reason=event.status_reason, status_evidence=event.status_evidence or [],
        unresolved_place=event.unresolved_place,
    )
    return message, {**_columns(event), "title": message.title}


async def alerts_of_post(session: AsyncSession, post_id: str) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(the post's incident, {rule_id: alert columns}) of the alerts on that incident."""
    report = await session.get(IncidentReport, post_id)
    if report is None:
        return None, {}
    rows = await session.scalars(sa.select(Alert).where(Alert.incident_id == report.incident_id))
    return report.incident_id, {row.rule_id: _columns(row) for row in rows}


def _spans(label: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((label or {}).get("evidence") or [])


async def reports(session: AsyncSession, event_ids: list[str]) -> list[dict[str, Any]]:
    """The reports of an alert, in its order: each post's title, text and link, the evidence spans its
    labels came from (offsets into `title` or `text`), for the console to highlight, and its `origin`: the
    report it is a forward, repost or syndicated copy of (`via` "forward" or "text", with the `similarity`), or
    itself."""
    if not event_ids:
        return []
    rows = (await session.execute(
        sa.select(Event, Post, IncidentReport.origin_id, IncidentReport.similarity, IncidentReport.via)
        .outerjoin(Post, Post.id == Event.post_id)
        .outerjoin(IncidentReport, IncidentReport.event_id == Event.id)
        .where(Event.id.in_(event_ids)))).all()
    by_id = {event.id: (event, post, origin, similarity, via) for event, post, origin, similarity, via in rows}
    out = []
    for event_id in event_ids:
        if event_id not in by_id:
            continue
        event, post, origin, similarity, via = by_id[event_id]
        spans = []
        for actor in event.actors or []:
            spans += [{**s, "label": f"actor {actor['code']} ({actor.get('role')})"} for s in _spans(actor)]
        for tactic in event.tactics or []:
            spans += [{**s, "label": f"tactic {tactic['code']}"} for s in _spans(tactic)]
        if event.place:
            spans += [{**s, "label": f"place {event.place.get('name')}"} for s in _spans(event.place)]
        spans += [{**s, "label": f"status {event.status}"} for s in event.status_evidence or []]
        out.append({
            "event_id": event.id, "source_id": event.source_id, "published_at": _iso(event.published_at),
            "fetched_at": _iso(post.fetched_at) if post else None,
            "title": post.title if post else "", "text": post.text if post else "", "url": post.url if post else None,
            "lang": post.lang if post else None, "confidence": event.confidence, "spans": spans,
            "status": event.status, "status_reason": event.status_reason,
            "unresolved_place": event.unresolved_place if not event.place else None,
            "origin": origin or event.id, "similarity": similarity, "via": via,
        })
    return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _event_message(event: Event, post: Post | None) -> EventMessage:
    return EventMessage(
        event_id=event.id, post_id=event.post_id, source_id=event.source_id,
        url=post.url if post else None, title=post.title if post else "", text=post.text if post else "",
        lang=post.lang if post else None, published_at=event.published_at,
        fetched_at=post.fetched_at if post else None, classified_at=event.classified_at,
        is_event=event.is_event, actors=event.actors or [], perpetrator=event.perpetrator,
        tactics=event.tactics or [], place=event.place, killed=event.killed, confidence=event.confidence,
        classifier=event.classifier, gazetteer=event.gazetteer,
    )


async def event_message(session: AsyncSession, event_id: str) -> EventMessage | None:
    """The EventMessage classify published for a post, rebuilt from the `events` row and its post."""
    row = (await session.execute(
        sa.select(Event, Post).outerjoin(Post, Post.id == Event.post_id).where(Event.id == event_id)
    )).first()
    return _event_message(row[0], row[1]) if row else None


async def history(session: AsyncSession, *, since: datetime, until: datetime,
                  box: tuple[float, float, float, float] | None = None, country: str | None = None,
                  limit: int = 50_000) -> list[tuple[EventMessage, str | None]]:
    """Events of the log reported between `since` and `until` (published, else classified), oldest first,
    each with its incident id when the alert service assigned one; optionally only within a lat/lon box
    or a country (a coarse cut: callers test the exact area)."""
    at = sa.func.coalesce(Event.published_at, Event.classified_at)
    stmt = (
        sa.select(Event, Post, IncidentReport.incident_id)
        .outerjoin(Post, Post.id == Event.post_id)
        .outerjoin(IncidentReport, IncidentReport.event_id == Event.id)
        .where(Event.is_event.is_(True), at >= since, at <= until)
        .order_by(at, Event.id).limit(limit)
    )
    if box is not None:
        stmt = stmt.where(Event.lat >= box[0], Event.lon >= box[1], Event.lat <= box[2], Event.lon <= box[3])
    if country is not None:
        stmt = stmt.where(Event.country == country.upper())
    rows = (await session.execute(stmt)).all()
    out = []
    for event, post, incident_id in rows:
        try:
            out.append((_event_message(event, post), incident_id))
        except ValueError as exc:  # a row classify wrote under an older contract: skipped, not fatal
            logger.warning("event log row skipped event=%s reason=%r", event.id[:8], str(exc))
    return out


async def rule_alert_history(session: AsyncSession, rule_id: str) -> tuple[set[str], datetime | None]:
    """(incidents the rule alerted on, when the latest of them began): what `at_least` does not count twice."""
    rows = (await session.execute(
        sa.select(Alert.incident_id, Incident.first_seen_at)
        .join(Incident, Incident.id == Alert.incident_id).where(Alert.rule_id == rule_id)
    )).all()
    return {r.incident_id for r in rows}, max((r.first_seen_at for r in rows), default=None)
