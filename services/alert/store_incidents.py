"""The SQL of incidents: the place lock, the incident rows and their reports, resolution and disputes.
Rows in, rows out (`IncidentView.of_row` turns a row into what clustering looks at). Callers own the
transaction."""

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.store_base import insert_or_ignore
from shared.models import Incident, IncidentReport, state_is, utcnow


async def incident_of_event(session: AsyncSession, event_id: str) -> Incident | None:
    """The incident a report was already assigned to (a redelivered or re-classified event)."""
    report = await session.get(IncidentReport, event_id)
    if report is None:
        return None
    return await session.get(Incident, report.incident_id)


async def candidate_incidents(session: AsyncSession, at: datetime, window: timedelta) -> list[Incident]:
    """Open incidents whose time span comes within `window` of `at`."""
    rows = await session.scalars(
        sa.select(Incident).where(
            state_is(Incident.state, "open"),
            Incident.last_seen_at >= at - window,
            Incident.first_seen_at <= at + window,
        )
    )
    return list(rows.all())


async def incidents_of_events(session: AsyncSession, event_ids: list[str]) -> dict[str, Incident]:
    """`incident_of_event` for many, in one query: event id -> its incident, for the reports already recorded."""
    if not event_ids:
        return {}
    rows = await session.execute(
        sa.select(IncidentReport.event_id, Incident)
        .join(Incident, Incident.id == IncidentReport.incident_id)
        .where(IncidentReport.event_id.in_(event_ids))
    )
    return {event_id: incident for event_id, incident in rows}


async def candidate_incidents_between(session: AsyncSession, first: datetime, last: datetime, window: timedelta
                                      ) -> list[Incident]:
    """`candidate_incidents` for every time from `first` to `last`, in one query."""
    rows = await session.scalars(
        sa.select(Incident).where(
            state_is(Incident.state, "open"),
            Incident.last_seen_at >= first - window,
            Incident.first_seen_at <= last + window,
        )
    )
    return list(rows.all())


class IncidentPool:
    """A batch's incidents in memory: the open ones whose span comes near the batch's times, and those its
    events were already assigned to; updated as each event of the batch saves its incident. `view` turns a row
    into what the caller compares (`IncidentView.of_row`): once per row and save, not once per event."""

    def __init__(self, candidates: list[Incident], of_events: dict[str, Incident], existing: set[str],
                 view: Callable[[Incident], Any] = lambda row: row) -> None:
        self._view = view
        # id -> (open?, first_seen_at, last_seen_at, view): plain values, as `candidates` compares them for every
        # event of the batch against every row (ORM attribute reads cost ten times as much)
        self._rows = {row.id: self._entry(row) for row in candidates}
        self._of_events = dict(of_events)
        self._existing = set(existing) | set(self._rows) | {row.id for row in self._of_events.values()}

    def _entry(self, row: Incident) -> tuple[bool, datetime, datetime, Any]:
        return row.state == "open", row.first_seen_at, row.last_seen_at, self._view(row)

    def is_new(self, incident_id: str) -> bool:
        """No row has this id, in the database (`existing_incidents` at load) or saved by the batch so far: an
        incident opened now has no report and no alert yet."""
        return incident_id not in self._existing

    def of_event(self, event_id: str) -> Incident | None:
        return self._of_events.get(event_id)

    def candidates(self, at: datetime, window: timedelta) -> list[Any]:
        """As `store_incidents.candidate_incidents`, as `view` made them: open incidents whose span comes within
        `window` of `at`."""
        low, high = at - window, at + window
        return [view for is_open, first, last, view in self._rows.values() if is_open and last >= low and first <= high]

    def saved(self, row: Incident, event_id: str) -> None:
        self._rows[row.id] = self._entry(row)
        self._existing.add(row.id)
        self._of_events[event_id] = row


def _cell_lock_key(cell: tuple[int, int]) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks (a collision only makes two cells take turns)."""
    digest = hashlib.sha256(f"watchfloor:incident-cell:{cell[0]}:{cell[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_places(session: AsyncSession, cells: list[tuple[int, int]]) -> None:
    """Makes workers deciding about the same place take turns, until this transaction ends. Call it first in
    the transaction, before anything is read: what is read after it cannot change before the commit.

    PostgreSQL: a transaction-scoped advisory lock per cell, taken in ascending key order (two workers
    locking overlapping cells cannot deadlock). SQLite has one writer: BEGIN IMMEDIATE takes the write lock
    at once (a deferred transaction would read first, and two processes could both decide to open)."""
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted({_cell_lock_key(c) for c in cells})
        # One round trip for the batch: unnest yields the array in its order, and the locks are taken row by
        # row as the rows are produced.
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                              {"keys": keys})
    else:
        await session.execute(sa.text("BEGIN IMMEDIATE"))


async def lock_incident(session: AsyncSession, incident_id: str) -> Incident | None:
    """The incident row, locked until the transaction ends (PostgreSQL; SQLite has one writer anyway): every
    decision about its alerts (versions, inhibition) is taken by one transaction at a time."""
    return await session.get(Incident, incident_id, with_for_update=True, populate_existing=True)


async def dispute_incident(session: AsyncSession, incident_id: str, event_id: str, reason: str,
                           at: datetime) -> bool:
    """Marks the incident disputed by the denial `event_id`; False if it already was (a redelivery, or a
    second denial: one update says it is disputed, not one per denial)."""
    row = await lock_incident(session, incident_id)
    if row is None or row.disputed_at is not None:
        return False
    row.disputed_at, row.disputed_by, row.dispute_reason = at, event_id, reason
    await session.flush()
    return True


async def save_incident(session: AsyncSession, incident_id: str, columns: Mapping[str, Any], *,
                        new: bool = False, opened: Incident | None = None) -> Incident:
    """Creates (open) or updates the incident row with `columns` (`IncidentView.columns()`), locked. `new`: the
    caller knows no row has this id (`existing_incidents`), so none is read; the INSERT goes with the session's
    next flush, in one statement with the batch's other new rows. `opened`: the row of an incident this
    transaction opened: no other sees it, so it is updated as it is, nothing read or locked."""
    row = opened if opened is not None else None if new else await lock_incident(session, incident_id)
    if row is None:
        row = Incident(id=incident_id, state="open", report_count=0, source_count=0, version=1)
        session.add(row)
    for name, value in columns.items():
        setattr(row, name, value)
    if not new and opened is None:
        await session.flush()
    return row


async def add_after(session: AsyncSession, rows: list[Any]) -> None:
    """Inserts rows that refer to incidents pending in the session (`add_report`'s and `save_alert`'s `pending`)
    after those: the incidents first, then these, each table in one statement."""
    if rows:
        await session.flush()
        session.add_all(rows)
        rows.clear()
        await session.flush()


async def existing_incidents(session: AsyncSession, incident_ids: list[str]) -> set[str]:
    """Which of these incident ids have a row: one query for a batch."""
    if not incident_ids:
        return set()
    return set((await session.scalars(sa.select(Incident.id).where(Incident.id.in_(incident_ids)))).all())


def report_row(incident_id: str, event_id: str, source_id: str, *, reported_at: datetime | None = None,
               signature: bytes | None = None, origin_id: str | None = None, similarity: float | None = None,
               via: str | None = None, url: str | None = None, forward_of: str | None = None,
               cites: Sequence[str] = ()) -> IncidentReport:
    """A report of an incident opened in this transaction, as a row for the caller to add after the incident
    is inserted (`add_after`: the unit of work does not order rows by foreign keys it has no relationship for).
    The event has no report yet (`incidents_of_events`)."""
    return IncidentReport(
        event_id=event_id, incident_id=incident_id, source_id=source_id, added_at=utcnow(), reported_at=reported_at,
        signature=signature, origin_id=origin_id, similarity=similarity, via=via, url=url, forward_of=forward_of,
        cites=list(cites) or None)


async def add_report(session: AsyncSession, incident_id: str, event_id: str, source_id: str, *,
                     reported_at: datetime | None = None, signature: bytes | None = None,
                     origin_id: str | None = None, similarity: float | None = None, via: str | None = None,
                     url: str | None = None, forward_of: str | None = None, cites: Sequence[str] = ()) -> bool:
    """Links a report to its incident, with where it comes from (`origin_id`, the report it copies or itself,
    found `via` text or forward) and its canonical address, what it forwards and the links it cites; False when
    it already was (unique per event)."""
    stmt = insert_or_ignore(session, IncidentReport).values(
        event_id=event_id, incident_id=incident_id, source_id=source_id, added_at=utcnow(), reported_at=reported_at,
        signature=signature, origin_id=origin_id, similarity=similarity, via=via, url=url, forward_of=forward_of,
        cites=list(cites) or None,
    ).on_conflict_do_nothing(index_elements=["event_id"])
    return bool((await session.execute(stmt)).rowcount)


def in_arrival_order(reports: Sequence[IncidentReport]) -> list[IncidentReport]:
    """As `reports_of_incidents` orders them."""
    return sorted(reports, key=lambda r: (r.added_at, r.event_id))


def repoint_rows(reports: Sequence[IncidentReport], origins: Mapping[str, str],
                 vias: Mapping[str, str] | None = None) -> None:
    """`repoint_origins` on rows the session holds (an incident this transaction opened)."""
    for r in reports:
        if r.event_id in origins:
            r.origin_id = origins[r.event_id]
            if vias and r.event_id in vias:
                r.via = vias[r.event_id]


async def reports_of_incidents(session: AsyncSession, incident_ids: list[str]) -> list[IncidentReport]:
    """Every report of these incidents, in arrival order (signatures included)."""
    if not incident_ids:
        return []
    return list((await session.scalars(
        sa.select(IncidentReport).where(IncidentReport.incident_id.in_(incident_ids))
        .order_by(IncidentReport.added_at, IncidentReport.event_id)
    )).all())


async def report_origins(session: AsyncSession, incident_ids: list[str]
                         ) -> list[tuple[str, str, str, str | None, float | None, str | None]]:
    """(incident id, event id, source id, origin id, similarity, via) of every report of these incidents, in
    arrival order."""
    if not incident_ids:
        return []
    rows = await session.execute(
        sa.select(IncidentReport.incident_id, IncidentReport.event_id, IncidentReport.source_id,
                  IncidentReport.origin_id, IncidentReport.similarity, IncidentReport.via)
        .where(IncidentReport.incident_id.in_(incident_ids))
        .order_by(IncidentReport.added_at, IncidentReport.event_id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]  # Row -> the declared tuple


async def repoint_origins(session: AsyncSession, incident_id: str, origins: Mapping[str, str],
                          vias: Mapping[str, str] | None = None) -> None:
    """Sets the origin of reports of the incident: a report published earlier than the one they copied came in,
    or one they forward. `vias` says how an original that becomes a copy was found to be one."""
    for event_id, origin_id in origins.items():
        values: dict[str, Any] = {"origin_id": origin_id}
        if vias and event_id in vias:
            values["via"] = vias[event_id]
        await session.execute(
            sa.update(IncidentReport)
            .where(IncidentReport.incident_id == incident_id, IncidentReport.event_id == event_id)
            .values(**values).execution_options(synchronize_session=False)
        )


async def incident_reports(session: AsyncSession, incident_id: str
                           ) -> tuple[list[str], list[str], list[tuple[str, str, str | None]]]:
    """(event ids in arrival order, distinct source ids, (event id, source id, origin id) of each report) of an
    incident; also refreshes its counters."""
    rows = (await session.execute(
        sa.select(IncidentReport.event_id, IncidentReport.source_id, IncidentReport.origin_id)
        .where(IncidentReport.incident_id == incident_id)
        .order_by(IncidentReport.added_at, IncidentReport.event_id)
    )).all()
    events = [r.event_id for r in rows]
    sources = sorted({r.source_id for r in rows})
    row = await session.get(Incident, incident_id)
    if row is not None:
        row.report_count, row.source_count = len(events), len(sources)
    return events, sources, [(r.event_id, r.source_id, r.origin_id) for r in rows]


async def list_incidents(session: AsyncSession, *, state: str | None = None, since: datetime | None = None,
                         limit: int = 200) -> list[Incident]:
    """Newest first (by last report); `state` is open or resolved; `since` compares with the last report."""
    stmt = sa.select(Incident).order_by(Incident.last_seen_at.desc(), Incident.id).limit(limit)
    if state is not None:
        stmt = stmt.where(Incident.state == state)
    if since is not None:
        stmt = stmt.where(Incident.last_seen_at >= since)
    return list((await session.scalars(stmt)).all())


async def get_incident(session: AsyncSession, incident_id: str) -> Incident | None:
    return await session.get(Incident, incident_id)


async def quiet_incidents(session: AsyncSession, quiet_since: datetime, limit: int = 100) -> list[str]:
    """Open incidents whose latest report arrived before `quiet_since`, longest quiet first: a walk of the open
    incidents' index (`ix_incidents_open_quiet`) that stops at `quiet_since`."""
    rows = await session.scalars(
        sa.select(Incident.id)
        .where(state_is(Incident.state, "open"), Incident.last_report_at < quiet_since)
        .order_by(Incident.last_report_at).limit(limit)
    )
    return list(rows.all())


async def resolve_incident(session: AsyncSession, incident_id: str, now: datetime) -> Incident | None:
    """open -> resolved (locked); None when another sweeper got there first."""
    row = await lock_incident(session, incident_id)
    if row is None or row.state != "open":
        return None
    row.state, row.resolved_at, row.version = "resolved", now, row.version + 1
    return row
