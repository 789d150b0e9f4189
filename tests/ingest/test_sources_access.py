"""GET /api/sources needs a viewer token once tokens exist (open mode before, as the alert API): a source's
last error can quote what an internal address answered."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.app import IngestService
from shared import access, store_access
from shared.db import session_scope


@pytest.fixture
async def http(service: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(service.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        yield client


async def _token(sessions: async_sessionmaker[AsyncSession], role: str) -> str:
    made = access.new_token(role)
    async with session_scope(sessions) as s:
        await store_access.create_token(s, name=f"t-{role}", role=role, digest=made.digest, prefix=made.prefix,
                                        created_by="test")
    return made.secret


async def test_source_health_needs_a_viewer_token_once_open_mode_ends(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://intranet-probe.example/rss", name="probe")
        await store.record_poll(s, "probe", now=now, next_poll_at=now, error="HTTP 500 from db-admin.internal")
    assert (await http.get("/api/sources")).status_code == 200   # open mode: no token yet, loopback caller

    viewer = await _token(sessions, "viewer")
    pusher = await _token(sessions, "ingest")
    await _token(sessions, "admin")  # ends open mode
    anonymous = await http.get("/api/sources")
    assert anonymous.status_code == 401 and "db-admin" not in anonymous.text
    assert "watchfloor token add" in anonymous.json()["detail"]
    too_low = await http.get("/api/sources", headers={"authorization": f"Bearer {pusher}"})
    assert (too_low.status_code, too_low.json()["detail"]) == (
        403, "role ingest may not read source health: needs viewer")
    [probe] = (await http.get("/api/sources", headers={"authorization": f"Bearer {viewer}"})).json()
    assert probe["last_error"] == "HTTP 500 from db-admin.internal"
