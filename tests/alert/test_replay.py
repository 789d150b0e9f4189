"""Nothing owed is lost, on real Redis, both databases and real receivers on 127.0.0.1: failed and missed
webhooks replayed by one command with their original webhook-id, subscriptions disabled and enabled again
(one a 410 disabled too), secrets rotated with an overlap, every attempt on record before it is sent."""

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from standardwebhooks import Webhook, WebhookVerificationError

from services.alert import commands, store_deliveries
from services.alert.store_subscriptions import signing_secrets
from shared import ids
from shared.db import session_scope
from shared.models import DeliveryAttempt, Notification, Subscription
from tests.alert.apiclient import base_url, bearer, make_token, server
from tests.alert.conftest import Running, alert_settings, eventually, run_service
from tests.alert.events import vbied_niamey_en, vbied_niamey_fr
from tests.servers import WebhookReceiver
from watchfloor.cli import main

__all__ = ["base_url", "server"]   # fixtures

CLI = Callable[..., Awaitable[Result]]


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`watchfloor …` as an operator types it in a second terminal, beside the running service."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        result = await asyncio.to_thread(runner.invoke, main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    return invoke


async def _subscribe(running: Running, url: str, secret: str | None = None) -> tuple[int, str]:
    async with session_scope(running.sessions) as session:
        sub, used = await commands.add_subscription(session, url, secret=secret)
        return sub.id, used


async def _notes(running: Running, state: str | None = None, count: int = 1) -> list[Notification]:
    async def check() -> list[Notification]:
        async with running.sessions() as session:
            rows = list((await session.scalars(sa.select(Notification).order_by(Notification.id))).all())
        chosen = [n for n in rows if state is None or n.state == state]
        return chosen if len(chosen) >= count else []
    return await eventually(check, within=10.0)


async def _posts(receiver: WebhookReceiver, count: int, within: float = 10.0) -> list:
    async def enough() -> list:
        posts = receiver.posts()
        return posts if len(posts) >= count else []
    return await eventually(enough, within=within)


async def _settle(running: Running) -> None:
    """Several dispatcher passes: long enough for a duplicate, were one to be sent."""
    await asyncio.sleep(running.settings.dispatch_poll_seconds * 5)


async def test_receiver_down_then_up_one_replay_sends_each_once_with_its_original_webhook_id(
    running: Running, wf: CLI
) -> None:
    receiver = WebhookReceiver()
    port = receiver.port
    receiver.close()                                            # down: connections refused
    sub_id, secret = await _subscribe(running, f"http://127.0.0.1:{port}/hook")
    await running.publish_event(vbied_niamey_en())
    await _notes(running, "failed", 1)
    await running.publish_event(vbied_niamey_fr())              # corroborated: version 2, failed too
    failed = await _notes(running, "failed", 2)
    assert [n.attempts for n in failed] == [3, 3]               # schedule [0.2, 0.2]: 3 attempts each
    alert_id = failed[0].alert_id

    listed = await wf("delivery", "list", "--failed", "--subscription", str(sub_id))
    assert listed.output.count(" failed ") == 2 and "cannot connect" in listed.output
    assert f"msg_{alert_id[:32]}_v1" in listed.output

    receiver = WebhookReceiver(port)                            # back, at the same address
    try:
        replayed = await wf("delivery", "replay")
        assert "2 notification(s) queued for replay" in replayed.output
        posts = await _posts(receiver, 2)
        await _settle(running)
        assert len(receiver.posts()) == 2                       # each exactly once
        assert sorted(p.headers["webhook-id"] for p in posts) == [
            ids.webhook_message_id(alert_id, 1), ids.webhook_message_id(alert_id, 2)]
        for post in posts:
            Webhook(secret).verify(post.body, post.headers)
        assert {n.body.encode() for n in failed} == {p.body for p in posts}   # the same bytes as first owed
        await _notes(running, "delivered", 2)
        again = await wf("delivery", "replay")                  # nothing left to replay
        assert "0 notification(s) queued" in again.output
        await _settle(running)
        assert len(receiver.posts()) == 2
    finally:
        receiver.close()
    async with running.sessions() as session:
        rows = (await session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.id))).all()
    assert [r.outcome for r in rows].count("retry") == 6 and [r.outcome for r in rows].count("delivered") == 2
    assert sorted(r.attempt for r in rows if r.outcome == "delivered") == [4, 4]   # attempt numbers go on


async def test_replay_of_one_alert_since_a_time(running: Running, wf: CLI, webhook_receiver: WebhookReceiver
                                                ) -> None:
    webhook_receiver.default_status = 503
    await _subscribe(running, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    [note] = await _notes(running, "failed", 1)
    assert len(webhook_receiver.posts()) == 3
    webhook_receiver.default_status = 200
    future = await wf("delivery", "replay", "--since", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert "0 notification(s) queued" in future.output
    mine = await wf("delivery", "replay", "--alert", note.alert_id[:10], "--since", "1h")
    assert "1 notification(s) queued" in mine.output
    posts = await _posts(webhook_receiver, 4)
    assert posts[3].headers["webhook-id"] == posts[0].headers["webhook-id"]


async def test_what_fired_while_disabled_is_offered_on_enable_and_sent_by_the_command_it_prints(
    running: Running, wf: CLI, webhook_receiver: WebhookReceiver
) -> None:
    sub_id, secret = await _subscribe(running, webhook_receiver.url)
    await wf("subscription", "disable", str(sub_id), "--reason", "receiver maintenance")
    listed = await wf("subscription", "list")
    assert "receiver maintenance" in listed.output
    await running.publish_event(vbied_niamey_en())
    await running.publish_event(vbied_niamey_fr())
    await _notes(running, "missed", 1)
    await _notes(running, "superseded", 1)                      # v1 gives way to v2: the latest, not a burst
    await _settle(running)
    assert webhook_receiver.posts() == []                        # nothing sent while disabled

    enabled = await wf("subscription", "enable", str(sub_id))
    assert "1 alert(s) fired while disabled" in enabled.output
    command = re.search(r"`watchfloor (delivery replay [^`]+)`", enabled.output)
    assert command is not None and f"--subscription {sub_id} --since " in command.group(1)
    await _settle(running)
    assert webhook_receiver.posts() == []                        # offered, not sent unasked

    replayed = await wf(*command.group(1).split())
    assert "1 notification(s) queued" in replayed.output
    [post] = await _posts(webhook_receiver, 1)
    assert post.headers["webhook-id"].endswith("_v2")
    assert Webhook(secret).verify(post.body, post.headers)["data"]["version"] == 2
    await _settle(running)
    assert len(webhook_receiver.posts()) == 1


async def test_a_subscription_a_410_disabled_is_enabled_again_with_what_it_missed(
    running: Running, wf: CLI, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.default_status = 410
    sub_id, _ = await _subscribe(running, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    await _notes(running, "failed", 1)
    listed = await wf("subscription", "list")
    assert "410" in listed.output
    await running.publish_event(vbied_niamey_fr())               # fires while disabled by the 410
    await _notes(running, "missed", 1)

    webhook_receiver.default_status = 200                        # the receiver is fixed
    enabled = await wf("subscription", "enable", str(sub_id), "--replay-missed")
    assert "1 notification(s) missed while disabled queued" in enabled.output
    assert f"1 earlier failed delivery(ies) kept: `watchfloor delivery replay --subscription {sub_id}`" \
        in enabled.output
    posts = await _posts(webhook_receiver, 2)
    assert posts[1].headers["webhook-id"].endswith("_v2")
    await wf("delivery", "replay", "--subscription", str(sub_id))  # and the one the 410 answered
    posts = await _posts(webhook_receiver, 3)
    assert posts[2].headers["webhook-id"] == posts[0].headers["webhook-id"]
    await _settle(running)
    assert len(webhook_receiver.posts()) == 3
    async with running.sessions() as session:
        sub = await session.get(Subscription, sub_id)
        assert sub is not None and sub.enabled and sub.disabled_reason is None


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    running: Running, wf: CLI, webhook_receiver: WebhookReceiver
) -> None:
    sub_id, old = await _subscribe(running, webhook_receiver.url)
    rotated = await wf("subscription", "rotate-secret", str(sub_id), "--overlap", "24h")
    new = re.search(r"secret: (whsec_\S+)", rotated.output).group(1)  # type: ignore[union-attr]
    assert "the old one also signs until" in rotated.output and new != old
    await running.publish_event(vbied_niamey_en())
    [post] = await _posts(webhook_receiver, 1)
    signatures = post.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(old).verify(post.body, post.headers)["data"]["version"] == 1   # a receiver not yet switched
    assert Webhook(new).verify(post.body, post.headers)["data"]["version"] == 1   # one already switched

    async with running.sessions() as session:
        sub = await session.get(Subscription, sub_id)
    assert sub is not None and sub.previous_secret_until is not None
    assert signing_secrets(sub, sub.previous_secret_until - timedelta(seconds=1)) == [new, old]
    assert signing_secrets(sub, sub.previous_secret_until) == [new]          # after the overlap, only the new

    await wf("subscription", "rotate-secret", str(sub_id), "--overlap", "0", "--secret", old)
    await running.publish_event(vbied_niamey_fr())
    posts = await _posts(webhook_receiver, 2)
    assert len(posts[1].headers["webhook-signature"].split(" ")) == 1
    Webhook(old).verify(posts[1].body, posts[1].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(posts[1].body, posts[1].headers)


async def test_edit_and_remove_keep_the_history(running: Running, wf: CLI, webhook_receiver: WebhookReceiver
                                                ) -> None:
    sub_id, _ = await _subscribe(running, "http://127.0.0.1:9/old")
    edited = await wf("subscription", "edit", str(sub_id), "--url", webhook_receiver.url, "--name", "ops room",
                      "--min-severity", "high")
    assert "changed url, name, min-severity" in edited.output
    runner = CliRunner()
    metadata = await asyncio.to_thread(runner.invoke, main, ["subscription", "edit", str(sub_id), "--url",
                                                             "http://169.254.169.254/latest/meta-data/"])
    assert metadata.exit_code == 1 and "169.254.169.254" in metadata.output    # the same guard as `add`
    await running.publish_event(vbied_niamey_en())
    await _posts(webhook_receiver, 1)
    await _notes(running, "delivered", 1)

    removed = await wf("subscription", "remove", str(sub_id))
    assert "removed (history kept)" in removed.output
    assert webhook_receiver.url not in (await wf("subscription", "list")).output
    await running.publish_event(vbied_niamey_fr())
    await _settle(running)
    assert len(webhook_receiver.posts()) == 1                    # a removed subscription gets nothing more
    history = await wf("delivery", "list", "--subscription", str(sub_id), "--json")
    assert '"state": "delivered"' in history.output             # its delivery history stays
    gone = await asyncio.to_thread(runner.invoke, main, ["subscription", "enable", str(sub_id)])
    assert gone.exit_code == 1 and f"subscription {sub_id} was removed" in gone.output


class HangingReceiver(WebhookReceiver):
    """Reads the request, then answers only when released (or drips its body, one byte at a time)."""

    def __init__(self, drip: bool = False) -> None:
        self.release = threading.Event()
        self.drip = drip
        super().__init__()

    def on_request(self, handler: Any, req: Any) -> None:
        if self.drip:
            handler.send_response(200)
            handler.send_header("Content-Length", "100")
            handler.end_headers()
            for _ in range(100):
                if self.release.wait(0.1):
                    return
                handler.wfile.write(b".")
                handler.wfile.flush()
            return
        self.release.wait(20)
        handler._reply(200, b"ok", {"Content-Type": "text/plain"})


@pytest.fixture
async def slow_running(redis_url: str, db_url: str, sessions: Any) -> AsyncIterator[Running]:
    """The alert service with a 1 s webhook deadline."""
    async with run_service(alert_settings(redis_url, db_url, webhook_timeout_seconds=1.0), sessions) as service:
        yield service


async def test_an_attempt_is_on_record_while_in_flight_and_no_second_dispatcher_takes_it(
    running: Running,
) -> None:
    receiver = HangingReceiver()
    try:
        sub_id, _ = await _subscribe(running, receiver.url)
        await running.publish_event(vbied_niamey_en())
        await _posts(receiver, 1)                                 # the request is at the receiver, unanswered

        async with running.sessions() as session:
            [row] = (await session.scalars(sa.select(DeliveryAttempt))).all()
            [note] = (await session.scalars(sa.select(Notification))).all()
        assert (row.attempt, row.outcome, row.subscription_id) == (1, "sending", sub_id)
        assert note.attempts == 1
        # Another dispatcher looking even after the request's whole deadline finds it leased.
        later = datetime.now(UTC) + timedelta(seconds=running.settings.webhook_timeout_seconds)
        async with session_scope(running.sessions) as session:
            assert await store_deliveries.claim_due(session, later, timedelta(seconds=60), 10) == []

        receiver.release.set()
        await _notes(running, "delivered", 1)
        async with running.sessions() as session:
            [row] = (await session.scalars(sa.select(DeliveryAttempt))).all()
        assert (row.attempt, row.outcome, row.status_code) == (1, "delivered", 200)
        assert len(receiver.posts()) == 1
    finally:
        receiver.release.set()
        receiver.close()


async def test_a_sender_that_died_mid_request_leaves_its_attempt_marked_interrupted(
    sessions: Any,
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessions) as session:
        sub, _ = await commands.add_subscription(session, "http://127.0.0.1:9/hook")
        await store_deliveries.add_notification(session, subscription_id=sub.id, alert_id="a" * 64, version=1,
                                     message_id="msg_a_v1", body="{}", due=now)
    async with session_scope(sessions) as session:
        [note] = await store_deliveries.claim_due(session, now, timedelta(seconds=45), 10)
        first = await store_deliveries.begin_attempt(session, note.id, now)   # then the process is killed
    later = now + timedelta(seconds=46)                                        # the lease ran out
    async with session_scope(sessions) as session:
        [again] = await store_deliveries.claim_due(session, later, timedelta(seconds=45), 10)
        second = await store_deliveries.begin_attempt(session, again.id, later)
    assert first is not None and second is not None and (first[1], second[1]) == (1, 2)
    async with sessions() as session:
        rows = (await session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.id))).all()
    assert [(r.attempt, r.outcome) for r in rows] == [(1, "interrupted"), (2, "sending")]
    assert "stopped mid-request" in (rows[0].error or "")


async def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline(slow_running: Running) -> None:
    receiver = HangingReceiver(drip=True)
    try:
        await _subscribe(slow_running, receiver.url)
        started = time.monotonic()
        await slow_running.publish_event(vbied_niamey_en())

        async def first_attempt_done() -> DeliveryAttempt | None:
            async with slow_running.sessions() as session:
                row = (await session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.id))).first()
            return row if row is not None and row.outcome != "sending" else None

        row = await eventually(first_attempt_done, within=5.0)
        assert row.outcome == "retry" and "did not finish answering within 1s" in (row.error or "")
        assert time.monotonic() - started < 4.0                # httpx's per-read timeout alone would wait 10 s
        assert slow_running.deliver.dispatcher.lease > timedelta(seconds=1.0)
    finally:
        receiver.release.set()
        receiver.close()


async def test_deliveries_api_lists_and_replays_for_officers(
    running: Running, base_url: str, webhook_receiver: WebhookReceiver
) -> None:
    officer = await make_token(running.sessions, "olu", "officer")
    viewer = await make_token(running.sessions, "val", "viewer")
    webhook_receiver.default_status = 503
    await _subscribe(running, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    [note] = await _notes(running, "failed", 1)
    webhook_receiver.default_status = 200
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        refused = await client.get("/api/deliveries", headers=bearer(viewer))
        assert refused.status_code == 403
        listed = (await client.get("/api/deliveries", params={"failed": "true"}, headers=bearer(officer))).json()
        assert [(d["id"], d["state"], d["webhook_id"], d["last_attempt"]["status_code"]) for d in listed] == [
            (note.id, "failed", note.message_id, 503)]
        replayed = await client.post("/api/deliveries/replay", json={"alert": note.alert_id[:12]},
                                     headers=bearer(officer))
        assert replayed.status_code == 200 and replayed.json()["queued"] == 1
        unknown = await client.post("/api/deliveries/replay", json={"alert": "0" * 12}, headers=bearer(officer))
        assert unknown.status_code == 404 and "no alert" in unknown.json()["detail"]
    posts = await _posts(webhook_receiver, 4)
    assert posts[3].headers["webhook-id"] == note.message_id


class SlowOneReceiver(WebhookReceiver):
    """Answers the webhook-id `slow` after `delay` seconds, the rest at once; records the webhook-ids in the
    order it answered them."""

    def __init__(self, slow: str, delay: float) -> None:
        self.slow, self.delay, self.answered = slow, delay, []
        super().__init__()

    def on_request(self, handler: Any, req: Any) -> None:
        if req.headers.get("webhook-id") == self.slow:
            time.sleep(self.delay)
        self.answered.append(req.headers.get("webhook-id"))
        handler._reply(200, b"ok", {"Content-Type": "text/plain"})


async def test_versions_of_one_alert_owed_at_once_reach_the_receiver_in_order(running: Running) -> None:
    """A pass sends at once what it claimed, but not two versions of one alert to one subscriber: v1 answered
    slowly must still come before v2 and v3 (else "resolved" can land before the "repaged" it follows)."""
    receiver = SlowOneReceiver("msg_b_v1", delay=0.5)
    try:
        sub_id, _ = await _subscribe(running, receiver.url)
        now = datetime.now(UTC)
        async with session_scope(running.sessions) as session:
            for version in (1, 2, 3):
                await store_deliveries.add_notification(
                    session, subscription_id=sub_id, alert_id="b" * 64, version=version,
                    message_id=f"msg_b_v{version}", body="{}", due=now)
            await store_deliveries.add_notification(   # another alert's goes beside them, not behind
                session, subscription_id=sub_id, alert_id="c" * 64, version=1, message_id="msg_c_v1", body="{}",
                due=now)
        await _notes(running, "delivered", 4)
        assert [m for m in receiver.answered if m.startswith("msg_b")] == ["msg_b_v1", "msg_b_v2", "msg_b_v3"]
        assert receiver.answered[0] == "msg_c_v1"
    finally:
        receiver.close()
