"""The HTTP side, served by uvicorn on 127.0.0.1: JSON alerts and rules, the console page, the live stream."""

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import sqlalchemy as sa
import uvicorn

from shared import store_access
from shared.db import session_scope
from shared.models import AuditEntry
from tests.alert.apiclient import base_url, bearer, log_event, make_token, publish_logged, server
from tests.alert.conftest import Running, eventually
from tests.alert.events import GAO, T0, event, vbied_niamey_en, vbied_niamey_fr

__all__ = ["base_url", "server"]   # fixtures


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


async def test_stream_takes_a_single_use_ticket_never_a_token_in_the_url(running: Running, base_url: str) -> None:
    token = await make_token(running.sessions, "wall screen", "viewer")
    await make_token(running.sessions, "lead", "admin")  # ends open mode
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        refused = await client.get("/api/alerts/stream")
        assert refused.status_code == 401 and "missing bearer token" in refused.json()["detail"]
        in_url = await client.get("/api/alerts/stream", params={"token": token})
        assert in_url.status_code == 401 and "never in the URL" in in_url.json()["detail"]
        assert (await client.get("/api/alerts", params={"token": token})).status_code == 401
        ticket = (await client.post("/api/alerts/stream/ticket", headers=bearer(token))).json()["ticket"]
        async with client.stream("GET", "/api/alerts/stream", params={"ticket": ticket}) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            await running.publish_event(vbied_niamey_en())
            fired = await asyncio.wait_for(_read_alert_event(lines), 5)
            assert fired["rule_id"] == "issp-niamey-50km"
        again = await client.get("/api/alerts/stream", params={"ticket": ticket})
        assert again.status_code == 401 and "used or expired" in again.json()["detail"]


async def test_revoking_a_token_ends_its_open_stream(running: Running, base_url: str) -> None:
    token = await make_token(running.sessions, "wall screen", "viewer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        ticket = (await client.post("/api/alerts/stream/ticket", headers=bearer(token))).json()["ticket"]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/api/alerts/stream", params={"ticket": ticket}) as response:
        lines = response.aiter_lines()
        await anext(lines)
        async with session_scope(running.sessions) as session:
            await store_access.revoke_token(session, 1, by="ana")
        rest = await asyncio.wait_for(_drain(lines), 3)      # heartbeat every 0.5 s in the test settings
        assert "event: revoked" in rest


async def test_an_officer_sees_why_an_alert_fired_and_acknowledges_it(running: Running, base_url: str) -> None:
    officer = await make_token(running.sessions, "duty officer", "officer")
    await publish_logged(running, vbied_niamey_en())
    await publish_logged(running, vbied_niamey_fr())

    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(officer)) as client:
        async def two_versions() -> list:
            alerts = (await client.get("/api/alerts")).json()
            return alerts if alerts and alerts[0]["version"] >= 2 else []

        alerts = await eventually(two_versions)
        assert len(alerts) == 1 and alerts[0]["state"] == "firing"
        alert_id = alerts[0]["alert_id"]
        detail = (await client.get(f"/api/alerts/{alert_id}")).json()
        assert detail["deliveries"] == [] and detail["rule_id"] == "issp-niamey-50km"
        # Why it fired: the rule as written, its geofence ([lon, lat] centre), how it matched.
        assert "near: Niamey" in detail["rule"]["body"]
        fence = detail["rule"]["geofence"]
        assert fence["type"] == "circle" and fence["radius_km"] == 50
        assert abs(fence["center"][0] - 2.11) < 0.05 and abs(fence["center"][1] - 13.51) < 0.05
        assert "actor ISSP (perpetrator)" in detail["matched"]
        assert [r["event_id"][:15] for r in detail["reports"]] == ["vbied-niamey-en", "vbied-niamey-fr"]
        assert detail["reports"][0]["spans"][0]["label"] == "actor ISSP (perpetrator)"
        assert (await client.get("/api/alerts/nope")).status_code == 404

        acked = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "passed to Niamey desk"})
        assert acked.status_code == 200, acked.text
        assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "duty officer")
        listed = (await client.get("/api/alerts", params={"state": "acknowledged"})).json()
        assert [(a["alert_id"], a["ack_note"]) for a in listed] == [(alert_id, "passed to Niamey desk")]
        assert (await client.post("/api/alerts/nope/ack", json={})).status_code == 404
        audit = (await client.get("/api/audit", params={"target_kind": "alert"})).json()
        assert [(a["actor"], a["action"], a["target_id"]) for a in audit] == [
            ("duty officer", "alert.acknowledged", alert_id)]

        incidents = (await client.get("/api/incidents")).json()
        assert [(i["id"], i["report_count"], i["corroboration"]) for i in incidents] == [
            (detail["incident_id"], 2, "corroborated")]
        rules = (await client.get("/api/rules")).json()
        assert [r["id"] for r in rules] == ["issp-niamey-50km"] and rules[0]["geofence"]["type"] == "circle"
        page = await client.get("/")
        assert page.status_code == 200 and "EventSource" in page.text
        # Self-contained: no external scripts, styles, fonts or tiles (the watch floor may have no internet).
        assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""",
                             page.text)
        assert "<script src" not in page.text and "<link" not in page.text
        countries = (await client.get("/api/map/countries")).json()
        niger = next(f for f in countries["features"] if f["properties"]["iso_a2"] == "NE")
        lon, lat = niger["geometry"]["coordinates"][0][0][0]
        assert 0 < lon < 16 and 11 < lat < 24      # [lon, lat], inside Niger's bounding box

    async with running.sessions() as session:
        rows = (await session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "alert.acknowledged"))).all()
        assert [(r.actor, r.target_id) for r in rows] == [("duty officer", alert_id)]


async def test_source_alerts_for_viewers_and_subscriptions_choosing_event_types(running: Running,
                                                                                base_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.messages import SourceWatchMessage

    now = datetime.now(UTC)
    quiet = dict(source_id="veille", source_name="Veille Sahel", source_kind="feed",
                 source_url="https://veille.example/rss", kind="silent", since=now - timedelta(hours=1),
                 reason="quiet for 9 h; usually posts every 40 min")
    await running.deliver.source_alerts.on_watch(SourceWatchMessage(watch_id="w" * 64, state="raised",
                                                                     at=now - timedelta(hours=1), **quiet))
    ended = {**quiet, "source_id": "lake-chad", "kind": "failing"}
    for state in ("raised", "resolved", "resolved"):   # a re-delivery changes nothing
        await running.deliver.source_alerts.on_watch(SourceWatchMessage(
            watch_id="f" * 64, state=state, at=now, resolved_reason="polled successfully" if state == "resolved"
            else None, **ended))
    viewer = await make_token(running.sessions, "wall screen", "viewer")
    admin = await make_token(running.sessions, "lead", "admin")
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/api/source-alerts")).status_code == 401
        listed = (await client.get("/api/source-alerts", headers=bearer(viewer))).json()
        assert listed["raised"] == {"silent": 1, "failing": 0}
        assert [(a["source_id"], a["state"], a["resolved_reason"]) for a in listed["alerts"]] == [
            ("veille", "raised", None), ("lake-chad", "resolved", "polled successfully")]
        only_raised = (await client.get("/api/source-alerts", params={"resolved_hours": 0},
                                        headers=bearer(viewer))).json()
        assert [a["source_id"] for a in only_raised["alerts"]] == ["veille"]

        typo = await client.post("/api/subscriptions", headers=bearer(admin),
                                 json={"url": "http://127.0.0.1:9/hook", "events": ["alerts.*"]})
        assert typo.status_code == 422 and "matches no event type" in typo.json()["detail"]
        made = await client.post("/api/subscriptions", headers=bearer(admin),
                                 json={"url": "http://127.0.0.1:9/hook", "events": ["source.*"]})
        assert made.status_code == 201 and made.json()["events"] == ["source.*"]
        subs = (await client.get("/api/subscriptions", headers=bearer(viewer))).json()
        assert [s["events"] for s in subs] == [["source.*"]]


# --- the console's views: incidents, audit, search, map (issue 11) ----------------------------------------------

WIRE = ("A suicide bomber drove an explosives-laden vehicle into an army post on the outskirts of Niamey at dawn, "
        "killing three soldiers, security sources said. Islamic State Sahel Province claimed the attack.")


async def test_an_incident_opens_to_its_timeline_grouped_by_origin_and_its_alerts(running: Running,
                                                                                   base_url: str) -> None:
    viewer = await make_token(running.sessions, "wall screen", "viewer")
    wire = event("niamey-wire", source="sahel-wire", title="Car bomb hits army post near Niamey", text=WIRE,
                 killed=3)
    copy = event("niamey-copy", source="sahel-blog", title="Car bomb hits army post near Niamey",
                 text=WIRE + " Read more: https://blog.example/niamey", at=T0 + timedelta(minutes=40))
    own = vbied_niamey_fr()
    gao = event("gao-ambush", source="src-g", actors=(("JNIM", "perpetrator"),), tactics=("ambush",), place=GAO,
                at=T0 + timedelta(hours=3), title="JNIM ambush near Gao")
    last = b""
    for report in (wire, copy, own, gao):
        last = await publish_logged(running, report)
    await eventually(lambda: running.handled(last))

    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(viewer)) as client:
        listed = (await client.get("/api/incidents")).json()
        assert [i["place"]["name"] for i in listed] == ["Gao", "Niamey"]           # newest first
        niamey = listed[1]
        assert (niamey["status"], niamey["report_count"], niamey["independent_source_count"]) == ("open", 3, 2)

        detail = await client.get(f"/api/incidents/{niamey['id']}")
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert [r["event_id"] for r in body["timeline"]] == [wire.event_id, copy.event_id, own.event_id]
        first = body["timeline"][0]
        assert (first["source_id"], first["lang"], first["title"]) == ("sahel-wire", "en", wire.title)
        assert first["published_at"] and first["fetched_at"]
        assert [(g["source_id"], [(r["source_id"], r["via"]) for r in g["reports"]]) for g in body["origins"]] == [
            ("sahel-wire", [("sahel-wire", None), ("sahel-blog", "text")]), ("src-fr", [("src-fr", None)])]
        assert body["origins"][0]["reports"][1]["similarity"] >= 0.8
        assert [(a["rule_id"], a["state"]) for a in body["alerts"]] == [("issp-niamey-50km", "firing")]

        truncated = (await client.get(f"/api/incidents/{niamey['id']}", params={"limit": 1})).json()
        assert len(truncated["timeline"]) == 1 and truncated["timeline_truncated"] is True
        assert (await client.get("/api/incidents/nope")).status_code == 404
        for bad in (0, 1001):
            assert (await client.get(f"/api/incidents/{niamey['id']}", params={"limit": bad})).status_code == 422
        assert (await client.get("/api/incidents", params={"limit": 1001})).status_code == 422


async def test_the_audit_trail_filters_by_actor_and_action_and_pages(running: Running, base_url: str) -> None:
    viewer = await make_token(running.sessions, "wall screen", "viewer")
    async with session_scope(running.sessions) as session:
        for n in range(7):
            session.add(AuditEntry(actor="ana" if n % 2 else "bo", action="alert.acknowledged" if n < 4 else
                                   "silence.created", target_kind="alert" if n < 4 else "silence",
                                   target_id=f"t{n}", detail={"n": n}))
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(viewer)) as client:
        async def targets(**params: object) -> list[str]:
            answer = await client.get("/api/audit", params=params)
            assert answer.status_code == 200, answer.text
            return [a["target_id"] for a in answer.json() if a["actor"] in ("ana", "bo")]

        assert await targets(actor="ana") == ["t5", "t3", "t1"]
        assert await targets(action="silence.created") == ["t6", "t5", "t4"]
        assert await targets(action="alert.") == ["t3", "t2", "t1", "t0"]        # every action on alerts
        assert await targets(action="alert%") == []                             # a prefix is literal, not LIKE
        page = (await client.get("/api/audit", params={"actor": "bo", "limit": 2})).json()
        assert [a["target_id"] for a in page] == ["t6", "t4"]
        more = await targets(actor="bo", limit=2, before_id=page[-1]["id"])
        assert more == ["t2", "t0"]
        assert (await client.get("/api/audit", params={"limit": 5001})).status_code == 422
        assert (await client.get("/api/audit", params={"before_id": 0})).status_code == 422


async def test_a_text_search_of_the_event_log_takes_percent_and_underscore_literally(running: Running,
                                                                                       base_url: str) -> None:
    viewer = await make_token(running.sessions, "analyst", "viewer")
    posts = {
        "share": event("share", title="Attacks up 50% in Tillabéri", text="Attacks rose by 50% in the region."),
        "fifty": event("fifty", title="Fifty-fifty: 50 dead in 5000 km2", text="No percent sign here at all.",
                       at=T0 + timedelta(hours=1)),
        "under": event("under", title="Report", text="The file ied_niamey_2026.pdf lists car bombs near NIAMEY.",
                       at=T0 + timedelta(hours=2)),
        "denial": event("denial", title="Army denies car bomb claim", is_event=False, actors=(), tactics=(),
                        at=T0 + timedelta(hours=3)),
    }
    for post in posts.values():
        await log_event(running.sessions, post)
    ids = {name: post.event_id for name, post in posts.items()}
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(viewer)) as client:
        async def found(**params: object) -> list[str]:
            answer = await client.get("/api/events", params=params)
            assert answer.status_code == 200, answer.text
            return sorted(r["event_id"] for r in answer.json())

        assert await found(q="50%") == [ids["share"]]              # not "50 dead in 5000" (% is not a wildcard)
        assert await found(q="%") == [ids["share"]]
        assert await found(q="t_e") == []                            # _ is not a wildcard ("the")
        assert await found(q="ied_niamey") == [ids["under"]]
        assert await found(q="car BOMB") == sorted([ids["under"], ids["denial"]])   # title or text, any case
        assert await found(q="car bomb", is_event="false") == [ids["denial"]]
        assert await found(q="niamey", is_event="true") == [ids["under"]]
        assert await found(q="tillab", country="NE") == [ids["share"]]
        hit = (await client.get("/api/events", params={"q": "50%"})).json()[0]
        assert "50%" in hit["snippet"] and hit["title"] == "Attacks up 50% in Tillabéri"

        too_long = await client.get("/api/events", params={"q": "x" * 201})
        assert too_long.status_code == 422
        too_many = await client.get("/api/events", params={"q": "bomb", "limit": 501})
        assert too_many.status_code == 422 and "at most 500" in too_many.json()["detail"]
        alerts = await client.get("/api/events", params={"q": "bomb", "of": "alerts"})
        assert alerts.status_code == 422 and "events only" in alerts.json()["detail"]


async def test_the_map_names_towns_in_view_and_draws_region_borders(running: Running, base_url: str) -> None:
    viewer = await make_token(running.sessions, "wall screen", "viewer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(viewer)) as client:
        near_niamey = await client.get("/api/map/places", params={"bbox": "1.5,13.0,2.7,14.0", "limit": 5})
        assert near_niamey.status_code == 200, near_niamey.text
        towns = near_niamey.json()
        assert len(towns) == 5 and towns[0]["name"] == "Niamey"                     # the most populous first
        assert all(1.5 <= t["lon"] <= 2.7 and 13.0 <= t["lat"] <= 14.0 for t in towns)
        assert [t["population"] for t in towns] == sorted((t["population"] for t in towns), reverse=True)
        sahel = (await client.get("/api/map/places", params={"bbox": "-18,3,25,26", "limit": 3})).json()
        assert len(sahel) == 3 and all(t["population"] >= 1_000_000 for t in sahel)   # zoomed out: the big cities
        for params in ({"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "3,13,1,14"}, {"bbox": "1,13,2,95"},
                       {"bbox": "1,13,2,14", "limit": 201}, {"bbox": "1,13,2,14", "limit": 0}, {}):
            refused = await client.get("/api/map/places", params=params)
            assert refused.status_code == 422, (params, refused.text)

        admin1 = await client.get("/api/map/admin1")
        assert admin1.status_code == 200
        lines = admin1.json()["features"][0]["geometry"]
        assert lines["type"] == "MultiLineString" and len(lines["coordinates"]) > 100
        # Niger's Tillabéri-Dosso border runs between Niamey and Dosso: some line passes within 0.5° of 2.8E 13.3N.
        assert any(abs(lon - 2.8) < 0.5 and abs(lat - 13.3) < 0.5 for line in lines["coordinates"] for lon, lat in line)
