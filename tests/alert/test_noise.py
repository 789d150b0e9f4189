"""Noise control on the running service (real Redis, SQLite and PostgreSQL): corroboration and severity rise,
silences mute and are audited, inhibition per incident, ack stops re-pages, quiet hours, resolution."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.alert import commands, store_alerts, store_incidents, store_rules
from services.alert.rules import load_rule_text
from services.alert.silences import SilenceError
from shared.db import session_scope
from shared.messages import AlertMessage
from shared.models import Alert, AuditEntry, Incident, Notification
from tests.alert.conftest import Running, eventually
from tests.alert.events import T0, event, vbied_niamey_en, vbied_niamey_fr
from tests.servers import WebhookReceiver

RULE_ID = "issp-niamey-50km"


async def _on_stream(running: Running, count: int) -> list[AlertMessage]:
    async def enough() -> list[AlertMessage]:
        found = await running.alerts_on_stream()
        return found if len(found) >= count else []
    return await eventually(enough)


def _types(receiver: WebhookReceiver) -> list[tuple[str, int]]:
    out = []
    for post in receiver.posts():
        body = json.loads(post.body)
        out.append((body["type"], body["data"]["version"]))
    return out


async def _posts(receiver: WebhookReceiver, count: int) -> list[tuple[str, int]]:
    async def enough() -> list:
        return _types(receiver) if len(receiver.posts()) >= count else []
    return await eventually(enough)


async def test_corroboration_and_severity_rise_into_updates_of_one_alert(running: Running) -> None:
    running.service.pipeline.official_sources = frozenset({"anp-niger"})
    await running.publish_event(vbied_niamey_en())
    fired = (await _on_stream(running, 1))[0]
    assert (fired.corroboration, fired.incident_severity, fired.report_count) == ("single_source", "III", 1)
    assert "tactic vbied" in fired.severity_reasons and "in a capital: Niamey" in fired.severity_reasons
    await running.publish_event(vbied_niamey_fr())
    await running.publish_event(event("anp", source="anp-niger", at=T0 + timedelta(hours=2), killed=12,
                                      title="ANP: attentat à la voiture piégée à Niamey", lang="fr"))
    alerts = await _on_stream(running, 3)
    assert [(a.alert_id, a.version, a.kind, a.corroboration) for a in alerts] == [
        (fired.alert_id, 1, "fired", "single_source"), (fired.alert_id, 2, "updated", "corroborated"),
        (fired.alert_id, 3, "updated", "confirmed")]
    assert alerts[1].change == "sources 1→2; single_source→corroborated"
    assert alerts[2].killed == 12 and alerts[2].report_count == 3 and "killed 3→12" in (alerts[2].change or "")


async def test_silence_mutes_is_audited_and_the_alert_goes_out_when_it_ends(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    now = datetime.now(UTC)
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url)
        silence = await commands.create_silence(
            session, matchers={"rule_ids": [RULE_ID]}, reason="FDS exercise at the airport", created_by="ana",
            starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
        with pytest.raises(SilenceError, match="needs a reason"):
            await commands.create_silence(session, matchers={"rule_ids": [RULE_ID]}, reason=" ", created_by="ana",
                                       starts_at=now, ends_at=now + timedelta(hours=1))
        with pytest.raises(SilenceError, match="must be after starts_at"):
            await commands.create_silence(session, matchers={"rule_ids": [RULE_ID]}, reason="x", created_by="ana",
                                       starts_at=now, ends_at=now - timedelta(hours=1))
    await running.publish_event(vbied_niamey_en())
    muted = (await _on_stream(running, 1))[0]
    assert muted.muted_by == f"silence {silence.id}: FDS exercise at the airport (ana)"
    async with running.sessions() as session:
        row = await store_alerts.get_alert(session, muted.alert_id)
        assert row is not None and row.muted_by == muted.muted_by       # recorded and visible, not sent
        assert [a.id for a in await commands.preview_silence(session, {"rule_ids": [RULE_ID]}, now)] == [row.id]
        assert [s.id for s in await store_alerts.list_silences(session, active_at=now)] == [silence.id]
        audit = (await session.scalars(sa.select(AuditEntry).where(AuditEntry.target_kind == "silence"))).all()
        assert [(a.actor, a.action, a.detail["reason"]) for a in audit] == [
            ("ana", "silence.created", "FDS exercise at the airport")]
    assert webhook_receiver.wait_for(1, timeout=0.8) == []

    async with session_scope(running.sessions) as session:
        await commands.expire_silence(session, silence.id, by="ben")
    sent = await running.service.sweeper.sweep(datetime.now(UTC))
    assert [(m.kind, m.version, m.muted_by) for m in sent] == [("fired", 2, None)]
    assert await _posts(webhook_receiver, 1) == [("alert.fired", 2)]
    assert await running.service.sweeper.sweep(datetime.now(UTC)) == []       # once
    async with running.sessions() as session:
        actions = (await session.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_kind == "silence")
                                         .order_by(AuditEntry.id))).all()
    assert actions == ["silence.created", "silence.expired"]


async def test_ack_stops_the_repage_but_not_updates(running: Running, webhook_receiver: WebhookReceiver) -> None:
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())               # a car bomb in a capital: severity III
    fired = (await _on_stream(running, 1))[0]
    assert fired.incident_severity == "III"
    await _posts(webhook_receiver, 1)
    later = datetime.now(UTC) + timedelta(minutes=16)
    repaged = await running.service.sweeper.sweep(later)
    assert [(m.kind, m.version, m.page_count) for m in repaged] == [("repaged", 2, 1)]
    assert await running.service.sweeper.sweep(later + timedelta(minutes=1)) == []   # not due again yet
    assert await _posts(webhook_receiver, 2) == [("alert.fired", 1), ("alert.repaged", 2)]

    async with session_scope(running.sessions) as session:
        await commands.acknowledge_alert(session, fired.alert_id, "duty officer", "Niamey desk informed")
    assert await running.service.sweeper.sweep(later + timedelta(hours=1)) == []      # ack: no more pages
    await running.publish_event(vbied_niamey_fr())                                    # but updates still flow
    assert await _posts(webhook_receiver, 3) == [("alert.fired", 1), ("alert.repaged", 2), ("alert.updated", 3)]
    async with running.sessions() as session:
        row = await store_alerts.get_alert(session, fired.alert_id)
    assert row is not None and (row.state, row.acknowledged_by, row.page_count, row.version) == \
        ("acknowledged", "duty officer", 1, 3)


async def test_inhibition_is_decided_per_incident_whatever_the_order(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    generic = "id: issp-niger\nname: ISSP anywhere in Niger\nmatch:\n  any:\n    - actors: [ISSP]\n" \
              "area:\n  country: NE\nseverity: medium\n"
    specific = "id: vbied-niamey\nname: Car bomb near Niamey\nmatch:\n  any:\n    - tactics: [vbied]\n" \
               "area:\n  near: Niamey\n  radius_km: 30\nseverity: critical\ninhibits: [issp-niger]\n"
    async with session_scope(running.sessions) as session:
        await store_rules.set_rule_enabled(session, RULE_ID, False, actor="test")
        for text in (generic, specific):
            spec = load_rule_text(text)
            await commands.upsert_rule(session, spec, text, None, actor="test")
        await commands.add_subscription(session, webhook_receiver.url)
    # The generic rule fires first (an ambush: not a car bomb), then a car bomb report joins the incident.
    await running.publish_event(event("ambush", tactics=("ambush",)))
    await running.publish_event(event("vbied", source="src-fr", tactics=("vbied",), at=T0 + timedelta(minutes=30)))
    alerts = await _on_stream(running, 3)
    assert sorted((a.rule_id, a.version, a.muted_by or "") for a in alerts) == [
        ("issp-niger", 1, ""), ("issp-niger", 2, "inhibited by rule vbied-niamey"), ("vbied-niamey", 1, "")]
    posts = await _posts(webhook_receiver, 2)
    assert sorted(posts) == [("alert.fired", 1), ("alert.fired", 1)]
    assert webhook_receiver.wait_for(3, timeout=0.8) and len(webhook_receiver.posts()) == 2


async def test_quiet_hours_hold_severity_i_and_ii_but_not_iii(
    running: Running, webhook_receiver: WebhookReceiver
) -> None:
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
              "end": (now + timedelta(hours=1)).strftime("%H:%M")}
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url, quiet_hours=window)
    await running.publish_event(event("kollo", actors=(("ISSP", "perpetrator"),), tactics=("ambush",),
                                      place=("Kollo", 13.3043, 2.339, "NE")))     # severity I
    await running.publish_event(event("niamey", source="src-x", tactics=("vbied",), at=T0 + timedelta(hours=12)))

    async def owed() -> list:
        async with running.sessions() as session:
            rows = (await session.scalars(sa.select(Notification).order_by(Notification.id))).all()
        return rows if len(rows) == 2 else []

    rows = await owed() or await eventually(owed)
    payloads = [json.loads(r.body)["data"] for r in rows]
    assert [p["incident_severity"] for p in payloads] == ["I", "III"]
    assert rows[0].state == "pending" and rows[0].next_attempt_at > now + timedelta(minutes=50)   # held
    assert (await _posts(webhook_receiver, 1))[0] == ("alert.fired", 1)
    assert json.loads(webhook_receiver.posts()[0].body)["data"]["incident_severity"] == "III"

    # A second source corroborates the held Kollo alert (its own report, not a copy): the subscriber will get
    # the latest version only.
    await running.publish_event(event("kollo-2", source="src-fr", actors=(("ISSP", "perpetrator"),),
                                      tactics=("ambush",), place=("Kollo", 13.3043, 2.339, "NE"),
                                      at=T0 + timedelta(minutes=20), title="Embuscade meurtrière près de Kollo"))

    async def superseded() -> list:
        async with running.sessions() as session:
            query = sa.select(Notification).where(Notification.alert_id == payloads[0]["alert_id"])
            rows = (await session.scalars(query.order_by(Notification.alert_version))).all()
        return rows if len(rows) == 2 else []

    held = await eventually(superseded)
    assert [(n.alert_version, n.state) for n in held] == [(1, "superseded"), (2, "pending")]


async def test_quiet_incident_is_resolved_once(running: Running, webhook_receiver: WebhookReceiver) -> None:
    async with session_scope(running.sessions) as session:
        await commands.add_subscription(session, webhook_receiver.url)
    await running.publish_event(vbied_niamey_en())
    fired = (await _on_stream(running, 1))[0]
    await _posts(webhook_receiver, 1)
    assert [m.kind for m in await running.service.sweeper.sweep(datetime.now(UTC) + timedelta(hours=1))] == \
        ["repaged"]                                   # severity III, unacknowledged: paged again meanwhile
    resolved = await running.service.sweeper.sweep(datetime.now(UTC) + timedelta(hours=25))
    assert [(m.alert_id, m.kind, m.state) for m in resolved] == [(fired.alert_id, "resolved", "resolved")]
    assert await running.service.sweeper.sweep(datetime.now(UTC) + timedelta(hours=26)) == []
    posts = await _posts(webhook_receiver, 3)
    assert posts[-1][0] == "alert.resolved"
    async with running.sessions() as session:
        row = await session.get(Alert, fired.alert_id)
        incidents = await store_incidents.list_incidents(session, state="resolved")
    assert row is not None and row.state == "resolved" and row.resolved_at is not None
    assert [i.id for i in incidents] == [fired.incident_id]


async def test_a_repage_is_not_lost_behind_hundreds_of_older_firing_alerts(running: Running) -> None:
    """The sweeper reads only the firing alerts it may change (due a re-page, or muted by a silence): a severity
    III alert due a re-page is found behind 600 older firing alerts of lesser incidents, and their rows are not
    read each sweep."""
    await running.publish_event(vbied_niamey_en())
    fired = (await _on_stream(running, 1))[0]
    older = fired.fired_at - timedelta(days=1)
    alerts = []
    async with session_scope(running.sessions) as session:
        for n in range(600):
            incident_id, alert_id = f"{n:064x}", f"{n + 1:063x}a"
            session.add(Incident(id=incident_id, state="open", first_seen_at=older, last_seen_at=older, actors=[],
                                 tactics=[], severity="II", report_count=1, source_count=1, version=1,
                                 last_report_at=datetime.now(UTC)))
            payload = fired.model_copy(update={"alert_id": alert_id, "incident_id": incident_id,
                                               "incident_severity": "II", "fired_at": older})
            alerts.append(Alert(id=alert_id, rule_id=RULE_ID, incident_id=incident_id, state="firing",
                                severity="II", version=1, fired_at=older, updated_at=older,
                                payload=payload.model_dump(mode="json")))
        await session.flush()          # the incidents first: no relationship orders the two tables' inserts
        session.add_all(alerts)
    async with running.sessions() as session:
        due = await store_alerts.firing_alerts(session, paged_before=datetime.now(UTC) + timedelta(minutes=1))
    assert [a.id for a in due] == [fired.alert_id]
    repaged = await running.service.sweeper.sweep(datetime.now(UTC) + timedelta(minutes=16))
    assert [(m.alert_id, m.kind) for m in repaged] == [(fired.alert_id, "repaged")]
