"""HTTP routes of the alert service: alerts and rules as JSON, a live server-sent-event stream, the console.

    GET /                    the console (one self-contained HTML page, no external resources)
    GET /api/alerts          latest alerts, newest first (?limit=100&since=ISO-8601)
    GET /api/alerts/stream   text/event-stream: every AlertMessage put on wf:alerts from now on
    GET /api/alerts/{id}     one alert with its notifications and every delivery attempt
    POST /api/alerts/{id}/ack  {"by": "…", "note": "…"}: firing -> acknowledged (audited)
    GET /api/rules           rules as stored (spec, body, origin)
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import store
from shared import streams
from shared.db import session_scope
from shared.models import Alert

logger = logging.getLogger(__name__)
Decode = Callable[[bytes], bytes]
"""Turns a wf:alerts entry's `__data__` field into the JSON body (the broker's wire format)."""


def _alert_json(row: Alert) -> dict[str, Any]:
    return {
        **row.payload,
        "state": row.state,
        "version": row.version,
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
    }


class Acknowledgement(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who takes it: shown to the next shift")
    note: str | None = Field(None, max_length=2000)


def console_html() -> str:
    return resources.files("services.alert").joinpath("console.html").read_text(encoding="utf-8")


class AlertStream:
    """Tails wf:alerts for one SSE client (XREAD from the newest entry at connect, i.e. `$`); ends on
    disconnect or service shutdown."""

    def __init__(self, redis: Redis, decode: Decode, stopping: asyncio.Event, heartbeat_s: float) -> None:
        self.redis, self.decode, self.stopping, self.heartbeat_s = redis, decode, stopping, heartbeat_s

    async def events(self, request: Request) -> AsyncIterator[str]:
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


def build_router(sessions: async_sessionmaker[AsyncSession], redis: Redis, decode: Decode,
                 stopping: asyncio.Event, heartbeat_s: float = 15.0) -> APIRouter:
    router = APIRouter()
    tail = AlertStream(redis, decode, stopping, heartbeat_s)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(console_html())

    @router.get("/api/alerts")
    async def alerts(limit: int = Query(100, ge=1, le=1000), since: datetime | None = None) -> list[dict]:
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since: give a time zone, e.g. 2026-01-01T00:00:00Z")
        async with sessions() as session:
            return [_alert_json(row) for row in await store.list_alerts(session, limit, since)]

    @router.get("/api/alerts/stream")
    async def alert_stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            tail.events(request), media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @router.get("/api/alerts/{alert_id}")
    async def alert(alert_id: str) -> dict:
        async with sessions() as session:
            row = await store.get_alert(session, alert_id)
            if row is None:
                raise HTTPException(404, f"no alert {alert_id}")
            notes = await store.notifications_of_alert(session, alert_id)
            attempts = await store.deliveries_of_alert(session, alert_id)
        return {
            **_alert_json(row),
            "notifications": [
                {"id": n.id, "subscription_id": n.subscription_id, "version": n.alert_version,
                 "message_id": n.message_id, "state": n.state, "attempts": n.attempts,
                 "next_attempt_at": n.next_attempt_at.isoformat() if n.next_attempt_at else None,
                 "last_error": n.last_error}
                for n in notes
            ],
            "deliveries": [
                {"notification_id": d.notification_id, "subscription_id": d.subscription_id,
                 "attempt": d.attempt, "attempted_at": d.attempted_at.isoformat(), "outcome": d.outcome,
                 "status_code": d.status_code, "latency_ms": d.latency_ms, "error": d.error}
                for d in attempts
            ],
        }

    @router.post("/api/alerts/{alert_id}/ack")
    async def acknowledge(alert_id: str, ack: Acknowledgement) -> dict:
        async with session_scope(sessions) as session:
            row = await store.acknowledge_alert(session, alert_id, ack.by, ack.note)
            if row is None:
                raise HTTPException(404, f"no alert {alert_id}")
            return _alert_json(row)

    @router.get("/api/rules")
    async def rules() -> list[dict]:
        async with sessions() as session:
            return [
                {"id": r.id, "name": r.name, "severity": r.severity, "enabled": r.enabled, "spec": r.spec,
                 "body": r.body, "origin": r.origin, "updated_at": r.updated_at.isoformat()}
                for r in await store.list_rules(session)
            ]

    return router
