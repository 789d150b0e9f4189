"""A feed in, one signed webhook out: the scenario of issue 3, on real Redis with PostgreSQL and SQLite.

Timeline:
  t=0   the feed carries an English and a French report of one suicide car bomb near Niamey airport
  t=0   ops add the rule, a webhook subscription and the feed with the CLI, while `watchfloor up` runs
  ≤10s  the receiver gets exactly one alert, signed, verified with the standardwebhooks package
  later the feed is polled again: nothing more is sent
"""

import json
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import fresh_feed

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

pytestmark = pytest.mark.e2e


def test_two_reports_of_one_car_bomb_give_one_signed_alert(system, feed_server, webhook_receiver) -> None:
    feed_url = feed_server.route("/sahel.xml", fresh_feed("niamey_vbied.rss.xml"),
                                 headers={"ETag": '"v1"'})
    system.start()

    assert "issp-niamey-50km" in system.cli("rule", "add", str(RULE)).stdout
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    started = time.monotonic()
    system.cli("source", "add", feed_url, "--name", "sahel-wire", "--interval", "1")

    posts = webhook_receiver.wait_for(1, timeout=10)
    assert len(posts) == 1, f"no webhook within 10 s\n{system.logs()}"
    assert time.monotonic() - started < 10

    delivery = posts[0]
    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)  # raises if the signature is wrong
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert payload["type"] == "alert.fired"
    alert = payload["data"]
    assert alert["rule_id"] == "issp-niamey-50km"
    assert "ISSP" in alert["actors"]
    assert "vbied" in alert["tactics"]
    assert alert["place"]["country"] == "NE"
    # Why it fired, for the receiver too: the rule's reasons and the words of the report behind each label.
    assert any("ISSP" in reason for reason in alert["matched"])
    quoted = {span["text"].lower() for span in alert["evidence"]}
    assert any("is sahel" in text or "islamic state" in text for text in quoted), quoted
    assert any("car bomb" in text or "explosives-laden vehicle" in text for text in quoted), quoted

    # The feed is polled again (conditional GET, then a full one): nothing more is sent.
    polls = len(feed_server.hits("/sahel.xml"))
    deadline = time.monotonic() + 10
    while len(feed_server.hits("/sahel.xml")) < polls + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(feed_server.hits("/sahel.xml")) >= polls + 2
    time.sleep(1.5)
    assert len(webhook_receiver.posts()) == 1

    # What ops see: one alert in the event log, its delivery recorded, the source healthy.
    listed = [json.loads(line) for line in system.cli("alerts", "--json").stdout.splitlines()]
    assert [a["rule_id"] for a in listed] == ["issp-niamey-50km"]
    api = httpx.get(f"{system.base_url}/api/alerts", timeout=5).json()
    assert len(api) == 1
    sources = system.cli("source", "list").stdout
    assert "sahel-wire" in sources and "FAILING" not in sources

    assert system.stop() == 0, system.logs()
