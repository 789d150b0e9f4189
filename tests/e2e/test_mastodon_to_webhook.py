"""A Mastodon account in, one signed webhook out, through `watchfloor up` on real Redis with both databases.

Timeline:
  t=0   a local server plays mastodon.social's API for @sahelwatch, whose newest status reports a car bomb
        near Niamey airport claimed by IS Sahel
  t=0   ops add the rule, a webhook subscription and `mastodon:@sahelwatch@mastodon.social` with the CLI
  ≤15s  the receiver gets exactly one alert, signed
  later a new status is read on the next poll (min_id), and nothing is sent twice
"""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JSON = "application/json; charset=utf-8"
ACCOUNT = "109348251146378431"
STATUSES = f"/api/v1/accounts/{ACCOUNT}/statuses"

pytestmark = pytest.mark.e2e


def status(sid: int, html: str, at: datetime) -> dict:
    return {
        "id": str(sid), "created_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "spoiler_text": "", "visibility": "public", "language": "en", "content": html, "reblog": None,
        "uri": f"https://mastodon.social/users/sahelwatch/statuses/{sid}",
        "url": f"https://mastodon.social/@sahelwatch/{sid}", "media_attachments": [], "edited_at": None,
        "account": {"id": ACCOUNT, "username": "sahelwatch", "acct": "sahelwatch"},
    }


def source_health(system) -> dict:
    rows = [json.loads(line) for line in system.cli("source", "list", "--json").stdout.splitlines()]
    return next(r for r in rows if r["kind"] == "mastodon")


def test_a_mastodon_car_bomb_report_gives_one_signed_alert(system, feed_server, webhook_receiver) -> None:
    now = datetime.now(UTC)
    older = status(113570000000000100, "<p>Maradi : les marchés rouverts après les inondations.</p>",
                   now - timedelta(minutes=40))
    bomb = status(113570000000000200, "<p>Suicide car bomb hits an army post near Niamey airport at dawn; IS Sahel"
                  " claims the attack in a statement on Amaq.</p>", now - timedelta(minutes=10))
    feed_server.route("/api/v1/accounts/lookup?acct=sahelwatch", json.dumps({"id": ACCOUNT}), content_type=JSON)
    feed_server.route(f"{STATUSES}?limit=40", json.dumps([bomb, older]), content_type=JSON)  # newest first
    feed_server.route(f"{STATUSES}?limit=40&min_id=113570000000000200", "[]", content_type=JSON)
    system.env["WATCHFLOOR_MASTODON_BASE_URL"] = feed_server.base_url
    system.start()

    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    system.cli("source", "add", "mastodon:@sahelwatch@mastodon.social", "--interval", "1")

    posts = webhook_receiver.wait_for(1, timeout=15)
    assert len(posts) == 1, f"no webhook within 15 s\n{system.logs()}"
    payload = Webhook(SECRET).verify(posts[0].body, posts[0].headers)
    assert payload["type"] == "alert.fired"
    assert "ISSP" in payload["data"]["actors"] and payload["data"]["place"]["country"] == "NE"

    newer = status(113570000000000300, "<p>Zinder : la route nationale 1 rouverte à la circulation.</p>",
                   datetime.now(UTC))
    feed_server.route(f"{STATUSES}?limit=40&min_id=113570000000000200", json.dumps([newer]), content_type=JSON)
    feed_server.route(f"{STATUSES}?limit=40&min_id=113570000000000300", "[]", content_type=JSON)
    deadline = time.monotonic() + 15
    while source_health(system)["posts_seen"] < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert source_health(system)["posts_seen"] == 3, system.logs()
    deadline = time.monotonic() + 15  # a wait of its own: the one above may have used most of its time under load
    while not feed_server.hits(f"{STATUSES}?limit=40&min_id=113570000000000300") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert feed_server.hits(f"{STATUSES}?limit=40&min_id=113570000000000300")  # the cursor moved on
    time.sleep(1.5)
    assert len(webhook_receiver.posts()) == 1
    assert len(feed_server.hits("/api/v1/accounts/lookup?acct=sahelwatch")) == 1
    assert source_health(system)["status"] == "ok"

    assert system.stop() == 0, system.logs()
