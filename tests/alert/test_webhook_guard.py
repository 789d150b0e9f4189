"""The SSRF guard on webhooks: a receiver that redirects to an internal address, or an endpoint that is one,
is a failed delivery with the reason (never retried); `subscription` routes refuse such URLs on add and mask
URL credentials for everyone but admins. Real servers on 127.0.0.1."""

import httpx
import sqlalchemy as sa

from services.alert import commands, webhook
from services.alert.signing import new_secret
from services.alert.webhook import Outcome, deliver
from shared.db import session_scope
from shared.models import DeliveryAttempt, Notification
from shared.urlguard import UrlPolicy
from tests.alert.apiclient import base_url, bearer, make_token, server
from tests.alert.conftest import Running, eventually
from tests.alert.events import vbied_niamey_en
from tests.servers import FeedServer, WebhookReceiver

__all__ = ["base_url", "server"]   # fixtures

BODY = '{"type":"alert.fired","timestamp":"2026-11-20T08:30:00Z","data":{"title":"VBIED"}}'
MSG_ID = "msg_0123456789abcdef_v1"
ONLY_127_0_0_1 = UrlPolicy.parse("127.0.0.1/32")
REDIRECT_REFUSED = ("redirect to http://127.0.0.2:8080/hook refused: 127.0.0.2 is a loopback address; "
                    "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.2/32 (or 1) to allow it")


async def test_a_receiver_redirecting_to_an_internal_address_is_given_up_with_the_reason(
    feed_server: FeedServer,
) -> None:
    url = feed_server.route("/hook", b"", status=307, headers={"Location": "http://127.0.0.2:8080/hook"})
    async with webhook.client(5, ONLY_127_0_0_1) as client:
        result = await deliver(client, url, new_secret(), MSG_ID, BODY)
    assert (result.outcome, result.status_code, result.reason) == (Outcome.GAVE_UP, 307, REDIRECT_REFUSED)


async def test_an_endpoint_on_a_refused_address_is_never_contacted(webhook_receiver: WebhookReceiver) -> None:
    async with webhook.client(5, UrlPolicy()) as client:
        result = await deliver(client, webhook_receiver.url, new_secret(), MSG_ID, BODY)
    assert result.outcome is Outcome.GAVE_UP and result.status_code is None
    assert result.reason == ("refused: 127.0.0.1 is a loopback address; "
                             "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.1/32 (or 1) to allow it")
    assert webhook_receiver.posts() == []
    async with webhook.client(5, UrlPolicy.parse("1")) as client:
        opened = await deliver(client, webhook_receiver.url, new_secret(), MSG_ID, BODY)
    assert opened.outcome is Outcome.DELIVERED and len(webhook_receiver.posts()) == 1


async def test_the_dispatcher_records_a_refused_redirect_as_failed_not_retried(
    running: Running, feed_server: FeedServer,
) -> None:
    url = feed_server.route("/hook", b"", status=302, headers={"Location": "http://127.0.0.2:8080/hook"})
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, url)
    await running.publish_event(vbied_niamey_en())

    async def attempts() -> list[DeliveryAttempt]:
        async with running.sessions() as session:
            rows = list((await session.scalars(sa.select(DeliveryAttempt))).all())
        return [r for r in rows if r.outcome is not None and r.outcome != "sending"]

    [attempt] = await eventually(attempts)
    assert (attempt.outcome, attempt.status_code) == ("gave_up", 302)
    assert attempt.error == REDIRECT_REFUSED
    async with running.sessions() as session:
        [note] = (await session.scalars(sa.select(Notification))).all()
    assert note.state == "failed"
    assert len(feed_server.hits("/hook")) == 1


async def test_the_api_refuses_internal_urls_and_masks_credentials_for_non_admins(
    running: Running, base_url: str
) -> None:
    admin = await make_token(running.sessions, "ops lead", "admin")
    viewer = await make_token(running.sessions, "analyst", "viewer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for url, reason in [
            ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address "
                                                         "(cloud metadata); set WATCHFLOOR_ALLOW_PRIVATE_URLS"),
            ("http://10.0.0.1/hook", "refused: 10.0.0.1 is a private address"),
            ("not-a-url", "refused: 'not-a-url' is not a URL"),
            ("file:///etc/passwd", "refused: the file: scheme is not allowed, only http and https"),
        ]:
            refused = await client.post("/api/subscriptions", json={"url": url}, headers=bearer(admin))
            assert refused.status_code == 422, url
            assert refused.json()["detail"].startswith(reason)

        secret_url = "https://desk:s3cr3t@hooks.example.invalid/wf?token=abc123"
        added = await client.post("/api/subscriptions", json={"url": secret_url}, headers=bearer(admin))
        assert added.status_code == 201
        [seen_by_viewer] = (await client.get("/api/subscriptions", headers=bearer(viewer))).json()
        assert seen_by_viewer["url"] == "https://hooks.example.invalid/wf"
        [seen_by_admin] = (await client.get("/api/subscriptions", headers=bearer(admin))).json()
        assert seen_by_admin["url"] == secret_url


async def test_a_host_name_is_checked_at_the_connect_by_what_it_resolves_to(webhook_receiver: WebhookReceiver) -> None:
    """A name, not a literal IP: the client's resolver checks every address before connecting."""
    url = webhook_receiver.url.replace("127.0.0.1", "localhost")
    async with webhook.client(5, UrlPolicy()) as client:
        result = await deliver(client, url, new_secret(), MSG_ID, BODY)
    assert result.outcome is Outcome.GAVE_UP and "localhost resolves to 127.0.0.1" in (result.reason or "")
    assert webhook_receiver.posts() == []
    async with webhook.client(5, ONLY_127_0_0_1) as client:
        assert (await deliver(client, url, new_secret(), MSG_ID, BODY)).outcome is Outcome.DELIVERED
