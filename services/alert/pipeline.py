"""From one classified event to alert messages: incident, rules, alert versions, in one transaction.

    EventMessage ─▶ incident (join or open; row locked) ─▶ corroboration and severity (may only rise)
                 ─▶ rules the spatial index offers ─▶ condition over time (event log) ─▶ alert fired (v1) /
                    updated (v+1) ─▶ inhibition and silences decide `muted_by` ─▶ wf:alerts, after the commit

An alert is (re)published only when it is new or something material rose: more independent sources, a higher
corroboration level or severity, or a higher toll. Another report from the same source, a forward, repost or
syndicated copy of a report under another source (`copies.find_origin`), or the same report again, puts
nothing on the wire. Inhibition is decided here, over every rule alerting on the incident, while
the incident row is locked: the order in which reports arrive cannot let an inhibited alert through.
The outbox remembers the last version put on wf:alerts per alert, so a version committed but never
published (a crash or a Redis error between the commit and the publish) goes out with the next report
of its incident, at the latest when the failed event is redelivered.
"""

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands, copies, headline, store_alerts, store_eventlog, store_incidents, store_rules
from services.alert.conditions import condition_met
from services.alert.evaluate import Match
from services.alert.geofence import bounding_box
from services.alert.incidents import (
    ClusterPolicy,
    IncidentView,
    choose_incident,
    event_time,
    place_cells,
    place_incident,
)
from services.alert.lifecycle import LIVE, kind_of_report, next_version, pages_again, resolves, takes_updates
from services.alert.rules import RuleSpec
from services.alert.severity import (
    CORROBORATION,
    LEVELS,
    SeverityPolicy,
    corroboration,
    higher,
    incident_severity,
)
from services.alert.silences import SilenceView, muted_by
from services.alert.spatial import RuleIndex
from shared import ids, streams
from shared.db import session_scope
from shared.messages import AlertMessage, EventMessage, PlaceLabel, Span

logger = logging.getLogger(__name__)

LONG_TEXT = 50_000
"""Characters from which a report's text is signed in a worker thread."""


class Outbox(Protocol):
    """Where alert versions go (wf:alerts), and which version of each alert went there last."""

    async def publish(self, messages: list[AlertMessage], headers: list[dict[str, str]] | None = None) -> None:
        """Puts the versions on wf:alerts in one round trip, in order; `headers[i]`: the ids of what made
        `messages[i]` (its post and event), for the deliver stage's log lines."""

    async def published_versions(self, alert_ids: list[str]) -> dict[str, int]: ...


class Rulebook:
    """The enabled rules and their spatial index, reloaded when `rules_revision` changes (checked at most
    every `reload_s`), so a rule added from the CLI in another process applies without a restart."""

    def __init__(self, reload_s: float) -> None:
        self.reload_s = reload_s
        self._index = RuleIndex([])
        self._revision: tuple[int, str] | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self, session: AsyncSession) -> RuleIndex:
        """The rules in force. Events are handled concurrently: while one handler reloads, the others wait
        for it rather than take the index being replaced (after a restart, the empty one: found by
        bench/faults.py, an event evaluated against no rule at all)."""
        if time.monotonic() - self._checked < self.reload_s:
            return self._index
        async with self._lock:
            if time.monotonic() - self._checked >= self.reload_s:
                revision = await store_rules.rules_revision(session)
                if revision != self._revision:
                    rules = await commands.enabled_rules(session)
                    self._index = RuleIndex(rules)
                    self._revision = revision
                    logger.info("rules loaded enabled=%d ids=%s", len(rules), ",".join(r.id for r in rules) or "-")
                self._checked = time.monotonic()
        return self._index


def _evidence(event: EventMessage) -> list[Span]:
    spans = [s for a in event.actors if a.role != "denied" for s in a.evidence]
    spans += [s for t in event.tactics for s in t.evidence]
    if event.place:
        spans += event.place.evidence
    return spans[:20]


def _title(event: EventMessage, incident: IncidentView, current: str | None) -> str:
    """The most informative headline so far (`headline.better`): a report's own, tidied, else what and where."""
    where = (incident.place or {}).get("name")
    chosen = headline.better(current, headline.candidate(event.title, event.text), where)
    if chosen:
        return chosen
    return f"{', '.join(incident.tactics) or 'activity'} near {where or 'unknown place'}"


@dataclass(frozen=True)
class Levels:
    """How sure and how bad an incident is now."""

    corroboration: str
    severity: str
    severity_reasons: list[str]
    corroboration_reason: str | None = None
    independent_source_ids: list[str] | None = None


def incident_levels(kept_severity: str | None, kept_corroboration: str | None, incident: IncidentView,
                    source_ids: list[str], policy: SeverityPolicy, official: frozenset[str],
                    independent: list[str] | None = None) -> Levels:
    """The incident's corroboration and severity now, never below what they were (`kept_*`, as stored).
    `independent`: the sources of original reports (default: every source)."""
    severity, reasons = incident_severity(incident.tactics, incident.killed, incident.place, policy)
    kept = higher(kept_severity, severity, LEVELS) or severity
    if kept != severity:
        reasons = [*reasons, f"severity {kept} kept: it only rises"]
    independent = sorted(set(source_ids if independent is None else independent))
    now = corroboration(source_ids, official, independent)
    level = higher(kept_corroboration, now, CORROBORATION) or "single_source"
    why = copies.corroboration_reason(source_ids, independent)
    if official_ids := sorted(set(source_ids) & official):
        why += f"; official: {', '.join(official_ids)}"
    if level != now:
        why += f"; {level} kept: it only rises"
    return Levels(level, kept, reasons, why, independent)


def alert_message(
    rule: RuleSpec, incident: IncidentView, event: EventMessage, match: Match | None,
    previous: AlertMessage | None, event_ids: list[str], source_ids: list[str], now: datetime,
    levels: Levels | None = None, change: str | None = None,
) -> AlertMessage:
    """The next version of the alert of `rule` on `incident` (version 1 when there is no `previous`)."""
    matched = list(previous.matched) if previous else []
    matched += [r for r in (match.reasons if match else []) if r not in matched]
    confidence = max(event.confidence, previous.confidence if previous else 0.0)
    return AlertMessage(
        alert_id=ids.alert_id(rule.id, incident.id),
        version=previous.version + 1 if previous else 1,
        kind=kind_of_report(previous),
        rule_id=rule.id, rule_name=rule.name, severity=rule.severity,
        state=previous.state if previous else "firing",
        incident_id=incident.id,
        fired_at=previous.fired_at if previous else now, updated_at=now,
        event_ids=event_ids, source_ids=source_ids,
        title=_title(event, incident, previous.title if previous else None),
        actors=incident.actors, perpetrator=incident.perpetrator, tactics=incident.tactics,
        place=PlaceLabel.model_validate(incident.place) if incident.place else None,
        killed=incident.killed, confidence=confidence, matched=matched,
        evidence=list(previous.evidence) if previous and previous.evidence else _evidence(event),
        url=(previous.url if previous else None) or event.url,
        report_count=len(event_ids),
        corroboration=levels.corroboration if levels else None,  # type: ignore[arg-type]  # a CORROBORATION value
        corroboration_reason=levels.corroboration_reason if levels else None,
        independent_source_ids=levels.independent_source_ids if levels else None,
        incident_severity=levels.severity if levels else None,  # type: ignore[arg-type]  # a LEVELS value
        severity_reasons=levels.severity_reasons if levels else [],
        change=change, page_count=previous.page_count if previous else 0,
        disputed=previous.disputed if previous else None,
    )


def material_change(previous: AlertMessage, source_ids: list[str], killed: int | None,
                    levels: Levels | None = None, place: dict | None = None) -> str | None:
    """Why an alert deserves a new version, or None: more independent sources, a rise in corroboration or
    severity, a higher toll, or a place for an alert that had none (an officer added the village). A source
    that only copies another's report (`levels.independent_source_ids`) is not one more."""
    why = []
    if previous.place is None and place is not None:
        why.append(f"placed at {place.get('name')}")
    before = previous.source_ids if previous.independent_source_ids is None else previous.independent_source_ids
    now = source_ids if levels is None or levels.independent_source_ids is None else levels.independent_source_ids
    if len(now) > len(before):
        why.append(f"sources {len(before)}→{len(now)}")
    if levels is not None and previous.corroboration and levels.corroboration != previous.corroboration:
        why.append(f"{previous.corroboration}→{levels.corroboration}")
    if levels is not None and previous.incident_severity and levels.severity != previous.incident_severity:
        why.append(f"severity {previous.incident_severity}→{levels.severity}")
    if killed is not None and (previous.killed is None or killed > previous.killed):
        why.append(f"killed {previous.killed if previous.killed is not None else '?'}→{killed}")
    return "; ".join(why) or None


@dataclass(frozen=True)
class AlertContext:
    """Everything the alert decision looks at, loaded under the place lock after the incident was decided."""

    event: EventMessage
    incident: IncidentView
    levels: Levels
    event_ids: list[str]
    source_ids: list[str]
    rules: dict[str, RuleSpec]
    """Every enabled rule, by id."""
    matched: dict[str, Match]
    """The rules the event matches (filters and area), by id."""
    alerts: dict[str, AlertMessage]
    """The incident's alerts by rule id: their latest version, with the state (acknowledged…) as stored."""
    conditions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    """Each rule of `conditions_to_count`: its condition over time, met or not, and why."""
    silences: list[SilenceView] = field(default_factory=list)
    max_event_age: timedelta | None = None


@dataclass(frozen=True)
class AlertVersion:
    """One alert version to store and publish: `message.muted_by` says whether subscribers are paged."""

    rule: RuleSpec
    message: AlertMessage
    why: str


@dataclass(frozen=True)
class AlertDecision:
    versions: list[AlertVersion]
    skipped: list[tuple[str, str]]
    """(rule id, why not) for rules that matched but open no alert: worth a log line."""


def _opens(context: AlertContext, rule_id: str, now: datetime) -> str | None:
    """Why a matching rule without an alert on this incident opens none yet (None: it may open one)."""
    at = event_time(context.event)
    if context.max_event_age is not None and now - at > context.max_event_age:
        return f"too old to alert: published {at.isoformat(timespec='minutes')}, max age {context.max_event_age}"
    return None


def conditions_to_count(context: AlertContext, now: datetime) -> list[RuleSpec]:
    """The rules whose condition over time must be counted in the event log before deciding: those that
    would open a new alert on this incident."""
    return [context.rules[rid] for rid in sorted(context.matched)
            if rid in context.rules and rid not in context.alerts and context.rules[rid].condition is not None
            and _opens(context, rid, now) is None]


def decide_alerts(context: AlertContext, now: datetime) -> AlertDecision:
    """The alert versions one report makes (pure). A new alert per matching rule (if its condition over time
    is met); an update of an alert still in its rule's window when something material rose; each version
    muted by inhibition (another rule alerting on the incident inhibits it) or by a silence, or not at all."""
    incident, alerts = context.incident, context.alerts
    drafts: list[tuple[RuleSpec, AlertMessage, str]] = []
    skipped: list[tuple[str, str]] = []
    for rule_id in sorted(set(context.matched) | set(alerts)):
        rule = context.rules.get(rule_id)
        if rule is None:
            continue  # disabled or removed since it fired: its alert is left as it is
        previous = alerts.get(rule_id)
        match = context.matched.get(rule_id)
        if previous is None:
            assert match is not None
            if (why_not := _opens(context, rule_id, now)) is not None:
                skipped.append((rule_id, why_not))
                continue
            if rule.condition is not None:
                met, reason = context.conditions[rule_id]
                if not met:
                    skipped.append((rule_id, f"condition not met: {reason}"))
                    continue
                match = Match(match.rule_id, [*match.reasons, reason], match.distance_km)
            why = "new"
        else:
            if not takes_updates(previous.state, previous.fired_at, rule.window_delta, now):
                continue  # resolved, or past the rule's window: reports no longer update this alert
            why = material_change(previous, context.source_ids, incident.killed, context.levels,
                                  incident.place) or ""
            if not why:
                continue
        message = alert_message(rule, incident, context.event, match, previous, context.event_ids,
                                context.source_ids, now, context.levels, change=None if previous is None else why)
        drafts.append((rule, message, why))
    # Inhibition over every rule alerting on the incident, decided while its place is locked: the order in
    # which reports arrive cannot let an inhibited alert through.
    alerting = {rid for rid, a in alerts.items() if a.state in LIVE} | {m.rule_id for _, m, _ in drafts}
    versions = []
    for rule, message, why in drafts:
        inhibitors = sorted(rid for rid in alerting if rid != rule.id and rid in context.rules
                            and rule.id in (context.rules[rid].inhibits or ()))
        muted = f"inhibited by rule {inhibitors[0]}" if inhibitors else muted_by(context.silences, message, now)
        versions.append(AlertVersion(rule, message.model_copy(update={"muted_by": muted}), why))
    return AlertDecision(versions, skipped)


async def save_version(session: AsyncSession, message: AlertMessage, *, rule_id: str, incident_id: str,
                       severity: str, fired_at: datetime, pending: list | None = None, opened: Any = None) -> Any:
    """Stores one alert version as the lifecycle says: a resolved version ends the alert, a re-page is
    counted. `pending`, `opened`: the incident was opened in this transaction (`store_alerts.save_alert`).
    Returns the row."""
    return await store_alerts.save_alert(
        session, message.model_dump(mode="json", by_alias=True), alert_id=message.alert_id, rule_id=rule_id,
        incident_id=incident_id, severity=severity, version=message.version, fired_at=fired_at,
        updated_at=message.updated_at, muted_by=message.muted_by, resolved=resolves(message.kind),
        page_count=message.page_count if pages_again(message.kind) else None, pending=pending, opened=opened,
    )


# A denial may come a day after the attack it denies ("the army on Monday dismissed Sunday's reports").
DISPUTE_WINDOW = timedelta(hours=48)


class AlertPipeline:
    """`on_event` is the handler of the `alert` stage; `outbox` puts AlertMessages on wf:alerts."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 policy: ClusterPolicy, rulebook: Rulebook, severity: SeverityPolicy | None = None,
                 official_sources: frozenset[str] = frozenset(), max_event_age: timedelta | None = None,
                 copy_policy: copies.CopyPolicy | None = None) -> None:
        self.sessions, self.outbox, self.policy, self.rulebook = sessions, outbox, policy, rulebook
        self.copy_policy = copy_policy or copies.CopyPolicy()
        self.severity = severity or SeverityPolicy()
        self.official_sources = frozenset(official_sources)
        self.max_event_age = max_event_age

    async def _condition(self, session: AsyncSession, rule: RuleSpec, event: EventMessage,
                         incident_id: str) -> tuple[bool, str]:
        """The rule's condition over time, counted in the event log around the event."""
        assert rule.condition is not None
        at = event_time(event)
        area = rule.area
        box = bounding_box(area) if area is not None else None
        country = None
        if area is not None and box is None:
            country = area.region_key[0] if area.region_key else area.country
        past = await store_eventlog.history(session, since=at - rule.condition.span, until=at, box=box, country=country)
        alerted, last = await store_eventlog.rule_alert_history(session, rule.id)
        return condition_met(rule, event, incident_id, past, alerted=alerted, last_alerted_at=last)

    async def on_event(self, event: EventMessage) -> list[AlertMessage]:
        """Assigns the event to an incident, evaluates the candidate rules, creates or updates alerts, and
        publishes the new versions after the commit. Returns what was published.

        Load, decide (pure: `place_incident`, `incident_levels`, `decide_alerts`), apply: all in one
        transaction that first locks the event's place, so that N workers make one incident per attack."""
        return await self.on_events([event])

    async def on_events(self, events: list[EventMessage]) -> list[AlertMessage]:
        """`on_event` for a batch (issue 11): the events are decided one after the other, in the order given, in
        one transaction that first locks every place of the batch (cells in ascending order, so two workers
        cannot deadlock); what they publish goes out after its commit, every version in order, as one by one.
        Denials take a transaction each, as before. If the transaction fails, nothing of the batch is kept
        and the consumer hands the events over one by one."""
        out: list[AlertMessage] = []
        real: list[EventMessage] = []
        for event in events:
            if event.is_event:
                real.append(event)
            elif event.status == "denied" and event.tactics:
                out += await self.on_denial(event)
            else:
                logger.debug("skipped event=%s reason=\"not an event%s\"", event.event_id[:8],
                             f" ({event.status})" if event.status else "")
        if not real:
            return out
        now = datetime.now(UTC)
        # Signed before the place lock: linear in the text, capped at `copy_policy.max_chars`; a long text off
        # the event loop (a 1 MB post takes about 0.2 s).
        signatures = []
        for event in real:
            sign = functools.partial(copies.signature, event.title, event.text, self.copy_policy)
            signatures.append(await asyncio.to_thread(sign) if len(event.text) > LONG_TEXT else sign())
        staged: list[_Staged] = []
        async with session_scope(self.sessions) as session:
            await self._lock_places(session, real)
            # Loaded once for the batch, after the locks: what the places' previous holders committed, kept
            # current in memory as each event of the batch changes it (its rows are the session's own).
            times = [event_time(event) for event in real]
            pool = store_incidents.IncidentPool(
                await store_incidents.candidate_incidents_between(session, min(times), max(times), self.policy.window),
                await store_incidents.incidents_of_events(session, [event.event_id for event in real]),
                await store_incidents.existing_incidents(session, [ids.incident_id(e.event_id) for e in real]),
                view=IncidentView.of_row)
            batch = _Batch(await self.rulebook.current(session), await commands.active_silences(session, now))
            for event, signature in zip(real, signatures, strict=True):
                staged.append(await self._stage(session, event, signature, now, pool, batch))
            await store_incidents.add_after(session, batch.pending)
        # Publish only after the commit, every version in the order made, as one by one would: a subscriber sees
        # each material change (`change` says what rose since the version before), however the reports were
        # batched. A version committed earlier but never published goes first; none goes twice.
        sent: set[tuple[str, int]] = set()
        fresh, made_by = [], []
        for event, step in zip(real, staged, strict=True):
            for message in step.out:
                if (message.alert_id, message.version) not in sent:
                    sent.add((message.alert_id, message.version))
                    fresh.append(message)
                    made_by.append({"post_id": event.post_id, "event_id": event.event_id,
                                    "alert_id": message.alert_id})
        await self.outbox.publish(fresh, made_by)
        for step in staged:
            step.log(len(real))
        return out + fresh

    async def _lock_places(self, session: AsyncSession, events: list[EventMessage]) -> None:
        """First in the transaction: waits for any worker deciding about a place near one of these. Two reports
        that may join one incident are at most twice its radius apart (each within the radius of its centre),
        so the lock covers that disc around each event: neither a second "open" nor a lost merge. READ
        COMMITTED (PostgreSQL's default) matters: what is read after the lock includes what the previous
        holder committed. One call for the batch: one BEGIN IMMEDIATE on SQLite, every cell once on
        PostgreSQL, in ascending order."""
        cells = sorted({cell for event in events for cell in place_cells(
            event.place.lat if event.place else None, event.place.lon if event.place else None,
            2 * self.policy.radius_km)})
        await store_incidents.lock_places(session, cells)

    async def _stage(self, session: AsyncSession, event: EventMessage, signature: bytes | None, now: datetime,
                     pool: store_incidents.IncidentPool, batch: "_Batch") -> "_Staged":
        """One event's load, decide and apply, in the caller's transaction (its places locked). An incident the
        batch opens (this event or an earlier one) is read from memory (`_Opened`): its rows are the session's
        own, and go in with the batch's next flush."""
        started = time.perf_counter()
        origin = copies.Origin(event.event_id)
        index = batch.rules

        known_row = pool.of_event(event.event_id)
        known = IncidentView.of_row(known_row) if known_row else None
        candidates = [] if known else pool.candidates(event_time(event), self.policy.window)
        change = place_incident(event, known, candidates, self.policy)
        incident = change.incident
        new = change.kind == "open" and pool.is_new(incident.id)
        opened = batch.opened.get(incident.id)
        columns = incident.columns() if change.kind == "known" else {**incident.columns(), "last_report_at": now}
        row = await store_incidents.save_incident(session, incident.id, columns, new=new,
                                                  opened=opened.row if opened else None)
        if new:
            opened = batch.opened[incident.id] = _Opened(row)
        pool.saved(row, event.event_id)
        added = False
        if change.kind != "known":
            # Compared with this incident's reports only: bounded by the incident, not the whole log.
            stored = store_incidents.in_arrival_order(opened.reports) if opened else \
                await store_incidents.reports_of_incidents(session, [incident.id])
            others = [copies.Report(r.event_id, r.source_id, r.reported_at or r.added_at, r.signature, r.origin_id,
                                    r.url, r.forward_of, tuple(r.cites or ())) for r in stored]
            report = copies.Report(
                event.event_id, event.source_id, event_time(event), signature, url=copies.canonical_url(event.url),
                forward_of=copies.forward_of(event.forwarded_from),
                cites=copies.citations(event.text, self.copy_policy.max_chars))
            origin = copies.find_origin(report, others, self.copy_policy)
            fields = {"reported_at": event_time(event), "signature": signature, "origin_id": origin.origin,
                      "similarity": origin.similarity, "via": origin.via, "url": report.url,
                      "forward_of": report.forward_of, "cites": report.cites}
            if opened:  # its event had no report (`incidents_of_events`), and no other transaction sees it
                opened.reports.append(store_incidents.report_row(incident.id, event.event_id, event.source_id,
                                                                 **fields))
                batch.pending.append(opened.reports[-1])
                added = True
                store_incidents.repoint_rows(opened.reports, origin.repoint, origin.vias)
            else:
                # False only if this report was recorded meanwhile (a re-classification elsewhere): a redelivery.
                added = await store_incidents.add_report(session, incident.id, event.event_id, event.source_id,
                                                         **fields)
                if added and origin.repoint:
                    await store_incidents.repoint_origins(session, incident.id, origin.repoint, origin.vias)
        if opened:
            stored = store_incidents.in_arrival_order(opened.reports)
            event_ids, source_ids = [r.event_id for r in stored], sorted({r.source_id for r in stored})
            reports = [(r.event_id, r.source_id, r.origin_id) for r in stored]
            row.report_count, row.source_count = len(event_ids), len(source_ids)
        else:
            event_ids, source_ids, reports = await store_incidents.incident_reports(session, incident.id)
        independent = copies.independent_sources(reports)
        levels = incident_levels(row.severity, row.corroboration, incident, source_ids, self.severity,
                                 self.official_sources, independent)
        if (row.severity, row.corroboration) != (levels.severity, levels.corroboration):
            row.version = (row.version or 1) + (row.severity is not None)
            if row.severity is not None:  # a rise (both only rise), not the first levels: the digest's
                row.escalated_at = now    # "escalating" section
        row.severity, row.corroboration = levels.severity, levels.corroboration

        if opened:  # what the batch made of it goes out after the commit, every version in order
            rows, unsent = dict(opened.alerts), []
        else:
            rows = await store_alerts.alerts_of_incident(session, incident.id)
            published = await self.outbox.published_versions([a.id for a in rows.values()])
            unsent = [AlertMessage.model_validate(a.payload) for a in rows.values()
                      if a.version > published.get(a.id, 0)]
        context = AlertContext(
            event=event, incident=incident, levels=levels, event_ids=event_ids, source_ids=source_ids,
            rules={rule.id: rule for rule in index.rules},
            matched={rule.id: match for rule, match in index.matching(event, now)},
            alerts={rid: AlertMessage.model_validate(a.payload).model_copy(update={"state": a.state})
                    for rid, a in rows.items()},
            max_event_age=self.max_event_age,
        )
        if context.matched or context.alerts:
            if conditions_to_count(context, now):  # counted in the log: the batch's new rows must be in it
                await store_incidents.add_after(session, batch.pending)
            context = replace(
                context, silences=batch.silences,
                conditions={rule.id: await self._condition(session, rule, event, incident.id)
                            for rule in conditions_to_count(context, now)},
            )
        decision = decide_alerts(context, now)

        for rule_id, why_not in decision.skipped:
            logger.info("no alert rule=%s event=%s incident=%s reason=\"%s\"", rule_id, event.event_id[:8],
                        incident.id[:8], why_not)
        for version in decision.versions:
            message = version.message
            saved = await save_version(
                session, message, rule_id=version.rule.id, incident_id=incident.id, severity=version.rule.severity,
                fired_at=message.fired_at, pending=batch.pending if opened else None,
                opened=opened.alerts.get(version.rule.id) if opened else None)
            if opened:
                opened.alerts[version.rule.id] = saved
            logger.info(
                "alert %s rule=%s alert=%s incident=%s v=%d sources=%d %s/%s why=\"%s\"%s",
                message.kind, version.rule.id, message.alert_id[:8], incident.id[:8], message.version,
                len(source_ids), levels.corroboration, levels.severity,
                version.why if message.version > 1 else "; ".join(message.matched),
                f" muted=\"{message.muted_by}\"" if message.muted_by else "",
                extra={"alert_id": message.alert_id, "version": message.version, "rule_id": version.rule.id,
                       "incident_id": incident.id, "kind": message.kind},
            )
        out = [version.message for version in decision.versions]
        fresh = {m.alert_id for m in out}
        unsent = [m for m in unsent if m.alert_id not in fresh]
        for message in unsent:
            logger.warning("alert republished alert=%s v=%d reason=\"committed, not yet on %s\"",
                           message.alert_id[:8], message.version, streams.ALERTS)
        out = unsent + out
        copied = "" if not origin.copy_of else f" copy_of={origin.copy_of[:8]} via={origin.via}" + (
            f" sim={origin.similarity:.2f}" if origin.similarity is not None else "")
        line = (
            "evaluated event=%s incident=%s %s%s reports=%d sources=%d independent=%d rules=%d alerts=%d %.0fms",
            event.event_id[:8], incident.id[:8], change.kind if added else "known", copied, len(event_ids),
            len(source_ids), len(independent), len(index.rules), len(out), (time.perf_counter() - started) * 1000,
        )
        return _Staged(out, line)

    async def on_denial(self, event: EventMessage) -> list[AlertMessage]:
        """A report that the attack did not happen: the open incident it is about (same tactic or perpetrator,
        same place, within a day or two) is marked disputed, and each of its alerts gets one update saying so.
        It opens nothing and pages no one by itself."""
        now = datetime.now(UTC)
        reason = event.status_reason or "a later report denies it"
        out: list[AlertMessage] = []
        window = max(self.policy.window, DISPUTE_WINDOW)
        async with session_scope(self.sessions) as session:
            candidates = [IncidentView.of_row(r)
                          for r in await store_incidents.candidate_incidents(session, event_time(event), window)]
            incident = choose_incident(candidates, event, ClusterPolicy(self.policy.radius_km, window))
            if incident is None:
                logger.info("denial disputes no incident event=%s reason=\"%s\"", event.event_id[:8], reason)
                return []
            if not await store_incidents.dispute_incident(session, incident.id, event.event_id, reason, now):
                return []
            silences = await commands.active_silences(session, now)
            for rule_id, row in (await store_alerts.alerts_of_incident(session, incident.id)).items():
                if row.state not in LIVE:
                    continue
                message = next_version(AlertMessage.model_validate(row.payload), row.version, row.state, now,
                                       "updated", change=f"disputed: {reason}", disputed=reason)
                muted = muted_by(silences, message, now)
                message = message.model_copy(update={"muted_by": muted})
                await save_version(session, message, rule_id=rule_id, incident_id=incident.id,
                                   severity=row.severity, fired_at=message.fired_at)
                logger.info("alert disputed rule=%s alert=%s incident=%s v=%d by=%s reason=\"%s\"", rule_id,
                            message.alert_id[:8], incident.id[:8], message.version, event.event_id[:8], reason)
                out.append(message)
        await self.outbox.publish(out)
        return out


@dataclass
class _Opened:
    """An incident the batch opened: its row and the rows of its reports and alerts (by rule id). No other
    transaction sees them before the commit, so they are read and changed here, never read from the database."""

    row: Any
    reports: list = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Batch:
    """Read once per batch: the rules in force and the active silences; and what the batch adds."""

    rules: RuleIndex
    silences: list[SilenceView]
    pending: list = field(default_factory=list)
    """Reports and alerts of incidents the batch opened, inserted after them (`store_incidents.add_after`)."""
    opened: dict[str, _Opened] = field(default_factory=dict)
    """The incidents the batch opened, by id."""


@dataclass(frozen=True)
class _Staged:
    """What one event of a batch decided: the versions to publish after the commit, and its log line."""

    out: list[AlertMessage]
    line: tuple[Any, ...]

    def log(self, batch: int) -> None:
        fmt, *args = self.line
        logger.info(fmt + (f" batch={batch}" if batch > 1 else ""), *args)


def cluster_policy(radius_km: float, window_s: float) -> ClusterPolicy:
    return ClusterPolicy(radius_km=radius_km, window=timedelta(seconds=window_s))
