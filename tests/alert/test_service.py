"""The alert service on real Redis and both databases: wf:events in, wf:alerts out, webhooks, dead letters."""

import json
from datetime import timedelta

import sqlalchemy as sa
from standardwebhooks import Webhook

from services.alert import commands, store_alerts, store_deliveries, store_subscriptions
from shared import ids
from shared.db import session_scope
from shared.models import DeliveryAttempt, Incident, IncidentReport, Notification
from tests.alert.conftest import Running, eventually
from tests.alert.events import T0, TILLABERI, event, vbied_niamey_en, vbied_niamey_fr
from tests.servers import WebhookReceiver


async def test_two_reports_of_one_attack_give_one_alert(running: Running) -> None:
    await running.publish_event(vbied_niamey_en())
    first = await eventually(running.alerts_on_stream)
    assert [(a.kind, a.version) for a in first] == [("fired", 1)]
    alert = first[0]
    assert alert.rule_id == "issp-niamey-50km" and alert.severity == "high"
    assert "actor ISSP (perpetrator)" in alert.matched and "tactic vbied" in alert.matched
    assert alert.killed == 3 and alert.place is not None and alert.place.name == "Niamey"

    # The French report of the same car bomb: a second independent source -> the same alert, version 2.
    await running.publish_event(vbied_niamey_fr())
    both = await eventually(lambda: _at_least(running, 2))
    assert [(a.alert_id, a.kind, a.version) for a in both] == [
        (alert.alert_id, "fired", 1), (alert.alert_id, "updated", 2)]
    assert sorted(both[1].source_ids) == ["src-en", "src-fr"]
    assert both[1].alert_id == ids.alert_id("issp-niamey-50km", ids.incident_id(vbied_niamey_en().event_id))

    async with running.sessions() as session:
        incidents = (await session.scalars(sa.select(Incident))).all()
        assert [(i.report_count, i.source_count) for i in incidents] == [(2, 2)]
        listed = await store_alerts.list_alerts(session, limit=10)
        assert [(a.id, a.version) for a in listed] == [(alert.alert_id, 2)]


async def _at_least(running: Running, count: int) -> list:
    found = await running.alerts_on_stream()
    return found if len(found) >= count else []


async def test_same_source_twice_and_redelivery_send_exactly_one_message(running: Running) -> None:
    first = vbied_niamey_en()
    again_same_source = event("vbied-niamey-en-2", source="src-en", at=T0 + timedelta(minutes=20), killed=3)
    for message in (first, again_same_source, first, first):   # the last two: a redelivered event
        last = await running.publish_event(message)
    await eventually(lambda: running.handled(last))
    assert await _reports(running) == 2
    alerts = await running.alerts_on_stream()
    assert [(a.kind, a.version) for a in alerts] == [("fired", 1)]


async def _reports(running: Running) -> int:
    async with running.sessions() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(IncidentReport))).scalar_one()


async def test_far_away_report_is_another_incident_and_non_events_are_ignored(running: Running) -> None:
    await running.publish_event(vbied_niamey_en())
    await running.publish_event(event("tillaberi", place=TILLABERI))             # outside the circle
    await running.publish_event(event("opinion", is_event=False, source="src-x"))  # commentary, not an event
    await running.publish_event(event("kollo", actors=(), place=("Kollo", 13.3, 2.33, "NE"),
                                      at=T0 + timedelta(hours=8), source="src-y"))
    alerts = await eventually(lambda: _at_least(running, 2))
    await eventually(lambda: _count(running, Incident, 3))
    assert len({a.incident_id for a in alerts}) == 2
    assert all(a.kind == "fired" for a in alerts)


async def _count(running: Running, model: type, expected: int) -> bool:
    async with running.sessions() as session:
        n = (await session.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()
    return n == expected


async def test_poison_messages_are_parked_and_consumers_go_on(running: Running) -> None:
    await running.publish_event({"event_id": "x", "is_event": "maybe"})
    await running.broker.publish({"alert_id": 5}, stream="wf:alerts")
    parked_alert = await eventually(lambda: running.parked("alert"))
    parked_deliver = await eventually(lambda: running.parked("deliver"))
    assert parked_alert[0][b"reason"].startswith(b"invalid EventMessage")
    assert parked_deliver[0][b"reason"].startswith(b"invalid AlertMessage")
    assert json.loads(parked_alert[0][b"payload"])["event_id"] == "x"

    await running.publish_event(vbied_niamey_en())          # the stage still works
    alerts = await eventually(running.alerts_on_stream)
    assert alerts[0].kind == "fired"
    await eventually(lambda: _count(running, Notification, 0))  # no subscription yet: nothing owed


async def test_webhook_is_signed_and_verifies(running: Running, webhook_receiver: WebhookReceiver) -> None:
    async with session_scope(running.sessions) as session:
        _sub, secret = await commands.add_subscription(session, webhook_receiver.url, name="ops")
    assert secret.startswith("whsec_")
    await running.publish_event(vbied_niamey_en())
    posts = await _wait_posts(webhook_receiver, 1)
    payload = Webhook(secret).verify(posts[0].body, posts[0].headers)
    assert payload["type"] == "alert.fired"
    assert payload["data"]["rule_id"] == "issp-niamey-50km" and payload["data"]["version"] == 1
    assert posts[0].headers["webhook-id"] == ids.webhook_message_id(payload["data"]["alert_id"], 1)
    assert posts[0].headers["webhook-signature"].startswith("v1,")

    await running.publish_event(vbied_niamey_fr())           # corroborated: an update, signed too
    posts = await _wait_posts(webhook_receiver, 2)
    update = Webhook(secret).verify(posts[1].body, posts[1].headers)
    assert update["type"] == "alert.updated" and update["data"]["version"] == 2
    assert posts[1].headers["webhook-id"].endswith("_v2")
    assert len(webhook_receiver.posts()) == 2


async def _wait_posts(receiver: WebhookReceiver, count: int, within: float = 5.0) -> list:
    async def enough() -> list:
        posts = receiver.posts()
        return posts if len(posts) >= count else []
    return await eventually(enough, within=within)


async def test_receiver_error_then_success_is_retried_and_every_attempt_recorded(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script = [500]
    async with session_scope(running.sessions) as session:
        sub, secret = await commands.add_subscription(session, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    posts = await _wait_posts(webhook_receiver, 2)

    async def attempts() -> list:
        async with running.sessions() as session:
            rows = (await session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.attempt))).all()
        done = len(rows) == 2 and all(r.outcome != "sending" for r in rows)   # on record before it is sent
        return rows if done else []

    rows = await eventually(attempts)
    assert [(r.attempt, r.outcome, r.status_code) for r in rows] == [(1, "retry", 500), (2, "delivered", 200)]
    assert rows[0].error == "HTTP 500 from receiver" and rows[1].latency_ms is not None
    # The same message both times: same id and body, a fresh signature that verifies.
    assert posts[0].headers["webhook-id"] == posts[1].headers["webhook-id"] and posts[0].body == posts[1].body
    Webhook(secret).verify(posts[1].body, posts[1].headers)
    async with running.sessions() as session:
        note = (await session.scalars(sa.select(Notification))).one()
    assert (note.state, note.attempts, note.subscription_id) == ("delivered", 2, sub.id)
    assert len(webhook_receiver.posts()) == 2


async def test_receiver_that_always_fails_ends_failed_and_kept(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.default_status = 503
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    await _wait_posts(webhook_receiver, 3)          # schedule [0.2, 0.2]: 3 attempts, then failed

    async def failed() -> Notification | None:
        async with running.sessions() as session:
            note = (await session.scalars(sa.select(Notification))).one()
        return note if note.state == "failed" else None

    note = await eventually(failed)
    assert note.attempts == 3 and note.last_error == "HTTP 503 from receiver" and note.body
    assert len(webhook_receiver.posts()) == 3

    # Kept for replay: once the receiver is back, ops replay it; the same message goes out again.
    webhook_receiver.default_status = 200
    async with session_scope(running.sessions) as session:
        assert [n.id for n in await store_deliveries.list_notifications(session, state="failed")] == [note.id]
        assert await store_deliveries.requeue_notification(session, note.id, actor="ops") is True
    posts = await _wait_posts(webhook_receiver, 4)
    assert posts[3].headers["webhook-id"] == posts[0].headers["webhook-id"] and posts[3].body == posts[0].body

    async def delivered() -> bool:
        async with running.sessions() as session:
            return not await store_deliveries.list_notifications(session, state="failed") and \
                len(await store_deliveries.list_notifications(session, state="delivered")) == 1

    await eventually(delivered)


async def test_gone_receiver_disables_the_subscription(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.default_status = 410
    async with session_scope(running.sessions) as session:
        sub, _ = await commands.add_subscription(session, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    await _wait_posts(webhook_receiver, 1)

    async def disabled() -> str | None:
        async with running.sessions() as session:
            row = await store_subscriptions.get_subscription(session, sub.id)
        return row.disabled_reason if row and not row.enabled else None

    assert "410" in await eventually(disabled)
    assert len(webhook_receiver.posts()) == 1


async def test_rule_added_while_running_applies_without_restart(running: Running) -> None:
    from services.alert.rules import load_rule_text

    text = ("id: jnim-anywhere\nname: JNIM anywhere\nmatch:\n  any:\n    - actors: [JNIM]\nseverity: low\n")
    async with session_scope(running.sessions) as session:      # as the CLI does, from another process
        await commands.upsert_rule(session, load_rule_text(text, "jnim.yaml"), text, "jnim.yaml", actor="cli")
    await running.publish_event(event("macina", actors=(("KATIBA_MACINA", "perpetrator"),), tactics=("ambush",),
                                      place=("Gao", 16.27, -0.04, "ML")))
    alerts = await eventually(running.alerts_on_stream)
    assert [a.rule_id for a in alerts] == ["jnim-anywhere"]


async def test_a_later_denial_marks_the_incident_disputed_once_and_pages_no_one_itself(running: Running) -> None:
    await running.publish_event(vbied_niamey_en())
    fired = await eventually(running.alerts_on_stream)
    assert [(a.kind, a.disputed) for a in fired] == [("fired", None)]

    reason = 'denied: "dismissed reports" governs "car bomb"'
    denial = event("army-denies", source="src-army", actors=(), is_event=False, status="denied",
                   status_reason=reason, at=T0 + timedelta(hours=20),
                   title="Army dismissed reports of a car bomb in Niamey")
    await running.publish_event(denial)
    both = await eventually(lambda: _at_least(running, 2))
    assert [(a.kind, a.version) for a in both] == [("fired", 1), ("updated", 2)]
    assert both[1].disputed == reason and both[1].change == f"disputed: {reason}"
    assert both[1].alert_id == fired[0].alert_id

    # The same denial again, and a rumour that was denied elsewhere: nothing more on the wire, no new incident.
    last = await running.publish_event(denial)
    rumour = event("rumour-kollo", source="src-x", is_event=False, status="rumoured",
                   place=("Kollo", 13.3, 2.33, "NE"))
    last = await running.publish_event(rumour)
    await eventually(lambda: running.handled(last))
    assert len(await running.alerts_on_stream()) == 2
    async with running.sessions() as session:
        incidents = (await session.scalars(sa.select(Incident))).all()
        assert [(i.disputed_by, i.dispute_reason) for i in incidents] == [(denial.event_id, reason)]


async def test_two_attacks_on_one_army_in_one_city_are_two_incidents(running: Running) -> None:
    post_attack = event("army-post-niamey", actors=(("NIGER_FDS", "involved"),), tactics=("armed_assault",),
                        title="Gunmen attack an army post in Niamey")
    airport = event("airport-niamey", source="src-fr", actors=(("NIGER_FDS", "involved"),),
                    tactics=("airport_attack", "vbied"), at=T0 + timedelta(minutes=40),
                    title="Car bomb at Niamey airport")
    await running.publish_event(post_attack)
    last = await running.publish_event(airport)
    await eventually(lambda: running.handled(last))
    assert await _count(running, Incident, 2)
