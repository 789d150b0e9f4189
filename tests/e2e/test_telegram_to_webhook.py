"""A Telegram channel in, one signed webhook out, through `watchfloor up` on real Redis with both databases.

Timeline:
  t=0   a local server plays t.me's preview of @sahel_relay_ne: a market notice, then a report of a car bomb
        near Niamey airport claimed by IS Sahel (the newest message)
  t=0   ops add the rule, a webhook subscription and `telegram:sahel_relay_ne` with the CLI
  ≤15s  the receiver gets exactly one alert, signed
  later a new message appears on the channel: it is read on the next poll, and nothing is sent twice
"""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.telegram_preview import Msg, preview_page

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HTML = "text/html; charset=utf-8"
CHANNEL = "sahel_relay_ne"

pytestmark = pytest.mark.e2e


def source_health(system) -> dict:
    rows = [json.loads(line) for line in system.cli("source", "list", "--json").stdout.splitlines()]
    return next(r for r in rows if r["id"] == f"telegram-{CHANNEL}")


def test_a_telegram_car_bomb_report_gives_one_signed_alert(system, feed_server, webhook_receiver) -> None:
    now = datetime.now(UTC)
    messages = [
        Msg(4410, "Maradi : les marchés rouverts après les inondations, selon la mairie.", now - timedelta(minutes=50)),
        Msg(4411, "Suicide car bomb hits an army post near Niamey airport at dawn; IS Sahel claims the attack in a"
            " statement on Amaq.", now - timedelta(minutes=10)),
    ]
    feed_server.route(f"/s/{CHANNEL}", preview_page(CHANNEL, messages), content_type=HTML)
    feed_server.route(f"/s/{CHANNEL}?before=4410", preview_page(CHANNEL, []), content_type=HTML)
    system.env["WATCHFLOOR_TELEGRAM_BASE_URL"] = feed_server.base_url
    system.start()

    assert "issp-niamey-50km" in system.cli("rule", "add", str(RULE)).stdout
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    added = system.cli("source", "add", f"telegram:{CHANNEL}", "--interval", "1").stdout
    assert f"telegram-{CHANNEL}" in added

    posts = webhook_receiver.wait_for(1, timeout=15)
    assert len(posts) == 1, f"no webhook within 15 s\n{system.logs()}"
    payload = Webhook(SECRET).verify(posts[0].body, posts[0].headers)  # raises if the signature is wrong
    assert payload["type"] == "alert.fired"
    alert = payload["data"]
    assert alert["rule_id"] == "issp-niamey-50km"
    assert "ISSP" in alert["actors"] and "vbied" in alert["tactics"]
    assert alert["place"]["country"] == "NE"
    assert len(feed_server.hits(f"/s/{CHANNEL}?before=4410")) == 1  # the first poll read back once

    # A new message on the channel: read on the next poll; the car bomb is not alerted again.
    messages.append(Msg(4412, "Zinder : la route nationale 1 rouverte à la circulation.", datetime.now(UTC)))
    feed_server.route(f"/s/{CHANNEL}", preview_page(CHANNEL, messages), content_type=HTML)
    deadline = time.monotonic() + 15
    while source_health(system)["posts_seen"] < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    health = source_health(system)
    assert health["posts_seen"] == 3, system.logs()
    assert health["status"] == "ok" and health["kind"] == "telegram"
    polls = len(feed_server.hits(f"/s/{CHANNEL}"))
    while len(feed_server.hits(f"/s/{CHANNEL}")) < polls + 2 and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    time.sleep(1.5)
    assert len(webhook_receiver.posts()) == 1
    assert len(feed_server.hits(f"/s/{CHANNEL}?before=4410")) == 1  # later polls do not read back
    assert source_health(system)["posts_seen"] == 3

    # The car bomb message is edited on Telegram: its post is updated and classified again, the same alert
    # at most updated, never a second one fired.
    messages[1] = Msg(4411, messages[1].text + " Update: 12 soldiers killed.", messages[1].at, edited=True)
    feed_server.route(f"/s/{CHANNEL}", preview_page(CHANNEL, messages), content_type=HTML)
    deadline = time.monotonic() + 15
    while "edited=1" not in system.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "edited=1" in system.logs(), system.logs()
    time.sleep(3)
    kinds = [Webhook(SECRET).verify(p.body, p.headers)["type"] for p in webhook_receiver.posts()]
    assert kinds.count("alert.fired") == 1, kinds
    assert source_health(system)["posts_seen"] == 3

    assert system.stop() == 0, system.logs()
