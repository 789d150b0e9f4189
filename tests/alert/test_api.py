"""The HTTP side, served by uvicorn on 127.0.0.1: JSON alerts and rules, the console page, the live stream."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.alert.conftest import Running, eventually
from tests.alert.events import vbied_niamey_en, vbied_niamey_fr


@pytest.fixture
async def server(running: Running) -> AsyncIterator[uvicorn.Server]:
    app = FastAPI()
    app.include_router(running.service.router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server))
    yield server
    server.should_exit = True
    await running.service.stop()            # ends open streams, so uvicorn can finish
    await asyncio.wait_for(task, 10)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@pytest.fixture
def base_url(server: uvicorn.Server) -> str:
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


async def _read_alert_event(lines: AsyncIterator[str]) -> dict:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "alert":
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("stream ended without an alert")


async def test_stream_sends_a_newly_fired_alert_to_a_connected_client(running: Running, base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/api/alerts/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        await running.publish_event(vbied_niamey_en())
        fired = await asyncio.wait_for(_read_alert_event(lines), 5)
        assert fired["kind"] == "fired" and fired["rule_id"] == "issp-niamey-50km"
        await running.publish_event(vbied_niamey_fr())
        updated = await asyncio.wait_for(_read_alert_event(lines), 5)
        assert (updated["alert_id"], updated["version"]) == (fired["alert_id"], 2)


async def test_stream_ends_when_the_client_goes_away(server: uvicorn.Server, base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/api/alerts/stream") as response:
        await anext(response.aiter_lines())
        assert len(server.server_state.tasks) == 1           # the request serving the stream

    async def finished() -> bool:
        return not server.server_state.tasks

    await eventually(finished, within=3)


async def test_stream_ends_when_the_service_stops(running: Running, base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/api/alerts/stream") as response:
        lines = response.aiter_lines()
        await anext(lines)
        await running.service.stop()
        rest = await asyncio.wait_for(_drain(lines), 3)     # the server closes the stream
        assert all(not line or line.startswith(":") for line in rest)


async def _drain(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


async def test_stream_sends_heartbeats_while_idle(running: Running, base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/api/alerts/stream") as response:
        lines = response.aiter_lines()
        seen = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):       # heartbeat every 0.5 s in the test settings
                async for line in lines:
                    seen.append(line)
                    if line == ": heartbeat":
                        break
        assert ": heartbeat" in seen


async def test_alerts_rules_and_console(running: Running, base_url: str) -> None:
    await running.publish_event(vbied_niamey_en())
    await running.publish_event(vbied_niamey_fr())

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        async def two_versions() -> list:
            alerts = (await client.get("/api/alerts")).json()
            return alerts if alerts and alerts[0]["version"] == 2 else []

        alerts = await eventually(two_versions)
        assert len(alerts) == 1 and alerts[0]["state"] == "firing"
        detail = (await client.get(f"/api/alerts/{alerts[0]['alert_id']}")).json()
        assert detail["deliveries"] == [] and detail["rule_id"] == "issp-niamey-50km"
        assert (await client.get("/api/alerts/nope")).status_code == 404
        acked = await client.post(f"/api/alerts/{alerts[0]['alert_id']}/ack",
                                  json={"by": "duty officer", "note": "passed to Niamey desk"})
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        listed = (await client.get("/api/alerts")).json()
        assert (listed[0]["state"], listed[0]["acknowledged_by"]) == ("acknowledged", "duty officer")
        assert (await client.post("/api/alerts/nope/ack", json={"by": "x"})).status_code == 404
        assert (await client.post(f"/api/alerts/{alerts[0]['alert_id']}/ack", json={})).status_code == 422
        rules = (await client.get("/api/rules")).json()
        assert [r["id"] for r in rules] == ["issp-niamey-50km"] and "near: Niamey" in rules[0]["body"]
        page = await client.get("/")
        assert page.status_code == 200 and "EventSource" in page.text
        # Self-contained: no external scripts, styles or fonts (the watch floor may have no internet).
        assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text
