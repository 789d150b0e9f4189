"""A Bluesky account in, one signed webhook out, through `watchfloor up` on real Redis with both databases.

Timeline:
  t=0   a local server plays the public AppView's author feed for sahelwatch.bsky.social, whose newest post
        reports a car bomb near Niamey airport claimed by IS Sahel
  t=0   ops add the rule, a webhook subscription and `bluesky:sahelwatch.bsky.social` with the CLI
  ≤15s  the receiver gets exactly one alert, signed
  later a new post is read on the next poll (past the indexedAt|uri cursor), and nothing is sent twice
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
DID = "did:plc:q6gjnaw2blty4crticxkmujt"
FEED = "/xrpc/app.bsky.feed.getAuthorFeed?actor=sahelwatch.bsky.social&limit=30"

pytestmark = pytest.mark.e2e


def item(rkey: str, text: str, at: datetime) -> dict:
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"post": {
        "uri": f"at://{DID}/app.bsky.feed.post/{rkey}", "cid": f"bafyrei{rkey}",
        "author": {"did": DID, "handle": "sahelwatch.bsky.social", "displayName": "Sahel Watch"},
        "record": {"$type": "app.bsky.feed.post", "createdAt": stamp, "langs": ["en"], "text": text},
        "replyCount": 0, "repostCount": 0, "likeCount": 0, "indexedAt": stamp, "labels": [],
    }}


def source_health(system) -> dict:
    rows = [json.loads(line) for line in system.cli("source", "list", "--json").stdout.splitlines()]
    return next(r for r in rows if r["kind"] == "bluesky")


def test_a_bluesky_car_bomb_report_gives_one_signed_alert(system, feed_server, webhook_receiver) -> None:
    now = datetime.now(UTC)
    older = item("3lcorb3rmqs2a", "Maradi : les marchés rouverts après les inondations.", now - timedelta(minutes=40))
    bomb = item("3lcoufwpf4c2k", "Suicide car bomb hits an army post near Niamey airport at dawn; IS Sahel claims"
                " the attack in a statement on Amaq.", now - timedelta(minutes=10))
    feed_server.route(FEED, json.dumps({"feed": [bomb, older], "cursor": "c1"}), content_type=JSON)  # newest first
    system.env["WATCHFLOOR_BLUESKY_BASE_URL"] = feed_server.base_url
    system.start()

    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    system.cli("source", "add", "bluesky:sahelwatch.bsky.social", "--interval", "1")

    posts = webhook_receiver.wait_for(1, timeout=15)
    assert len(posts) == 1, f"no webhook within 15 s\n{system.logs()}"
    payload = Webhook(SECRET).verify(posts[0].body, posts[0].headers)
    assert payload["type"] == "alert.fired"
    assert "ISSP" in payload["data"]["actors"] and payload["data"]["place"]["country"] == "NE"

    newer = item("3lcowzzzzzz2c", "Zinder : la route nationale 1 rouverte à la circulation.", datetime.now(UTC))
    feed_server.route(FEED, json.dumps({"feed": [newer, bomb, older], "cursor": "c2"}), content_type=JSON)
    deadline = time.monotonic() + 15
    while source_health(system)["posts_seen"] < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert source_health(system)["posts_seen"] == 3, system.logs()
    hits = len(feed_server.hits(FEED))
    deadline = time.monotonic() + 15  # a wait of its own: the one above may have used most of its time under load
    while len(feed_server.hits(FEED)) < hits + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(feed_server.hits(FEED)) >= hits + 2  # polled on, the same page again
    time.sleep(1.5)
    assert len(webhook_receiver.posts()) == 1
    assert source_health(system)["posts_seen"] == 3
    assert source_health(system)["status"] == "ok"

    assert system.stop() == 0, system.logs()
