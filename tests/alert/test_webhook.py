"""One webhook attempt against real HTTP servers on 127.0.0.1: what each answer means."""

import socket
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from services.alert import webhook
from services.alert.dispatch import retry_delay
from services.alert.signing import new_secret, signed_headers
from services.alert.webhook import Outcome, deliver
from shared.retry_after import retry_after_seconds
from tests.servers import FeedServer, WebhookReceiver

BODY = '{"type":"alert.fired","timestamp":"2026-11-20T08:30:00Z","data":{"title":"Véhicule piégé"}}'
MSG_ID = "msg_0123456789abcdef_v1"


def test_secret_and_signature_follow_standard_webhooks() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    headers = signed_headers(BODY, secret, MSG_ID, datetime.now(UTC))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers)["data"]["title"] == "Véhicule piégé"
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(BODY, headers)


async def test_delivered_on_2xx_with_signed_exact_bytes(webhook_receiver: WebhookReceiver) -> None:
    secret = new_secret()
    async with webhook.client(5) as client:
        result = await deliver(client, webhook_receiver.url, secret, MSG_ID, BODY)
    assert (result.outcome, result.status_code) == (Outcome.DELIVERED, 200)
    [post] = webhook_receiver.posts()
    assert post.body == BODY.encode()
    assert Webhook(secret).verify(post.body, post.headers)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(500, Outcome.RETRY), (503, Outcome.RETRY), (429, Outcome.RETRY), (408, Outcome.RETRY),
     (400, Outcome.GAVE_UP), (401, Outcome.GAVE_UP), (404, Outcome.GAVE_UP), (410, Outcome.GAVE_UP)],
    ids=["500 retried", "503 retried", "429 throttled", "408 retried", "400 gave up", "401 gave up",
         "404 gave up", "410 gave up and disables (Standard Webhooks)"],
)
async def test_status_codes(webhook_receiver: WebhookReceiver, status: int, outcome: Outcome) -> None:
    webhook_receiver.default_status = status
    async with webhook.client(5) as client:
        result = await deliver(client, webhook_receiver.url, new_secret(), MSG_ID, BODY)
    assert (result.outcome, result.status_code, result.reason) == (outcome, status, result.reason)
    assert result.reason and str(status) in result.reason
    assert result.disable_subscription == (status == 410)


async def test_retry_after_is_read(feed_server: FeedServer) -> None:
    url = feed_server.route("/hook", b"slow down", status=429, headers={"Retry-After": "7"})
    async with webhook.client(5) as client:
        result = await deliver(client, url, new_secret(), MSG_ID, BODY)
    assert (result.outcome, result.retry_after_s) == (Outcome.RETRY, 7.0)


async def test_redirect_is_not_followed(feed_server: FeedServer) -> None:
    url = feed_server.route("/old", b"", status=301, headers={"Location": feed_server.base_url + "/new?t=1"})
    feed_server.route("/new", b"ok", status=200)
    async with webhook.client(5) as client:
        result = await deliver(client, url, new_secret(), MSG_ID, BODY)
    assert result.outcome is Outcome.RETRY and "not followed" in (result.reason or "")
    assert "t=1" not in (result.reason or "")              # query strings can hold tokens: redacted
    assert feed_server.hits("/new") == []


async def test_timeout_and_refused_connection_are_retried(feed_server: FeedServer) -> None:
    slow = feed_server.route("/slow", b"ok", delay=1.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"   # bound, not listening: refused
        async with webhook.client(0.3) as client:
            timed_out = await deliver(client, slow, new_secret(), MSG_ID, BODY)
            refused = await deliver(client, closed, new_secret(), MSG_ID, BODY)
    assert (timed_out.outcome, timed_out.reason) == (Outcome.RETRY, "timed out waiting for the receiver")
    assert refused.outcome is Outcome.RETRY and (refused.reason or "").startswith("cannot connect")


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert retry_after_seconds("Fri, 20 Nov 2026 08:31:00 GMT", now) == 60
    assert retry_after_seconds("soon", now) is None


def test_retry_schedule_with_jitter_then_give_up() -> None:
    import random

    schedule = [5.0, 300.0, 1800.0]
    rng = random.Random(7)
    delays = [retry_delay(n, schedule, 0.2, None, 86400, rng) for n in (1, 2, 3)]
    for delay, base in zip(delays, schedule, strict=True):
        assert delay is not None and base * 0.8 <= delay <= base * 1.2
    assert retry_delay(4, schedule, 0.2, None, 86400, rng) is None            # 4 attempts, then failed
    assert retry_delay(1, schedule, 0.0, 600, 86400, rng) == 600               # Retry-After wins when longer
    assert retry_delay(1, schedule, 0.0, 10 * 86400, 86400, rng) == timedelta(days=1).total_seconds()
