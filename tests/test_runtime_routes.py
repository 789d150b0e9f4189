"""Every process that serves the console also answers the console's own reads: the sources page asks the
server it came from for GET /api/sources, in `watchfloor up` and in `watchfloor run api` alike."""

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from shared.db import session_scope
from watchfloor.runtime import build_app


def _served(app: FastAPI) -> set[str]:
    """The app's paths; a route included twice would warn "Duplicate Operation ID" (an error under pytest)."""
    return set(app.openapi()["paths"])


@pytest.mark.parametrize("names", [("ingest", "classify", "alert"), ("api",), ("alert",), ("ingest",)],
                         ids=["up: all three", "run api", "run alert", "run ingest"])
async def test_source_health_is_served_once_wherever_the_console_or_ingest_is(
    names: tuple[str, ...], redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessions) as s:
        await store.add_source(s, "https://sahel-wire.example/rss", name="sahel-wire")
        await store.record_poll(s, "sahel-wire", now=now, next_poll_at=now, error="HTTP 500 from the origin")
    app, _services = build_app(names, {}, redis_url, sessions)
    assert "/api/sources" in _served(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://watchfloor") as http:
        listing = await http.get("/api/sources")  # open mode: no token yet, loopback caller
    assert listing.status_code == 200, listing.text
    assert [(s["name"], s["status"], s["last_error"]) for s in listing.json()] == [
        ("sahel-wire", "failing", "HTTP 500 from the origin")]


def test_a_classify_worker_serves_no_console_and_no_source_health(
    redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app, _services = build_app(("classify",), {}, redis_url, sessions)
    assert not {"/api/sources", "/api/whoami"} & _served(app)


@pytest.mark.parametrize("names", [("ingest", "classify", "alert"), ("api",), ("alert",), ("ingest",)],
                         ids=["up: all three", "run api", "run alert", "run ingest"])
async def test_every_process_serves_metrics_with_the_state_it_owns(
    names: tuple[str, ...], redis_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app, _services = build_app(names, {}, redis_url, sessions)
    assert app.openapi()["paths"]["/metrics"]["get"]["tags"] == ["ops"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://watchfloor") as http:
        scraped = await http.get("/metrics")  # no token: Prometheus scrapes it as it reads /health
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scraped.text
    assert f'watchfloor_info{{services="{",".join(names)}",version="0.1.0"}} 1.0' in text
    assert 'watchfloor_scrape_error{dependency="redis"} 0.0' in text
    assert ("watchfloor_sources_failing 0.0" in text) == ("ingest" in names)
    assert ("watchfloor_subscriptions_disabled 0.0" in text) == bool({"alert", "api"} & set(names))
    assert "# TYPE watchfloor_messages_handled_total counter" in text
