"""The officer's scenario (issue 5), with `watchfloor up` in a subprocess on real Redis, PostgreSQL and SQLite.

Timeline:
  t=0    ops add the rule and a webhook subscription with the CLI; ANP (Niger's press agency) is official
  t=0..  five reports of one suicide car bomb at Niamey airport arrive by POST /ingest, from three sources in
         English and French: the receiver gets ONE alert id, fired then updated as corroboration rises
         (single_source → corroborated → confirmed), versions increasing, severity III
  then   the alert is re-paged while nobody acknowledges it; the officer acks it: no more re-pages
  then   a silence on the rule; an ISSP ambush at Kollo (another incident) is alerted but muted: no webhook,
         the alert and the silence are in the event log, the silence in the audit table
  then   Ctrl-C and start again: the alert keeps its state, ack and version; nothing is sent again
"""

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from shared.db import make_engine
from tests.e2e.conftest import System
from tests.servers import WebhookReceiver

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OFFICIAL = "anp-niger"

pytestmark = pytest.mark.e2e

REPORTS = [
    ("sahel-wire", "en", "Suicide car bomb hits army post near Niamey airport; IS Sahel claims it",
     "A suicide bomber drove an explosives-laden vehicle into a Nigerien army post near the international "
     "airport of Niamey at dawn on Tuesday, security sources said. Islamic State Sahel Province claimed the "
     "attack in a statement on its Amaq channel."),
    ("sahel-wire", "en", "Niamey airport car bomb: army post destroyed, IS Sahel claim",
     "The vehicle-borne bomb that struck an army post near Niamey international airport destroyed the post, "
     "a security source said. Islamic State Sahel Province claimed the car bomb."),
    ("le-sahel-fr", "fr", "Niamey : attentat-suicide à la voiture piégée contre un poste de l'armée près de l'aéroport",
     "Un kamikaze au volant d'un véhicule piégé a visé mardi à l'aube un poste de l'armée nigérienne près de "
     "l'aéroport international de Niamey. L'État islamique au Sahel (EIGS) a revendiqué l'attentat."),
    (OFFICIAL, "fr", "Attentat à la voiture piégée près de l'aéroport de Niamey",
     "Un véhicule piégé conduit par un kamikaze a explosé mardi contre un poste de l'armée près de l'aéroport "
     "international de Niamey, selon le ministère de la Défense. L'État islamique au Sahel a revendiqué "
     "l'attentat."),
    ("le-sahel-fr", "fr", "Aéroport de Niamey : l'EIGS revendique l'attentat à la voiture piégée",
     "L'État islamique au Sahel (EIGS) a revendiqué l'attentat-suicide à la voiture piégée contre un poste de "
     "l'armée nigérienne près de l'aéroport de Niamey."),
]
KOLLO = ("sahel-wire", "en", "IS Sahel fighters ambush army patrol near Kollo",
         "Islamic State Sahel Province fighters ambushed a Nigerien army patrol near Kollo on Wednesday, security "
         "sources said. Islamic State Sahel Province claimed the ambush.")


def noise(system: System, *args: str) -> str:
    """`watchfloor silence|ack …` as the officer types it."""
    return system.cli(*args).stdout


def ingest(system: System, source: str, lang: str, title: str, text: str, at: datetime) -> None:
    response = httpx.post(f"{system.base_url}/ingest", timeout=5, json={
        "source": source, "lang": lang, "title": title, "text": text, "published_at": at.isoformat(),
        "url": f"https://{source}.example/{hashlib.sha256(title.encode()).hexdigest()[:12]}"})
    assert response.status_code == 202, response.text


def deliveries(receiver: WebhookReceiver) -> list[dict]:
    """Every webhook body received so far, each verified with the subscription's secret."""
    return [Webhook(SECRET).verify(p.body, p.headers) for p in receiver.posts()]


def wait(check, within: float, what: str, system: System):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {within}s\n{system.logs()[-4000:]}")


def query(db_url: str, sql: str) -> list[tuple]:
    async def run() -> list[tuple]:
        engine = make_engine(db_url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]
        finally:
            await engine.dispose()
    return asyncio.run(run())


def test_five_reports_one_alert_silence_ack_and_restart(system: System, webhook_receiver: WebhookReceiver,
                                                        db_url: str) -> None:
    system.env.update({"WATCHFLOOR_OFFICIAL_SOURCES": json.dumps([OFFICIAL]), "WATCHFLOOR_REPAGE_AFTER_SECONDS": "1",
                       "WATCHFLOOR_SWEEP_INTERVAL_SECONDS": "0.3"})
    system.start()
    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)

    # Five reports of one car bomb, three sources, two languages (hours ago: the Kollo ambush comes later).
    attack = datetime.now(UTC) - timedelta(hours=9)
    for minute, report in enumerate(REPORTS):
        ingest(system, *report, at=attack + timedelta(minutes=5 * minute))

    def confirmed() -> list[dict]:
        got = [d for d in deliveries(webhook_receiver) if d["type"] != "alert.repaged"]
        return got if any(d["data"]["corroboration"] == "confirmed" for d in got) else []

    wait(confirmed, 20, "the confirmed update", system)
    time.sleep(1.0)                                    # the fifth report: nothing material, nothing sent
    received = sorted(deliveries(webhook_receiver), key=lambda d: d["data"]["version"])
    assert len({d["data"]["alert_id"] for d in received}) == 1, "one attack must be one alert"
    versions = [d["data"]["version"] for d in received]
    assert versions == list(range(1, len(versions) + 1)), versions
    updates = [d for d in received if d["type"] != "alert.repaged"]
    assert [(d["type"], d["data"]["corroboration"]) for d in updates] == [
        ("alert.fired", "single_source"), ("alert.updated", "corroborated"), ("alert.updated", "confirmed")]
    assert all(d["data"]["incident_severity"] == "III" for d in received)   # a car bomb at a capital's airport
    assert updates[-1]["data"]["report_count"] >= 4 and sorted(updates[-1]["data"]["source_ids"]) == [
        OFFICIAL, "le-sahel-fr", "sahel-wire"]
    alert_id = received[0]["data"]["alert_id"]

    # Nobody acknowledges: severity III is paged again; the officer acks it, and the re-pages stop.
    wait(lambda: [d for d in deliveries(webhook_receiver) if d["type"] == "alert.repaged"], 10, "a re-page", system)
    assert "acknowledged by duty officer" in noise(system, "ack", alert_id, "--note", "Niamey desk informed",
                                                  "--by", "duty officer")
    time.sleep(0.6)                                     # a re-page already on its way may still land
    after_ack = len(webhook_receiver.posts())
    time.sleep(2.5)                                     # more than two re-page intervals
    assert len(webhook_receiver.posts()) == after_ack, "an acknowledged alert was paged again"

    # A silence on the rule: the Kollo ambush (another incident) is alerted, muted, not sent.
    out = noise(system, "silence", "add", "--rule", "issp-niamey-50km", "--reason", "FDS operation near Kollo",
                "--for", "2h", "--by", "ana")
    assert out.startswith("silence ")
    ingest(system, *KOLLO, at=datetime.now(UTC))

    def muted() -> list[dict]:
        rows = [json.loads(line) for line in system.cli("alerts", "--json").stdout.splitlines()]
        return [r for r in rows if r["alert_id"] != alert_id and r.get("muted_by")]

    kollo = wait(muted, 15, "the muted Kollo alert", system)[0]
    assert kollo["muted_by"].endswith("FDS operation near Kollo (ana)") and kollo["place"]["name"] == "Kollo"
    time.sleep(1.0)
    assert len(webhook_receiver.posts()) == after_ack, "a silenced alert was sent"
    audit = query(db_url, "SELECT actor, action FROM audit WHERE target_kind IN ('silence', 'alert') ORDER BY id")
    assert audit == [("duty officer", "alert.acknowledged"), ("ana", "silence.created")]

    # Ctrl-C and start again: state, ack and version survive; nothing is sent again.
    before = query(db_url, "SELECT id, state, version, acknowledged_by, muted_by FROM alerts ORDER BY fired_at")
    assert system.stop() == 0, system.logs()
    system.start()
    time.sleep(2.0)                                     # several sweeps and dispatcher passes
    assert query(db_url, "SELECT id, state, version, acknowledged_by, muted_by FROM alerts ORDER BY fired_at") \
        == before
    assert before[0][1:4] == ("acknowledged", before[0][2], "duty officer")
    assert len(webhook_receiver.posts()) == after_ack, "a restart re-sent an alert"
    assert system.stop() == 0, system.logs()
