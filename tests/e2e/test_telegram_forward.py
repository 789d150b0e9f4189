"""Issue 10's must-show, through `watchfloor up` (real Redis, PostgreSQL and SQLite): a Telegram forward of a wire
story links to it and does not raise corroboration, though its words are not the story's.

  t=0   the wire story of a car bomb in Niamey claimed by IS Sahel is pushed under `sahel-wire`, with its address:
        alert.fired, single_source
  t=1   @sahel_relay_ne forwards the wire's Telegram post of it (a headline and the story's link): it joins the
        incident as a forward of the wire story; nothing is sent
  t=2   @niger_alerts forwards the same wire post: a forward of it too
  t=3   a report of its own from @tillaberi_info: alert.updated, corroborated, "sources 4 (2 independent: 2
        syndicated copies)"; GET /api/incidents groups the forwards under the wire story, `via` "forward"
"""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.test_officer_scenario import RULE, SECRET, deliveries, query, wait
from tests.servers import FeedServer, WebhookReceiver
from tests.telegram_preview import Msg, preview_page

pytestmark = pytest.mark.e2e

HTML = "text/html; charset=utf-8"
STORY_URL = "https://www.sahel-wire.example/2026/12/niamey-car-bomb/"
WIRE_TITLE = "Suicide car bomb hits army post near Niamey; IS Sahel claims it"
WIRE_TEXT = ("NIAMEY (Sahel Wire) - A suicide bomber drove an explosives-laden vehicle into a Nigerien army post on "
             "the northern outskirts of Niamey at dawn on Tuesday, killing three soldiers, security sources said. "
             "Islamic State Sahel Province claimed the attack in a statement on its Amaq channel.")
# What the wire's own channel posted: its headline and the story's link (tracking parameters and all).
WIRE_POST = ("⚡️ Niamey: suicide car bomb at army post, 3 soldiers killed. IS Sahel claims it. "
             "http://sahel-wire.example/2026/12/niamey-car-bomb?utm_source=telegram")
FORWARDED = ("Sahel Wire", "https://t.me/sahelwire/812")
OWN = ("Explosion ce matin à Niamey : un kamikaze au volant d'un véhicule piégé a visé un poste de l'armée "
       "nigérienne à la sortie nord de la ville. L'État islamique au Sahel a revendiqué l'attaque. Bilan : trois "
       "militaires tués selon nos sources sur place.")


def _channel(server: FeedServer, channel: str, messages: list[Msg]) -> None:
    server.route(f"/s/{channel}", preview_page(channel, messages), content_type=HTML)
    server.route(f"/s/{channel}?before={messages[0].id}", preview_page(channel, []), content_type=HTML)


def test_a_telegram_forward_of_a_wire_story_links_to_it(system: System, feed_server: FeedServer,
                                                        webhook_receiver: WebhookReceiver, db_url: str) -> None:
    attack = datetime.now(UTC) - timedelta(hours=2)
    system.env["WATCHFLOOR_TELEGRAM_BASE_URL"] = feed_server.base_url
    system.start()
    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)

    response = httpx.post(f"{system.base_url}/ingest", timeout=5, json={
        "source": "sahel-wire", "lang": "en", "title": WIRE_TITLE, "text": WIRE_TEXT, "url": STORY_URL,
        "published_at": attack.isoformat()})
    assert response.status_code == 202, response.text
    fired = wait(lambda: deliveries(webhook_receiver), 20, "alert.fired", system)
    assert [(d["type"], d["data"]["corroboration"]) for d in fired] == [("alert.fired", "single_source")]

    _channel(feed_server, "sahel_relay_ne",
             [Msg(3301, WIRE_POST, attack + timedelta(minutes=20), forwarded_from=FORWARDED)])
    system.cli("source", "add", "telegram:sahel_relay_ne", "--interval", "1")
    wait(lambda: query(db_url, "SELECT count(*) FROM incident_reports")[0][0] == 2, 20, "the forward joined", system)

    _channel(feed_server, "niger_alerts",
             [Msg(77, WIRE_POST.replace("⚡️ ", ""), attack + timedelta(minutes=25), forwarded_from=FORWARDED)])
    system.cli("source", "add", "https://t.me/niger_alerts", "--interval", "1")
    wait(lambda: query(db_url, "SELECT count(*) FROM incident_reports")[0][0] == 3, 20, "the second forward joined",
         system)
    time.sleep(1.0)                                     # an update, were one made, would be on its way
    assert len(webhook_receiver.posts()) == 1, "a forward sent an update"
    assert query(db_url, "SELECT corroboration, source_count FROM incidents") == [("single_source", 3)]

    _channel(feed_server, "tillaberi_info", [Msg(9, OWN, attack + timedelta(minutes=30))])
    system.cli("source", "add", "telegram:tillaberi_info", "--interval", "1")
    updated = wait(lambda: [d for d in deliveries(webhook_receiver) if d["type"] == "alert.updated"], 20,
                   "alert.updated", system)
    assert [(d["data"]["corroboration"], d["data"]["corroboration_reason"]) for d in updated] == [
        ("corroborated", "sources 4 (2 independent: 2 syndicated copies)")]

    incidents = httpx.get(f"{system.base_url}/api/incidents", timeout=5).json()
    groups = [(g["source_id"], [(r["source_id"], r["via"]) for r in g["reports"]]) for g in incidents[0]["origins"]]
    assert groups == [
        ("sahel-wire", [("sahel-wire", None), ("telegram-sahel_relay_ne", "forward"),
                        ("telegram-niger_alerts", "forward")]),
        ("telegram-tillaberi_info", [("telegram-tillaberi_info", None)])]
    alert = httpx.get(f"{system.base_url}/api/alerts/{updated[0]['data']['alert_id']}", timeout=5).json()
    assert {(r["source_id"], r["via"]) for r in alert["reports"]} >= {("telegram-sahel_relay_ne", "forward")}
    assert "retry stage=" not in system.logs() and "Traceback" not in system.logs(), system.logs()  # none failed
    assert system.stop() == 0, system.logs()
