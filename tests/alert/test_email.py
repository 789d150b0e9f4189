"""Email beside webhooks, on real parts: the alert service on real Redis and both databases, a real SMTP server
(aiosmtpd) on 127.0.0.1. Alerts by severity, retries and give-ups as SMTP answers say, replay with the same
Message-ID, shift digests owed once however many sweepers race."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands
from services.alert.sweeps import Sweeper
from shared.db import session_scope
from shared.messages import AlertMessage
from shared.models import Alert, DeliveryAttempt, Incident, Notification, Subscription
from tests.alert.apiclient import base_url, bearer, make_token, server
from tests.alert.conftest import Running, alert_settings, eventually, run_service
from tests.alert.events import T0, event, vbied_niamey_en, vbied_niamey_fr
from tests.servers import Mail, SmtpServer, WebhookReceiver
from watchfloor.cli import main

__all__ = ["base_url", "server"]   # fixtures

CLI = Callable[..., Awaitable[Result]]
OPS = "ops@example.org"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def mail_settings(redis_url: str, db_url: str, port: int, **overrides: Any) -> Any:
    return alert_settings(redis_url, db_url, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                          smtp_from="Watchfloor <alerts@example.org>", smtp_timeout_seconds=5.0,
                          public_url="https://watch.example.org", **overrides)


@pytest.fixture
async def mailing(redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession],
                  smtp_server: SmtpServer) -> AsyncIterator[Running]:
    async with run_service(mail_settings(redis_url, db_url, smtp_server.port), sessions) as service:
        yield service


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`watchfloor …` as an operator types it beside the running service (no SMTP settings in its shell)."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("WATCHFLOOR_SMTP_HOST", raising=False)
    runner = CliRunner()

    async def invoke(*args: str, ok: bool = True) -> Result:
        result = await asyncio.to_thread(runner.invoke, main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


async def _subscribe(running: Running, url: str, **options: Any) -> int:
    async with session_scope(running.sessions) as session:
        sub, _ = await commands.add_subscription(session, url, **options)
        return sub.id


async def _mails(server: SmtpServer, count: int, within: float = 10.0) -> list[Mail]:
    async def enough() -> list[Mail]:
        got = server.received()
        return got if len(got) >= count else []
    return await eventually(enough, within=within)


async def _notes(running: Running, sub_id: int, state: str, count: int = 1) -> list[Notification]:
    async def check() -> list[Notification]:
        async with running.sessions() as session:
            rows = (await session.scalars(sa.select(Notification).where(
                Notification.subscription_id == sub_id, Notification.state == state).order_by(Notification.id))).all()
        return list(rows) if len(rows) >= count else []
    return await eventually(check, within=10.0)


async def _settle(running: Running) -> None:
    await asyncio.sleep(running.settings.dispatch_poll_seconds * 5)


async def test_an_alert_at_or_above_the_minimum_is_emailed_once_with_threaded_updates_beside_the_webhook(
    mailing: Running, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    await _subscribe(mailing, f"mailto:{OPS}", min_severity="high", tz="Africa/Niamey")
    chief = await _subscribe(mailing, "mailto:chief@example.org", min_severity="critical")   # the rule is "high"
    await _subscribe(mailing, webhook_receiver.url)

    await mailing.publish_event(vbied_niamey_en())
    [first] = await _mails(smtp_server, 1)
    assert first.recipients == [OPS] and first.sender == "alerts@example.org"
    msg = first.message
    [alert] = {a.alert_id: a for a in await mailing.alerts_on_stream()}.values()   # a version may be re-sent
    assert msg["Message-ID"] == f"<msg_{alert.alert_id[:32]}_v1@watchfloor>"
    assert msg["In-Reply-To"] is None and msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == OPS and msg["From"] == "Watchfloor <alerts@example.org>"
    level = alert.incident_severity or "high"
    assert msg["Subject"] == f"[{level}] {alert.title} — ISSP, vbied (single source)"
    text = first.text
    for expected in (alert.title, "Where:         Niamey, NE", "vbied; 3 killed", " UTC (", " Africa/Niamey)",
                     "Why it matched rule issp-niamey-50km", "src-en", "Console: https://watch.example.org/",
                     f"watchfloor ack {alert.alert_id[:12]}"):
        assert expected in text, expected
    async def posted() -> list:
        return webhook_receiver.posts()
    [post] = await eventually(posted)
    assert post.headers["webhook-id"] == f"msg_{alert.alert_id[:32]}_v1"   # the webhook beside it, as before

    await mailing.publish_event(vbied_niamey_fr())               # corroborated: version 2, threaded under v1
    second = (await _mails(smtp_server, 2))[1].message
    assert second["Message-ID"] == f"<msg_{alert.alert_id[:32]}_v2@watchfloor>"
    assert second["In-Reply-To"] == second["References"] == f"<msg_{alert.alert_id[:32]}_v1@watchfloor>"
    assert "Update: " in second["Subject"] and second["Subject"].endswith("(corroborated)")
    assert "What changed:" in second.get_body(preferencelist=("plain",)).get_content()
    await _settle(mailing)
    assert [m.recipients for m in smtp_server.received()] == [[OPS], [OPS]]   # once each; chief@ never
    async with mailing.sessions() as session:
        owed_chief = await session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
            Notification.subscription_id == chief))
    assert owed_chief == 0


async def test_451_is_retried_and_delivered(mailing: Running, smtp_server: SmtpServer) -> None:
    smtp_server.answers = ["451 4.3.0 Mail server temporarily rejected message"]
    sub_id = await _subscribe(mailing, f"mailto:{OPS}")
    await mailing.publish_event(vbied_niamey_en())
    [note] = await _notes(mailing, sub_id, "delivered")
    assert note.attempts == 2 and smtp_server.tried == 2
    async with mailing.sessions() as session:
        attempts = (await session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.id))).all()
    assert [(a.outcome, a.status_code) for a in attempts] == [("retry", 451), ("delivered", 250)]
    assert "451 4.3.0 Mail server temporarily rejected" in (attempts[0].error or "")
    assert len(smtp_server.received()) == 1


async def test_550_gives_up_with_the_reason_and_replay_resends_with_the_same_message_id(
    mailing: Running, smtp_server: SmtpServer, wf: CLI
) -> None:
    smtp_server.answers = ["550 5.1.1 <ops@example.org>: Recipient address rejected: User unknown"]
    sub_id = await _subscribe(mailing, f"mailto:{OPS}")
    await mailing.publish_event(vbied_niamey_en())
    [failed] = await _notes(mailing, sub_id, "failed")
    assert failed.attempts == 1 and failed.last_error == (
        "SMTP 550 5.1.1 <ops@example.org>: Recipient address rejected: User unknown")
    listed = await wf("delivery", "list", "--failed")
    assert " failed " in listed.output and "SMTP 550 5.1.1" in listed.output and "User unknown" in listed.output

    replayed = await wf("delivery", "replay", "--subscription", str(sub_id))
    assert "1 notification(s) queued for replay" in replayed.output
    [mail] = await _mails(smtp_server, 1)
    assert mail.message["Message-ID"] == f"<{failed.message_id}@watchfloor>"
    await _notes(mailing, sub_id, "delivered")
    await _settle(mailing)
    assert len(smtp_server.received()) == 1


async def test_smtp_server_down_is_retried_not_lost(redis_url: str, db_url: str,
                                                    sessions: async_sessionmaker[AsyncSession]) -> None:
    down = SmtpServer()
    port = down.port
    down.close()                                                  # nothing listening: connections refused
    settings = mail_settings(redis_url, db_url, port, retry_schedule_seconds=[0.3, 1.5, 5.0])
    async with run_service(settings, sessions) as running:
        sub_id = await _subscribe(running, f"mailto:{OPS}")
        await running.publish_event(vbied_niamey_en())

        async def first_failure() -> list[DeliveryAttempt]:
            async with running.sessions() as session:
                return list((await session.scalars(sa.select(DeliveryAttempt).where(
                    DeliveryAttempt.outcome == "retry"))).all())
        [attempt] = await eventually(first_failure, within=10.0)
        assert (attempt.error or "").startswith(f"cannot reach the SMTP server 127.0.0.1:{port}")
        server = SmtpServer(port)                                 # back, at the same address
        try:
            [mail] = await _mails(server, 1, within=15.0)
            assert mail.recipients == [OPS]
            [note] = await _notes(running, sub_id, "delivered")
            assert note.attempts >= 2
        finally:
            server.close()


# --- the shift digest ---------------------------------------------------------------------------------------


class _NoOutbox:
    async def publish(self, messages: list[AlertMessage], headers: list[dict[str, str]] | None = None) -> None:
        assert not messages, "a digest publishes nothing"

    async def published_versions(self, alert_ids: list[str]) -> dict[str, int]:
        return {}


async def _into_the_shift(running: Running, end: datetime, subs: list[int], a: AlertMessage, b_incident: str) -> None:
    """What the pipeline just did, moved into the shift that ended at `end` (the shift start set in the past):
    A fired a day before and was acknowledged, escalated and was disputed during the shift; B fired during it."""
    async with session_scope(running.sessions) as session:
        await commands.acknowledge_alert(session, a.alert_id, "officer-1", "seen")
        await session.execute(sa.update(Alert).where(Alert.id == a.alert_id).values(fired_at=end - timedelta(days=1)))
        await session.execute(sa.update(Incident).where(Incident.id == a.incident_id).values(
            escalated_at=end - timedelta(minutes=30), disputed_at=end - timedelta(minutes=10)))
        await session.execute(sa.update(Alert).where(Alert.incident_id == b_incident).values(
            fired_at=end - timedelta(minutes=20)))
        await session.execute(sa.update(Subscription).where(Subscription.id.in_(subs)).values(
            created_at=end - timedelta(days=1)))


async def test_one_digest_per_shift_with_its_sections_even_with_two_sweepers(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession], smtp_server: SmtpServer
) -> None:
    niamey = ZoneInfo("Africa/Niamey")
    # The shift: the six hours that ended at the last whole minute, read in Niamey time.
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=6)
    times = [f"{start.astimezone(niamey):%H:%M}", f"{end.astimezone(niamey):%H:%M}"]
    settings = mail_settings(redis_url, db_url, smtp_server.port, sweep_interval_seconds=3600)
    async with run_service(settings, sessions) as mailing:        # its own sweeper: once, at start, before any
        digest = dict(digest=times, tz="Africa/Niamey", immediate=False)
        ops = await _subscribe(mailing, f"mailto:{OPS}", min_severity="high", **digest)
        chief = await _subscribe(mailing, "mailto:chief@example.org", min_severity="critical", **digest)
        night = await _subscribe(mailing, "mailto:night@example.org", min_severity="critical",
                                 digest_skip_empty=True, **digest)

        # Incident A: a car bomb in Niamey, corroborated by a second report (it escalates), then denied.
        await mailing.publish_event(vbied_niamey_en())
        [a] = {m.alert_id: m for m in await eventually(mailing.alerts_on_stream)}.values()
        await mailing.publish_event(vbied_niamey_fr())
        denial = event("army-denies", source="src-army", actors=(), is_event=False, status="denied",
                       status_reason='denied: "dismissed reports"', at=T0 + timedelta(hours=20),
                       title="Army dismissed reports of a car bomb in Niamey")
        await mailing.publish_event(denial)
        # Incident B: ISSP ambush near Kollo, 33 km from Niamey, still firing.
        kollo = event("kollo-ambush", source="src-kollo", tactics=("ambush",), place=("Kollo", 13.3, 2.33, "NE"),
                      title="Gunmen ambush a patrol near Kollo")
        last = await mailing.publish_event(kollo)
        await eventually(lambda: mailing.handled(last))
        async with mailing.sessions() as session:
            incidents = {i.id: i for i in (await session.scalars(sa.select(Incident))).all()}
        assert len(incidents) == 2
        assert incidents[a.incident_id].escalated_at is not None and incidents[a.incident_id].disputed_at is not None
        [b_incident] = set(incidents) - {a.incident_id}
        await _into_the_shift(mailing, end, [ops, chief, night], a, b_incident)
        async with mailing.sessions() as session:
            a_title = (await session.get(Alert, a.alert_id)).payload["title"]  # type: ignore[union-attr]

        now = datetime.now(UTC)                                   # after the shift's end, before the next
        first = Sweeper(mailing.settings, mailing.sessions, _NoOutbox())
        second = Sweeper(mailing.settings, mailing.sessions, _NoOutbox())
        owed = await asyncio.gather(first.digests(now), second.digests(now))
        assert sum(owed) == 2                                     # ops and chief; night skips its empty shift
        async with mailing.sessions() as session:
            rows = (await session.scalars(sa.select(Notification).where(Notification.alert_id.like("digest:%"))
                                          .order_by(Notification.subscription_id))).all()
        key = f"{end:%Y%m%dT%H%MZ}"
        # owed to ops and chief (the running service's sender may already have sent them), skipped for night
        assert [(n.subscription_id, n.alert_id, n.state.replace("delivered", "pending")) for n in rows] == [
            (ops, f"digest:{ops}:{key}", "pending"), (chief, f"digest:{chief}:{key}", "pending"),
            (night, f"digest:{night}:{key}", "skipped")]

        mails = await _mails(smtp_server, 2)
        by = {m.recipients[0]: m for m in mails}
        label = f"{start.astimezone(niamey):%H:%M}–{end.astimezone(niamey):%H:%M}"
        assert by[OPS].message["Subject"] == (
            f"Shift digest {label}: 1 new, 1 escalating, 1 unacknowledged, 1 disputed")
        assert by[OPS].message["Message-ID"] == f"<digest_{ops}_{key}@watchfloor>"
        text = by[OPS].text
        new = text.index("New incidents: 1")
        escalating = text.index("Escalating (severity or corroboration rose): 1")
        unacked, disputed = text.index("Unacknowledged alerts: 1"), text.index("Disputed incidents: 1")
        assert new < escalating < unacked < disputed
        assert "Gunmen ambush a patrol near Kollo" in text[new:escalating]
        assert a_title in text[escalating:unacked] and "corroborated" in text[escalating:unacked]
        assert "Kollo" in text[unacked:disputed] and "rule issp-niamey-50km (high)" in text[unacked:disputed]
        assert a_title in text[disputed:] and "dismissed reports" in text[disputed:]
        assert by["chief@example.org"].message["Subject"] == f"Shift digest {label}: nothing new"
        assert "Nothing new" in by["chief@example.org"].text

        # The next ticks of both sweepers: nothing more for this shift.
        assert await first.digests(now + timedelta(seconds=10)) == 0
        assert await second.digests(now + timedelta(minutes=30)) == 0
        await _settle(mailing)
        assert len(smtp_server.received()) == 2


# --- the CLI -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "mailto:ops@", "mailto:ops", "mailto:ops@localhost", "mailto:a@b@example.org", "mailto:ops@example.org?subject=x",
    "mailto:ops@example.org,chief@example.org", "mailto:\"ops\"@example.org", "mailto:ops..x@example.org",
    "mailto:ops@[127.0.0.1]", "mailto:ops@exa_mple.org",
], ids=["no domain", "no @", "single-label domain", "two @", "headers", "two recipients", "quoted local part",
        "double dot", "IP literal", "underscore in domain"])
async def test_cli_refuses_a_bad_address_with_a_reason(db_url: str, wf: CLI, address: str) -> None:
    refused = await wf("subscription", "add", address, ok=False)
    assert refused.exit_code == 1 and "Error:" in refused.output
    assert (await wf("subscription", "list")).output.strip() == ""


async def test_cli_adds_lists_and_edits_an_email_recipient(db_url: str, wf: CLI) -> None:
    added = await wf("subscription", "add", "mailto:Ops@Example.ORG", "--min-severity", "high",
                     "--events", "alert.*", "--digest", "18:00,06:00", "--tz", "Africa/Niamey")
    assert "subscription 1 -> mailto:Ops@example.org" in added.output
    assert "secret:" not in added.output                        # emails are not signed
    assert "WATCHFLOOR_SMTP_HOST is not set here" in added.output   # said at once, not at the first car bomb
    hook = await wf("subscription", "add", "http://127.0.0.1:9/hook")
    assert "secret: whsec_" in hook.output

    listed = (await wf("subscription", "list")).output.splitlines()
    assert listed[0].split()[:4] == ["1", "email", "enabled", "mailto:Ops@example.org"]
    assert "digest 06:00,18:00" in listed[0] and "tz Africa/Niamey" in listed[0] and "immediate" in listed[0]
    assert listed[1].split()[:3] == ["2", "webhook", "enabled"]

    edited = await wf("subscription", "edit", "1", "--no-immediate", "--digest", "07:00", "--digest-skip-empty")
    assert "changed" in edited.output
    line = (await wf("subscription", "list")).output.splitlines()[0]
    assert "digest only" in line and "digest 07:00 (skip empty)" in line

    nothing = await wf("subscription", "edit", "1", "--digest", "none", ok=False)
    assert nothing.exit_code == 1 and "would get nothing" in nothing.output
    wrong = await wf("subscription", "add", "http://127.0.0.1:9/other", "--digest", "06:00", ok=False)
    assert wrong.exit_code == 1 and "for email (mailto:) subscriptions only" in wrong.output
    badtz = await wf("subscription", "add", "mailto:x@example.org", "--tz", "Mars/Olympus", ok=False)
    assert badtz.exit_code == 1 and "unknown time zone" in badtz.output
    switch = await wf("subscription", "edit", "1", "--url", "https://hooks.example.org/x", ok=False)
    assert switch.exit_code == 1 and "remove it and add" in switch.output
    rotate = await wf("subscription", "rotate-secret", "1", ok=False)
    assert rotate.exit_code == 1 and "not signed" in rotate.output



async def test_api_adds_an_email_recipient_and_says_when_no_smtp_server_is_configured(
    running: Running, base_url: str
) -> None:
    import httpx

    admin = await make_token(running.sessions, "lead", "admin")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(admin)) as client:
        bad = await client.post("/api/subscriptions", json={"url": "mailto:ops@localhost"})
        assert bad.status_code == 422 and "not a mail domain" in bad.json()["detail"]
        made = await client.post("/api/subscriptions", json={
            "url": "mailto:ops@example.org", "min_severity": "III", "digest": ["18:00", "06:00"],
            "tz": "Africa/Niamey", "immediate": False})
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["channel"], body["immediate"], body["digest"], body["tz"]) == (
            "email", False, {"times": ["06:00", "18:00"], "skip_empty": False}, "Africa/Niamey")
        assert "secret" not in body and "WATCHFLOOR_SMTP_HOST" in body["warning"]
        [listed] = (await client.get("/api/subscriptions")).json()
        assert (listed["channel"], listed["url"]) == ("email", "mailto:ops@example.org")
