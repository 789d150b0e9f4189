"""HTTP routes of the alert service: the console, alerts, incidents, silences, rules, the event log, tokens.

Every `/api` route needs a bearer token whose role is high enough (services/alert/access.py); the console page
itself holds no data and asks for a token.

    viewer   GET  /api/whoami  /api/alerts  /api/alerts/stream (?token=)  /api/alerts/{id}  /api/incidents
                  /api/incidents/{id}  /api/silences  /api/rules  /api/subscriptions  /api/events (?q=)
                  /api/export  /api/explain/{post}  /api/audit  /api/map/countries  /api/map/admin1
                  /api/map/places (?bbox=)  /api/places  /api/places/unresolved  /api/source-alerts
                                                                        POST /api/rules/dry-run (YAML)
    officer  POST /api/alerts/{id}/ack  /api/silences  /api/silences/preview      DELETE /api/silences/{id}
             GET  /api/deliveries       POST /api/deliveries/replay   (services/alert/api_deliveries.py)
    admin    POST /api/rules (YAML)  /api/rules/{id}/enable|disable  /api/subscriptions  /api/tokens  /api/places
             GET  /api/tokens                                                       DELETE /api/tokens/{id}
The full reference is docs/console.md.
"""

import asyncio
import functools
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import (
    basemap,
    commands,
    copies,
    dryrun,
    eventlog,
    store_alerts,
    store_deliveries,
    store_eventlog,
    store_incidents,
    store_rules,
    store_source_alerts,
    store_subscriptions,
)
from services.alert.api_deliveries import build_deliveries_router
from services.alert.channels import EMAIL, channel_of
from services.alert.eventlog import LogQuery, QueryError
from services.alert.rules import RuleError, load_rule_text, parse_rule
from services.alert.webhook import redact_url
from shared import placebook, store_access, streams
from shared.access import (
    TICKET_TTL_S,
    Access,
    AccessError,
    Caller,
    allows,
    check_role,
    new_token,
    redact_access_log,
    refusal,
)
from shared.db import session_scope
from shared.gazetteer import load_gazetteer
from shared.models import Alert, ApiToken, AuditEntry, Incident, OfficerPlace, utcnow
from shared.settings import CommonSettings
from shared.urlguard import UrlPolicy, UrlRefused, check_url

logger = logging.getLogger(__name__)
Decode = Callable[[bytes], bytes]
"""Turns a wf:alerts entry's `__data__` field into the JSON body (the broker's wire format)."""
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
SEARCH_LIMIT = 500
"""Most results of one text search of the event log."""
MAP_PLACES_LIMIT = 200
"""Most towns one map view asks for: more would not fit as labels anyway."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _alert_json(row: Alert) -> dict[str, Any]:
    return {
        **row.payload,
        "state": row.state,
        "version": row.version,
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": _iso(row.acknowledged_at),
        "ack_note": row.ack_note,
        "resolved_at": _iso(row.resolved_at),
        "muted_by": row.muted_by or row.payload.get("muted_by"),
        "page_count": row.page_count,
    }


def _silence_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "matchers": row.matchers, "reason": row.reason, "created_by": row.created_by,
            "created_at": _iso(row.created_at), "starts_at": _iso(row.starts_at), "ends_at": _iso(row.ends_at),
            "expired_at": _iso(row.expired_at), "expired_by": row.expired_by}


def _token_json(row: ApiToken) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "role": row.role, "prefix": row.prefix, "created_by": row.created_by,
            "created_at": _iso(row.created_at), "last_used_at": _iso(row.last_used_at),
            "revoked_at": _iso(row.revoked_at)}


def _place_json(row: OfficerPlace) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "lat": row.lat, "lon": row.lon, "country": row.country,
            "admin1": row.admin1, "kind": row.kind, "aliases": row.aliases, "source": row.source,
            "created_by": row.created_by, "created_at": _iso(row.created_at)}


def _audit_json(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, "at": _iso(row.at), "actor": row.actor, "action": row.action,
            "target_kind": row.target_kind, "target_id": row.target_id, "detail": row.detail}


def _incident_json(row: Incident, reports: list[tuple[str, str, str | None, float | None, str | None]]
                   ) -> dict[str, Any]:
    """An incident with its reports grouped by origin; `status` is open, resolved or disputed (a later report
    denies the attack: the incident stays open or resolved, ops decide)."""
    return {
        "id": row.id, "state": row.state, "status": "disputed" if row.disputed_at else row.state,
        "first_seen_at": _iso(row.first_seen_at), "last_seen_at": _iso(row.last_seen_at),
        "lat": row.lat, "lon": row.lon, "country": row.country, "place": row.place, "actors": row.actors,
        "perpetrator": row.perpetrator, "tactics": row.tactics, "killed": row.killed,
        "report_count": row.report_count, "source_count": row.source_count, "version": row.version,
        "corroboration": row.corroboration, "severity": row.severity, "resolved_at": _iso(row.resolved_at),
        "disputed_at": _iso(row.disputed_at), "dispute_reason": row.dispute_reason,
        "independent_source_count": len(copies.independent_sources((e, s, o) for e, s, o, *_ in reports)),
        "origins": copies.by_origin(reports),
    }


def _bbox(text: str) -> tuple[float, float, float, float]:
    """`min_lon,min_lat,max_lon,max_lat` in degrees, or HTTPException(422) naming what is wrong."""
    try:
        box = tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise HTTPException(422, "bbox: four numbers, min_lon,min_lat,max_lon,max_lat") from exc
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise HTTPException(422, "bbox: four numbers, min_lon,min_lat,max_lon,max_lat")
    lon0, lat0, lon1, lat1 = box
    if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
        raise HTTPException(422, "bbox: min_lon < max_lon within -180..180, min_lat < max_lat within -90..90")
    return lon0, lat0, lon1, lat1


@functools.cache
def _ranked_towns(vintage: str) -> list[basemap.Town]:
    return basemap.ranked_towns(load_gazetteer().places)


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name}: give a time zone, e.g. 2026-01-01T00:00:00Z")
    return value


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def geofence(spec: dict[str, Any], origin: str) -> dict[str, Any] | None:
    """A rule's area as the map draws it: circle ([lon, lat] centre, radius and radii per tactic), polygon
    ([lon, lat] ring), country or region (named, no outline); None for a rule without an area."""
    try:
        rule = parse_rule(spec, origin=origin)
    except RuleError as exc:
        return {"type": "invalid", "reason": str(exc)}
    area = rule.area
    if area is None:
        return None
    if area.center is not None:
        lat, lon, label = area.center
        return {"type": "circle", "center": [lon, lat], "label": label, "radius_km": area.radius_km,
                "radius_km_by_tactic": area.radius_km_by_tactic or {}}
    if area.polygon is not None:
        return {"type": "polygon", "coordinates": [[lon, lat] for lat, lon in area.polygon]}
    if area.region_key is not None:
        return {"type": "region", "country": area.region_key[0], "region": area.region_key[1]}
    return {"type": "country", "country": (area.country or "").upper()}


def console_html() -> str:
    return resources.files("services.alert").joinpath("console.html").read_text(encoding="utf-8")


class Acknowledgement(BaseModel):
    """Who acknowledges is the token's name; the note is for the next shift."""

    model_config = ConfigDict(extra="ignore")
    note: str | None = Field(None, max_length=2000)


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: dict[str, Any]
    reason: str = Field(min_length=1, max_length=2000, description="why: shown beside every muted alert")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: str | None = Field(None, description="instead of ends_at: 30m, 4h, 2d")

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        starts = self.starts_at or now
        if self.ends_at is not None and self.duration is not None:
            raise HTTPException(422, "give ends_at or duration, not both")
        if self.ends_at is not None:
            return starts, self.ends_at
        if self.duration is None:
            raise HTTPException(422, "give ends_at (ISO 8601 with a time zone) or duration (30m, 4h, 2d)")
        found = DURATION.match(self.duration)
        if not found or float(found.group(1)) <= 0:
            raise HTTPException(422, f"duration {self.duration!r}: give a duration like 30m, 4h or 2d")
        unit = {"m": 60, "h": 3600, "d": 86400}[found.group(2)]
        return starts, starts + timedelta(seconds=float(found.group(1)) * unit)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    matchers: dict[str, Any]


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, description="http(s), checked by the SSRF guard (shared/urlguard.py); or "
                                                  "mailto:ops@example.org for an email recipient")
    name: str | None = Field(None, max_length=200)
    secret: str | None = Field(None, pattern=r"^whsec_")
    rule_ids: list[str] | None = None
    min_severity: str | None = None
    events: list[str] | None = Field(None, max_length=20, description="webhook types it takes, as patterns: "
                                     "alert.*, source.*, source.silent…; omitted: every type")
    immediate: bool = Field(True, description="email: an email per alert (false: the digest only)")
    digest: list[str] | None = Field(None, max_length=24, description="email: shift digest times, e.g. "
                                     '["06:00", "18:00"], read in `tz`')
    digest_skip_empty: bool = Field(False, description="email: no digest for a shift with nothing to report")
    tz: str | None = Field(None, max_length=64, description="email: the recipient's IANA time zone")


class PlaceRequest(BaseModel):
    """A place officers add: `source` says which public reference the point comes from."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2, e.g. NE")
    source: str = Field(min_length=1, max_length=2000)
    kind: str = "village"
    admin1: str | None = Field(None, max_length=200)
    aliases: list[str] = Field(default_factory=list, max_length=20)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="the person or system: written to the audit")
    role: Literal["ingest", "viewer", "officer", "admin"]


class AlertStream:
    """Tails wf:alerts for one SSE client (XREAD from the newest entry at connect, i.e. `$`); ends on
    disconnect or service shutdown."""

    def __init__(self, redis: Redis, decode: Decode, stopping: asyncio.Event, heartbeat_s: float) -> None:
        self.redis, self.decode, self.stopping, self.heartbeat_s = redis, decode, stopping, heartbeat_s

    async def events(self, request: Request, allowed: Callable[[], Awaitable[bool]] | None = None
                     ) -> AsyncIterator[str]:
        """`allowed` is asked on every heartbeat: a revoked token's stream ends within `heartbeat_s`."""
        # The newest entry now, rather than `$` on every call: nothing fired between two XREADs is missed.
        newest = await self.redis.xrevrange(streams.ALERTS, count=1)
        last_id = newest[0][0] if newest else "0-0"
        idle = 0.0
        block_s = min(1.0, self.heartbeat_s)
        yield "retry: 2000\n: connected\n\n"
        while not self.stopping.is_set() and not await request.is_disconnected():
            reply = await self.redis.xread({streams.ALERTS: last_id}, count=100, block=int(block_s * 1000))
            if not reply:
                idle += block_s
                if idle >= self.heartbeat_s:
                    idle = 0.0
                    if allowed is not None and not await allowed():
                        yield "event: revoked\ndata: {}\n\n"
                        return
                    yield ": heartbeat\n\n"
                continue
            idle = 0.0
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    raw = fields.get(b"__data__") or fields.get("__data__")
                    if raw is None:
                        continue
                    try:
                        body = json.loads(self.decode(raw))
                    except (ValueError, UnicodeDecodeError) as exc:
                        logger.warning("console stream skipped entry=%s reason=%r", last_id, str(exc))
                        continue
                    yield f"id: {last_id}\nevent: alert\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"


def _log_query(kind: str, since: datetime | None, until: datetime | None, actor: list[str] | None,
               tactic: list[str] | None, rule: str | None, state: str | None, country: str | None,
               near: str | None, radius_km: float | None, limit: int | None, text: str | None = None,
               is_event: bool | None = None) -> LogQuery:
    try:
        return LogQuery(
            kind="alerts" if kind == "alerts" else "events", since=_aware("since", since),
            until=_aware("until", until), actors=tuple(actor or ()), tactics=tuple(tactic or ()), rule=rule,
            state=state, country=country.upper() if country else None,
            near=eventlog.resolve_near(near, radius_km, country), limit=limit,
            text=text or None, is_event=is_event,
        )
    except QueryError as exc:
        raise HTTPException(422, exc.reason) from exc


def build_router(sessions: async_sessionmaker[AsyncSession], redis: Redis, decode: Decode,
                 stopping: asyncio.Event, heartbeat_s: float = 15.0, url_policy: UrlPolicy | None = None,
                 smtp_configured: bool = True) -> APIRouter:
    """`url_policy`: which addresses a new subscription may point at (default: the environment's
    WATCHFLOOR_ALLOW_PRIVATE_URLS); `smtp_configured`: whether adding an email recipient warns that this
    process has no SMTP server."""
    router = APIRouter()
    url_policy = url_policy if url_policy is not None else CommonSettings().url_policy
    tail = AlertStream(redis, decode, stopping, heartbeat_s)
    access = Access(sessions)
    redact_access_log()
    Viewer = Annotated[Caller, Depends(access.require("viewer", "read"))]

    def can(role: str, action: str) -> Any:
        return Depends(access.require(role, action))

    router.include_router(build_deliveries_router(sessions, access))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(console_html())

    @router.get("/api/whoami")
    async def whoami(caller: Viewer) -> dict:
        """Who the token belongs to and what it may do (the console shows it)."""
        return {"name": caller.name, "role": caller.role, "anonymous": caller.anonymous}

    # --- alerts ---------------------------------------------------------------------------------------

    @router.get("/api/alerts")
    async def alerts(_: Viewer, limit: int = Query(100, ge=1, le=1000), since: datetime | None = None,
                     state: str | None = None, rule: str | None = None) -> list[dict]:
        """Latest alerts, newest update first."""
        _aware("since", since)
        async with sessions() as session:
            rows = await store_alerts.list_alerts(session, limit if state is None and rule is None else 1000, since)
        rows = [r for r in rows if (state is None or r.state == state) and (rule is None or r.rule_id == rule)]
        return [_alert_json(row) for row in rows[:limit]]

    @router.post("/api/alerts/stream/ticket")
    async def stream_ticket(caller: Viewer) -> dict:
        """A single-use ticket for the event stream, valid 60 s: EventSource cannot send the Authorization
        header, and a token in a URL would be logged."""
        return {"ticket": access.issue_ticket(caller), "expires_in": int(TICKET_TTL_S)}

    async def stream_caller(request: Request, ticket: str | None = None) -> Caller:
        caller = access.redeem_ticket(ticket) if ticket else await access.caller(request)
        if not allows(caller.role, "viewer"):
            raise HTTPException(403, refusal(caller.role, "viewer", "read"))
        return caller

    @router.get("/api/alerts/stream")
    async def alert_stream(request: Request, caller: Annotated[Caller, Depends(stream_caller)]) -> StreamingResponse:
        """Server-sent events: every alert version put on wf:alerts from now on (`?ticket=` from
        POST /api/alerts/stream/ticket, for EventSource). Ends with `event: revoked` when the token is revoked
        meanwhile."""
        return StreamingResponse(
            tail.events(request, lambda: access.still_valid(caller)), media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @router.get("/api/alerts/{alert_id}")
    async def alert(alert_id: str, _: Viewer) -> dict:
        """One alert and why it fired: the rule and how it matched, the reports with their evidence spans,
        every notification and delivery attempt."""
        async with sessions() as session:
            row = await store_alerts.get_alert(session, alert_id)
            if row is None:
                raise HTTPException(404, f"no alert {alert_id}")
            notes = await store_deliveries.notifications_of_alert(session, alert_id)
            attempts = await store_deliveries.deliveries_of_alert(session, alert_id)
            rules = {r.id: r for r in await store_rules.list_rules(session)}
            reports = await store_eventlog.reports(session, list(row.payload.get("event_ids") or []))
        rule = rules.get(row.rule_id)
        return {
            **_alert_json(row),
            "rule": None if rule is None else {
                "id": rule.id, "name": rule.name, "severity": rule.severity, "enabled": rule.enabled,
                "body": rule.body, "origin": rule.origin, "geofence": geofence(rule.spec, rule.origin or rule.id)},
            "reports": reports,
            "notifications": [
                {"id": n.id, "subscription_id": n.subscription_id, "version": n.alert_version,
                 "message_id": n.message_id, "state": n.state, "attempts": n.attempts,
                 "next_attempt_at": _iso(n.next_attempt_at), "last_error": n.last_error}
                for n in notes
            ],
            "deliveries": [
                {"notification_id": d.notification_id, "subscription_id": d.subscription_id,
                 "attempt": d.attempt, "attempted_at": _iso(d.attempted_at), "outcome": d.outcome,
                 "status_code": d.status_code, "latency_ms": d.latency_ms, "error": d.error}
                for d in attempts
            ],
        }

    @router.post("/api/alerts/{alert_id}/ack")
    async def acknowledge(alert_id: str, caller: Annotated[Caller, can("officer", "acknowledge alerts")],
                          ack: Acknowledgement | None = None) -> dict:
        """firing -> acknowledged, by the token's name (audited). Stops re-pages, not updates."""
        note = ack.note if ack else None
        try:
            async with session_scope(sessions) as session:
                row = await commands.acknowledge_alert(session, alert_id, caller.name, note)
                if row is None:
                    raise HTTPException(404, f"no alert {alert_id}")
                return _alert_json(row)
        except LookupError as exc:
            raise HTTPException(404, _reason(exc)) from exc

    # --- incidents and silences -----------------------------------------------------------------------

    @router.get("/api/incidents")
    async def incidents(_: Viewer, state: str | None = None, since: datetime | None = None,
                        limit: int = Query(200, ge=1, le=1000)) -> list[dict]:
        """Newest first; each with its reports grouped by origin (`origins`: an original and the forwards,
        reposts and syndicated copies of it) and how many sources are independent (`independent_source_count`)."""
        async with sessions() as session:
            rows = await store_incidents.list_incidents(session, state=state, since=_aware("since", since), limit=limit)
            reports: dict[str, list[tuple[str, str, str | None, float | None, str | None]]] = {r.id: [] for r in rows}
            for incident_id, *report in await store_incidents.report_origins(session, list(reports)):
                reports[incident_id].append(tuple(report))  # type: ignore[arg-type]  # (event, source, origin, sim, via)
        return [_incident_json(r, reports[r.id]) for r in rows]

    @router.get("/api/incidents/{incident_id}")
    async def incident(incident_id: str, _: Viewer, limit: int = Query(200, ge=1, le=1000)) -> dict:
        """One incident: its timeline (the first `limit` reports in time order, each with its source, language,
        published and fetched times, title and text, and its `origin`), the reports grouped by origin, and the
        alerts rules fired for it."""
        async with sessions() as session:
            row = await store_incidents.get_incident(session, incident_id)
            if row is None:
                raise HTTPException(404, f"no incident {incident_id}")
            rows = await store_incidents.report_origins(session, [incident_id])
            origins: list[tuple[str, str, str | None, float | None, str | None]] = [
                (event, source, origin, similar, via) for _, event, source, origin, similar, via in rows]
            timeline = await store_eventlog.reports(session, [r[0] for r in origins[:limit]])
            alerts = await store_alerts.alerts_of_incident(session, incident_id)
        timeline.sort(key=lambda r: (r["published_at"] or r["fetched_at"] or "", r["event_id"]))
        for report in timeline:
            del report["spans"]  # evidence is the alert view's business; the timeline reads titles
        return {**_incident_json(row, origins), "timeline": timeline,
                "timeline_truncated": len(origins) > limit,
                "alerts": [_alert_json(a) for a in sorted(alerts.values(), key=lambda a: a.fired_at)]}

    @router.get("/api/silences")
    async def silences(_: Viewer, active: bool = False) -> list[dict]:
        """Every silence, or (`?active=true`) those muting now."""
        async with sessions() as session:
            rows = await store_alerts.list_silences(session, active_at=utcnow() if active else None)
        return [_silence_json(r) for r in rows]

    @router.post("/api/silences", status_code=201)
    async def add_silence(request: SilenceRequest,
                          caller: Annotated[Caller, can("officer", "create silences")]) -> dict:
        """A silence with matchers, a reason and an end (`ends_at` or `duration`); created by the token's name."""
        starts, ends = request.window(utcnow())
        try:
            async with session_scope(sessions) as session:
                row = await commands.create_silence(session, matchers=request.matchers, reason=request.reason,
                                                 created_by=caller.name, starts_at=starts, ends_at=ends)
                return _silence_json(row)
        except (ValueError, LookupError) as exc:
            raise HTTPException(422, _reason(exc)) from exc

    @router.post("/api/silences/preview")
    async def preview_silence(request: PreviewRequest,
                              _: Annotated[Caller, can("officer", "preview silences")]) -> list[dict]:
        """The firing or acknowledged alerts these matchers would mute now."""
        try:
            async with sessions() as session:
                rows = await commands.preview_silence(session, request.matchers, utcnow())
        except (ValueError, LookupError) as exc:
            raise HTTPException(422, _reason(exc)) from exc
        return [_alert_json(r) for r in rows]

    @router.delete("/api/silences/{silence_id}")
    async def expire_silence(silence_id: int,
                             caller: Annotated[Caller, can("officer", "expire silences")]) -> dict:
        try:
            async with session_scope(sessions) as session:
                return _silence_json(await commands.expire_silence(session, silence_id, by=caller.name))
        except LookupError as exc:
            raise HTTPException(404, _reason(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, _reason(exc)) from exc

    # --- rules and subscriptions ----------------------------------------------------------------------

    @router.get("/api/rules")
    async def rules(_: Viewer) -> list[dict]:
        """Rules as stored (YAML body, validated spec) with their geofence for the map."""
        async with sessions() as session:
            rows = await store_rules.list_rules(session)
        return [
            {"id": r.id, "name": r.name, "severity": r.severity, "enabled": r.enabled, "spec": r.spec,
             "body": r.body, "origin": r.origin, "updated_at": _iso(r.updated_at),
             "geofence": geofence(r.spec, r.origin or r.id)}
            for r in rows
        ]

    @router.post("/api/rules", status_code=201)
    async def add_rule(caller: Annotated[Caller, can("admin", "change rules")],
                       body: Annotated[str, Body(media_type="application/yaml")]) -> JSONResponse:
        """One rule as YAML (the body as written). An error answers 422 naming the line and the field."""
        origin = f"api:{caller.name}"
        try:
            spec = load_rule_text(body, origin)
        except RuleError as exc:
            return JSONResponse(status_code=422, content={
                "detail": str(exc), "line": exc.line, "field": exc.field, "reason": exc.reason})
        async with session_scope(sessions) as session:
            row = await commands.upsert_rule(session, spec, body, origin=origin, actor=caller.name)
            return JSONResponse(status_code=201, content={
                "id": row.id, "name": row.name, "severity": row.severity, "enabled": row.enabled,
                "geofence": geofence(row.spec, origin)})

    @router.post("/api/rules/dry-run")
    async def dry_run_rule(_: Viewer, body: Annotated[str, Body(media_type="application/yaml")],
                           since: datetime | None = None, until: datetime | None = None) -> JSONResponse:
        """What a rule (YAML body, stored or not) would have fired between `since` (default 7 days ago) and
        `until` (default now): one hit per incident, with the reasons. Nothing is written or sent."""
        now = utcnow()
        start, end = _aware("since", since) or now - timedelta(days=7), _aware("until", until) or now
        try:
            spec = load_rule_text(body, "dry-run")
        except RuleError as exc:
            return JSONResponse(status_code=422, content={
                "detail": str(exc), "line": exc.line, "field": exc.field, "reason": exc.reason})
        async with sessions() as session:
            hits = await dryrun.dry_run(session, spec, since=start, until=end)
        return JSONResponse({"rule_id": spec.id, "since": start.isoformat(), "until": end.isoformat(), "hits": [
            {"event_id": h.event_id, "incident_id": h.incident_id, "at": h.at.isoformat(), "reasons": h.reasons}
            for h in hits]})

    @router.post("/api/rules/{rule_id}/{action}")
    async def toggle_rule(rule_id: str, action: Literal["enable", "disable"],
                          caller: Annotated[Caller, can("admin", "change rules")]) -> dict:
        async with session_scope(sessions) as session:
            row = await store_rules.set_rule_enabled(session, rule_id, action == "enable", caller.name)
            if row is None:
                raise HTTPException(404, f"no rule {rule_id}")
            return {"id": row.id, "enabled": row.enabled}

    @router.get("/api/subscriptions")
    async def subscriptions(caller: Viewer) -> list[dict]:
        """Webhook endpoints (secrets never shown; credentials and query strings in URLs shown to admins only)."""
        async with sessions() as session:
            rows = await store_subscriptions.list_subscriptions(session)
        whole = allows(caller.role, "admin")
        return [{"id": s.id, "url": s.url if whole else redact_url(s.url), "name": s.name, "enabled": s.enabled,
                 "disabled_reason": s.disabled_reason, "min_severity": s.min_severity, "rule_ids": s.rule_ids,
                 "quiet_hours": s.quiet_hours, "events": s.events, "channel": s.channel, "immediate": s.immediate,
                 "digest": s.digest, "tz": s.tz, "created_at": _iso(s.created_at)} for s in rows]

    @router.post("/api/subscriptions", status_code=201)
    async def add_subscription(request: SubscriptionRequest,
                               caller: Annotated[Caller, can("admin", "change subscriptions")]) -> dict:
        """A webhook endpoint, its signing secret returned once; or an email recipient (`mailto:`), with a
        `warning` when this process has no SMTP server configured. A URL the SSRF guard refuses, or an address
        that is not one plain email address, is a 422."""
        email = channel_of(request.url) == EMAIL
        try:
            url = request.url if email else await check_url(request.url, url_policy)
        except UrlRefused as exc:
            raise HTTPException(422, exc.reason) from exc
        try:
            async with session_scope(sessions) as session:
                row, secret = await commands.add_subscription(
                    session, url, secret=request.secret, name=request.name, rule_ids=request.rule_ids,
                    min_severity=request.min_severity, events=request.events, immediate=request.immediate,
                    digest=request.digest, digest_skip_empty=request.digest_skip_empty, tz=request.tz,
                    actor=caller.name)
                out: dict[str, Any] = {"id": row.id, "url": row.url, "name": row.name, "events": row.events,
                                       "channel": row.channel}
                if email:
                    out.update(immediate=row.immediate, digest=row.digest, tz=row.tz)
                    if not smtp_configured:
                        out["warning"] = ("no SMTP server configured here (WATCHFLOOR_SMTP_HOST): the alert "
                                          "service needs one to send these emails")
                else:
                    out["secret"] = secret
                return out
        except ValueError as exc:
            raise HTTPException(422, _reason(exc)) from exc

    # --- operator alerts on sources ------------------------------------------------------------------

    @router.get("/api/source-alerts")
    async def source_alerts(_: Viewer, resolved_hours: float = Query(24, ge=0, le=24 * 90),
                            limit: int = Query(200, ge=1, le=1000)) -> dict:
        """Operator alerts on sources (silent, failing): every one raised now, then those resolved in the last
        `resolved_hours`; `raised` counts the first by kind, for the console's strip."""
        since = utcnow() - timedelta(hours=resolved_hours)
        async with session_scope(sessions) as session:
            rows = await store_source_alerts.list_source_alerts(session, resolved_since=since, limit=limit)
        raised = [r for r in rows if r.state == "raised"]
        return {
            "raised": {kind: sum(1 for r in raised if r.kind == kind) for kind in ("silent", "failing")},
            "alerts": [{"id": r.id, "source_id": r.source_id, "source_name": r.source_name,
                        "source_kind": r.source_kind, "source_url": r.source_url,
                        "kind": r.kind, "state": r.state, "reason": r.reason, "resolved_reason": r.resolved_reason,
                        "raised_at": _iso(r.raised_at), "resolved_at": _iso(r.resolved_at)} for r in rows],
        }

    # --- places -------------------------------------------------------------------------------------

    @router.get("/api/places")
    async def places(_: Viewer) -> list[dict]:
        """The places officers added to the gazetteer."""
        async with sessions() as session:
            return [_place_json(r) for r in await placebook.list_places(session)]

    @router.get("/api/places/unresolved")
    async def unresolved_places(_: Viewer, days: int = Query(30, ge=1, le=365)) -> list[dict]:
        """Places posts named that no gazetteer knows, most named first: what officers should add."""
        async with sessions() as session:
            rows = await placebook.unresolved(session, since=utcnow() - timedelta(days=days))
        return [{"name": u.name, "admin1": u.admin1, "country": u.country, "mentions": u.mentions,
                 "last_seen": _iso(u.last_seen), "example_event": u.example_event} for u in rows]

    @router.post("/api/places", status_code=201)
    async def add_place(request: PlaceRequest, caller: Annotated[Caller, can("admin", "add places")]) -> dict:
        """Adds a place (audited). Classify uses it for the next post and places the last week's posts that
        named it unresolved; a bad field answers 422 naming it."""
        try:
            async with session_scope(sessions) as session:
                row = await placebook.add_place(session, placebook.NewPlace(
                    request.name, request.lat, request.lon, request.country, request.source, request.kind,
                    request.admin1, tuple(request.aliases)), actor=caller.name)
                return _place_json(row)
        except placebook.PlaceError as exc:
            raise HTTPException(422, exc.reason) from exc

    # --- tokens ---------------------------------------------------------------------------------------

    @router.get("/api/tokens")
    async def tokens(_: Annotated[Caller, can("admin", "manage API tokens")]) -> list[dict]:
        async with sessions() as session:
            return [_token_json(r) for r in await store_access.list_tokens(session)]

    @router.post("/api/tokens", status_code=201)
    async def add_token(request: TokenRequest,
                        caller: Annotated[Caller, can("admin", "manage API tokens")]) -> dict:
        """A new token; the secret is in this answer only."""
        try:
            made = new_token(check_role(request.role))
        except AccessError as exc:
            raise HTTPException(422, exc.reason) from exc
        async with session_scope(sessions) as session:
            row = await store_access.create_token(session, name=request.name, role=request.role,
                                                  digest=made.digest, prefix=made.prefix, created_by=caller.name)
            return {**_token_json(row), "token": made.secret}

    @router.delete("/api/tokens/{token_id}")
    async def revoke_token(token_id: int, caller: Annotated[Caller, can("admin", "manage API tokens")]) -> dict:
        async with session_scope(sessions) as session:
            row = await store_access.revoke_token(session, token_id, by=caller.name)
            if row is None:
                raise HTTPException(404, f"no token {token_id}")
            return _token_json(row)

    # --- event log, explain, audit, map ---------------------------------------------------------------

    @router.get("/api/events")
    async def events(_: Viewer, of: Literal["events", "alerts"] = "events", since: datetime | None = None,
                     until: datetime | None = None, actor: Annotated[list[str] | None, Query()] = None,
                     tactic: Annotated[list[str] | None, Query()] = None, rule: str | None = None,
                     state: str | None = None, country: str | None = None, near: str | None = None,
                     radius_km: float | None = None, limit: int = Query(200, ge=1, le=5000),
                     q: str | None = Query(None, max_length=eventlog.MAX_SEARCH_CHARS),
                     is_event: bool | None = None) -> list[dict]:
        """The event log as JSON (`of=events`, one record per classified post, or `of=alerts`). `q` searches
        the posts' title and text (case-insensitive substring, `%` and `_` literal; at most 500 results, each
        with a `snippet` of the text around the match); `is_event` keeps events or non-events."""
        if q and limit > SEARCH_LIMIT:
            raise HTTPException(422, f"limit: at most {SEARCH_LIMIT} when searching with q")
        query = _log_query(of, since, until, actor, tactic, rule, state, country, near, radius_km, limit, q, is_event)
        async with sessions() as session:
            found = [r async for r in store_eventlog.records(session, query)]
            if q:
                texts = await store_eventlog.post_texts(session, [r["event_id"] for r in found])
                for record in found:
                    record["snippet"] = eventlog.snippet(texts.get(record["event_id"], ""), q)
        return found

    @router.get("/api/export")
    async def export(_: Viewer, format: Literal["csv", "geojson", "jsonl"] = "csv",
                     of: Literal["events", "alerts"] = "events", since: datetime | None = None,
                     until: datetime | None = None, actor: Annotated[list[str] | None, Query()] = None,
                     tactic: Annotated[list[str] | None, Query()] = None, rule: str | None = None,
                     state: str | None = None, country: str | None = None, near: str | None = None,
                     radius_km: float | None = None) -> StreamingResponse:
        """A download of the event log in CSV, GeoJSON or JSON lines, streamed page by page."""
        query = _log_query(of, since, until, actor, tactic, rule, state, country, near, radius_km, None)
        media_type, ext = eventlog.FORMATS[format]
        exporter = eventlog.Exporter(format, query.kind)

        async def body() -> AsyncIterator[str]:
            yield exporter.head()
            async with sessions() as session:
                async for record in store_eventlog.records(session, query):
                    yield exporter.item(record)
            yield exporter.tail()

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
        return StreamingResponse(body(), media_type=media_type, headers={
            "content-disposition": f'attachment; filename="watchfloor-{query.kind}-{stamp}.{ext}"'})

    @router.get("/api/explain/{post_id}")
    async def explain(post_id: str, _: Viewer) -> dict:
        """Why each enabled rule did or did not fire for a post, and the post's labels with their evidence."""
        async with sessions() as session:
            found = await dryrun.explain_post(session, post_id, utcnow())
        if found is None:
            raise HTTPException(404, f"no classified post {post_id} (is the id right, and was it classified?)")
        return found

    @router.get("/api/audit")
    async def audit(_: Viewer, limit: int = Query(200, ge=1, le=5000), since: datetime | None = None,
                    target_kind: str | None = None, target_id: str | None = None,
                    actor: str | None = None, action: str | None = Query(None, max_length=100),
                    before_id: int | None = Query(None, ge=1)) -> list[dict]:
        """Who changed a rule, a silence, a subscription or a token, or acknowledged an alert, and when; newest
        first. `action`: one action, or every action of a kind with a trailing dot (`alert.`); `before_id`:
        the page after the entry with that id (the last one shown)."""
        async with sessions() as session:
            rows = await store_access.list_audit(session, limit=limit, since=_aware("since", since),
                                                 target_kind=target_kind, target_id=target_id, actor=actor,
                                                 action=action, before_id=before_id)
        return [_audit_json(r) for r in rows]

    @router.get("/api/map/countries")
    async def countries(_: Viewer) -> JSONResponse:
        """Country outlines of the Sahel for the console map (Natural Earth, from an installed package)."""
        try:
            outlines = await asyncio.to_thread(basemap.countries)
        except basemap.BasemapError as exc:
            raise HTTPException(503, exc.reason) from exc
        return JSONResponse(outlines, headers={"cache-control": "private, max-age=86400"})

    @router.get("/api/map/admin1")
    async def admin1(_: Viewer) -> JSONResponse:
        """Region (admin-1) border lines of the Sahel for the console map (Natural Earth, from an installed
        package)."""
        try:
            lines = await asyncio.to_thread(basemap.admin1)
        except basemap.BasemapError as exc:
            raise HTTPException(503, exc.reason) from exc
        return JSONResponse(lines, headers={"cache-control": "private, max-age=86400"})

    @router.get("/api/map/places")
    async def map_places(_: Viewer, bbox: str = Query(..., max_length=100),
                         limit: int = Query(40, ge=1, le=MAP_PLACES_LIMIT)) -> JSONResponse:
        """The `limit` most populous gazetteer towns inside `bbox` (`min_lon,min_lat,max_lon,max_lat`): what
        the map names at the current zoom."""
        box = _bbox(bbox)
        gazetteer = await asyncio.to_thread(load_gazetteer)
        towns = await asyncio.to_thread(_ranked_towns, gazetteer.vintage)
        found = basemap.towns_in(towns, box, limit)
        return JSONResponse([{"name": t.name, "lat": t.lat, "lon": t.lon, "country": t.country,
                              "population": t.population, "kind": t.kind} for t in found],
                            headers={"cache-control": "private, max-age=3600"})

    return router
