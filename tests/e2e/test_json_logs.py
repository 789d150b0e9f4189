"""Through `watchfloor up` with JSON logs: one pushed post is followed by its `post_id` field through every stage,
ingest (published), classify (classified), alert (alert fired) and deliver (queued for the webhook), with no
parsing of the message text; the webhook sender's line carries the alert's id."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import System
from tests.servers import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULES = Path(__file__).resolve().parents[2] / "rules"
pytestmark = pytest.mark.e2e


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_stage_logs_the_post_id_as_a_field(system: System, webhook_receiver: WebhookReceiver) -> None:
    system.env["WATCHFLOOR_LOG_FORMAT"] = "json"
    system.start()
    system.cli("rule", "add", str(RULES / "issp-niamey-50km.yaml"))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)

    response = httpx.post(f"{system.base_url}/ingest", timeout=5, json={
        "source": "niger-wire", "url": "https://niger-wire.example/1",
        "published_at": (datetime.now(UTC) - timedelta(minutes=10)).isoformat(),
        "title": "Suicide car bomb hits army post near Niamey airport; IS Sahel claims it",
        "text": "A suicide car bomb struck an army post near Niamey airport on Sunday, killing five soldiers. "
                "The Islamic State Sahel Province claimed the attack."})
    assert response.status_code == 202, response.text
    post_id = response.json()["post_id"]

    deadline = time.monotonic() + 30
    while not webhook_receiver.posts():
        assert time.monotonic() < deadline, system.logs()[-4000:]
        time.sleep(0.2)
    [delivered] = [Webhook(SECRET).verify(p.body, p.headers) for p in webhook_receiver.posts()]
    alert_id = delivered["data"]["alert_id"]
    time.sleep(0.5)  # the deliver stage logs "queued" before its sender posts; let the last lines land

    lines = json_lines(system.logs())
    assert lines, system.logs()[-2000:]
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    about_post = [line for line in lines if line.get("post_id") == post_id]
    by_logger = {line["logger"]: line for line in about_post}
    published = by_logger["services.ingest.outbox"]
    assert published["msg"].startswith(f"published post={post_id[:6]}") and published["source_id"] == "niger-wire"
    classified = by_logger["services.classify.app"]
    assert classified["msg"].startswith(f"classified post={post_id[:6]}")
    fired = next(line for line in about_post if line["logger"] == "services.alert.pipeline"
                 and line["msg"].startswith("alert fired"))
    assert (fired["alert_id"], fired["event_id"], fired["version"]) == (alert_id, post_id, 1)
    queued = by_logger["services.alert.dispatch"]   # the deliver stage: the alert's entry carried the post's ids
    assert queued["msg"].startswith(f"queued alert={alert_id[:8]}")
    assert (queued["alert_id"], queued["event_id"]) == (alert_id, post_id)
    sent = next(line for line in lines if line["msg"].startswith("webhook delivered"))  # the sender, after it
    assert (sent["alert_id"], sent["outcome"], sent["attempt"]) == (alert_id, "delivered", 1)
    assert system.stop() == 0, system.logs()[-2000:]
