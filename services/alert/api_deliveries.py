"""HTTP routes of webhook deliveries (officer): what is owed, and replaying what failed or was missed.

    officer  GET  /api/deliveries?failed=&subscription=&alert=&limit=
             POST /api/deliveries/replay  {"subscription": 3, "since": "2026-12-01T00:00:00Z", "alert": "9b1e…"}

A replay puts notifications back to pending with their original webhook-id; the dispatcher sends them.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import store_alerts, store_deliveries
from shared.access import Access, Caller
from shared.db import session_scope


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription: int | None = None
    since: AwareDatetime | None = None
    alert: str | None = None


def build_deliveries_router(sessions: async_sessionmaker[AsyncSession], access: Access) -> APIRouter:
    router = APIRouter()
    Officer = Annotated[Caller, Depends(access.require("officer", "see and replay webhook deliveries"))]

    async def _alert(session: AsyncSession, prefix: str | None) -> str | None:
        if prefix is None:
            return None
        try:
            return await store_alerts.resolve_alert_id(session, prefix)
        except store_alerts.NotFoundError as exc:
            raise HTTPException(404, exc.reason) from exc

    @router.get("/api/deliveries")
    async def deliveries(_: Officer, failed: bool = False, subscription: int | None = None,
                         alert: str | None = None, since: datetime | None = None,
                         limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """Notifications newest first, each with its latest attempt; `failed`: only what a replay would send."""
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since: give a time zone, e.g. 2026-01-01T00:00:00Z")
        async with sessions() as session:
            rows = await store_deliveries.list_owed(session, replayable=failed, subscription_id=subscription,
                                                    alert_id=await _alert(session, alert), since=since, limit=limit)
            last = await store_deliveries.last_attempts(session, [n.id for n in rows])
        return [store_deliveries.as_dict(n, last.get(n.id)) for n in rows]

    @router.post("/api/deliveries/replay")
    async def replay(request: ReplayRequest, caller: Officer) -> dict:
        """Queues failed and missed notifications again; says how many, and which were left out and why."""
        async with session_scope(sessions) as session:
            done = await store_deliveries.replay(session, subscription_id=request.subscription,
                                                 alert_id=await _alert(session, request.alert),
                                                 since=request.since, actor=caller.name)
        return {"queued": done.queued, "skipped": done.skipped_count,
                "reasons": {str(k): v for k, v in done.skipped.items()}}

    return router
