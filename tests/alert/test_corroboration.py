"""Independent corroboration on the running service (real Redis, SQLite and PostgreSQL): a syndicated copy or a
forward of a report under another source joins its incident without raising corroboration or paging anyone;
a report of its own from another source raises it; the API shows each report's origin."""

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa

from services.alert import commands
from shared.db import session_scope
from shared.models import Incident, IncidentReport
from tests.alert.apiclient import base_url, publish_logged, server
from tests.alert.conftest import Running, eventually
from tests.alert.events import T0, event
from tests.alert.test_copies import FORWARD, OWN_REPORT, SYNDICATED, WIRE
from tests.servers import WebhookReceiver

__all__ = ["base_url", "server"]   # fixtures

HEADLINE = "Car bomb kills three soldiers at Niamey checkpoint"


def wire(event_id: str, source: str, text: str, minutes: int, title: str = HEADLINE):
    return event(event_id, source=source, title=title, text=text, at=T0 + timedelta(minutes=minutes), killed=3)


async def _types(receiver: WebhookReceiver, count: int) -> list[tuple[str, int, str, str]]:
    async def enough() -> list:
        posts = [json.loads(p.body) for p in receiver.posts()]
        return posts if len(posts) >= count else []
    return [(p["type"], p["data"]["version"], p["data"]["corroboration"], p["data"]["corroboration_reason"])
            for p in await eventually(enough)]


async def _levels(running: Running) -> list[tuple[int, int, str]]:
    async with running.sessions() as session:
        return [(i.report_count, i.source_count, i.corroboration)
                for i in (await session.scalars(sa.select(Incident))).all()]


async def test_syndicated_copies_do_not_corroborate_and_an_own_report_does(
    running: Running, webhook_receiver: WebhookReceiver, base_url: str
) -> None:
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url, name="ops")
    await publish_logged(running, wire("ap-wire", "ap", WIRE, 0))
    assert await _types(webhook_receiver, 1) == [
        ("alert.fired", 1, "single_source", "sources 1 (1 independent)")]

    # The wire story under two more source ids: lightly edited (byline dropped, link added), and identical.
    await publish_logged(running, wire("blog-copy", "sahel-blog", SYNDICATED, 30))
    last = await publish_logged(running, wire("relay-copy", "tg-relay", WIRE, 45, title=""))
    await eventually(lambda: running.handled(last))
    assert await _levels(running) == [(3, 3, "single_source")]
    assert len(webhook_receiver.posts()) == 1                       # no alert.updated for a copy
    assert [(a.kind, a.version) for a in await running.alerts_on_stream()] == [("fired", 1)]

    # A report of its own of the same attack, from a fourth source: corroborated, one update.
    await publish_logged(running, event("rfi-own", source="rfi", title="Explosion meurtrière à Niamey",
                                        text=OWN_REPORT, at=T0 + timedelta(minutes=60), lang="fr"))
    assert (await _types(webhook_receiver, 2))[1] == (
        "alert.updated", 2, "corroborated", "sources 4 (2 independent: 2 syndicated copies)")
    update = json.loads(webhook_receiver.posts()[1].body)["data"]
    assert update["change"] == "sources 1→2; single_source→corroborated"
    assert update["independent_source_ids"] == ["ap", "rfi"]
    assert sorted(update["source_ids"]) == ["ap", "rfi", "sahel-blog", "tg-relay"]     # kept, not renamed
    assert await _levels(running) == [(4, 4, "corroborated")]

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        incidents = (await client.get("/api/incidents")).json()
        detail = (await client.get(f"/api/alerts/{update['alert_id']}")).json()
    assert len(incidents) == 1 and incidents[0]["independent_source_count"] == 2
    groups = [(g["origin"][:7], g["source_id"], [(r["event_id"][:10], r["source_id"]) for r in g["reports"]])
              for g in incidents[0]["origins"]]
    assert groups == [
        ("ap-wire", "ap", [("ap-wire000", "ap"), ("blog-copy0", "sahel-blog"), ("relay-copy", "tg-relay")]),
        ("rfi-own", "rfi", [("rfi-own000", "rfi")]),
    ]
    copies = incidents[0]["origins"][0]["reports"][1:]
    assert all(c["similarity"] >= 0.8 for c in copies)
    assert [(r["event_id"][:10], r["origin"][:7]) for r in detail["reports"]] == [
        ("ap-wire000", "ap-wire"), ("blog-copy0", "ap-wire"), ("relay-copy", "ap-wire"), ("rfi-own000", "rfi-own")]


async def test_the_first_word_delivered_late_becomes_the_origin_of_its_copies(running: Running) -> None:
    """A forward arrives first; the wire story it forwards, published earlier, arrives after: the wire story is
    the origin, the forward its copy, and still one independent source."""
    await running.publish_event(wire("tg-forward", "tg-relay", FORWARD, 40))
    last = await running.publish_event(wire("ap-wire", "ap", WIRE, 0))
    await eventually(lambda: running.handled(last))
    async with running.sessions() as session:
        rows = (await session.execute(sa.select(IncidentReport.event_id, IncidentReport.origin_id)
                                      .order_by(IncidentReport.event_id))).all()
    assert [(e[:10], o[:7]) for e, o in rows] == [("ap-wire000", "ap-wire"), ("tg-forward", "ap-wire")]
    assert await _levels(running) == [(2, 2, "single_source")]
    assert [(a.kind, a.version) for a in await running.alerts_on_stream()] == [("fired", 1)]
