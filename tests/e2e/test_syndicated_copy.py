"""Issue 10's must-show, through `watchfloor up` (real Redis, PostgreSQL and SQLite): a syndicated copy of a report
pushed under a second source does not raise corroboration; a report of its own from a third source does.

  t=0    ops add the rule and a webhook subscription with the CLI
  t=0    a wire story of a car bomb in Niamey claimed by IS Sahel is pushed under `sahel-wire`: alert.fired,
         single_source
  t=1    the same story, lightly edited (byline dropped, a link added), pushed under `sahel-blog`: it joins the
         incident as a copy of the wire story; nothing is sent
  t=2    a French report of its own under `le-sahel-fr`: alert.updated, corroborated, "sources 3 (2 independent:
         1 syndicated copy)"; GET /api/incidents groups the three reports by origin
"""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import System
from tests.e2e.test_officer_scenario import RULE, SECRET, deliveries, ingest, query, wait
from tests.servers import WebhookReceiver

pytestmark = pytest.mark.e2e

HEADLINE = "Suicide car bomb hits army post near Niamey; IS Sahel claims it"
WIRE = ("NIAMEY (Sahel Wire) - A suicide bomber drove an explosives-laden vehicle into a Nigerien army post on the "
        "northern outskirts of Niamey at dawn on Tuesday, killing three soldiers, security sources said. Islamic "
        "State Sahel Province claimed the attack in a statement on its Amaq channel, saying one of its fighters "
        "drove the vehicle into the post. Niger's junta has struggled to contain jihadist attacks since it seized "
        "power in July 2023.")
SYNDICATED = ("A suicide bomber drove an explosives-laden vehicle into a Nigerien army post on the northern outskirts "
              "of Niamey at dawn on Tuesday, killing three soldiers, security sources said. Islamic State Sahel "
              "Province claimed the attack in a statement on its Amaq channel, saying one of its fighters drove the "
              "vehicle into the post. Niger's junta has struggled to contain jihadist attacks since it seized power "
              "in July 2023. Read the full story: https://sahel-blog.example/2026/niamey")
OWN = ("Niamey : attentat-suicide contre un poste de l'armée", "Un kamikaze au volant d'un véhicule piégé a visé "
       "mardi à l'aube un poste de l'armée nigérienne à la sortie nord de Niamey. Trois soldats ont été tués. "
       "L'État islamique au Sahel (EIGS) a revendiqué l'attentat.")


def test_a_syndicated_copy_does_not_corroborate(system: System, webhook_receiver: WebhookReceiver,
                                                db_url: str) -> None:
    system.start()
    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    attack = datetime.now(UTC) - timedelta(hours=3)

    ingest(system, "sahel-wire", "en", HEADLINE, WIRE, at=attack)
    fired = wait(lambda: deliveries(webhook_receiver), 20, "alert.fired", system)
    assert [(d["type"], d["data"]["corroboration"]) for d in fired] == [("alert.fired", "single_source")]

    ingest(system, "sahel-blog", "en", HEADLINE, SYNDICATED, at=attack + timedelta(minutes=40))
    wait(lambda: query(db_url, "SELECT count(*) FROM incident_reports")[0][0] == 2, 20, "the copy joined", system)
    time.sleep(1.0)                                     # an update, were one made, would be on its way
    assert len(webhook_receiver.posts()) == 1, "a syndicated copy sent an update"
    assert query(db_url, "SELECT corroboration, source_count FROM incidents") == [("single_source", 2)]

    ingest(system, "le-sahel-fr", "fr", *OWN, at=attack + timedelta(minutes=50))
    updated = wait(lambda: [d for d in deliveries(webhook_receiver) if d["type"] == "alert.updated"], 20,
                   "alert.updated", system)
    assert [(d["data"]["corroboration"], d["data"]["corroboration_reason"]) for d in updated] == [
        ("corroborated", "sources 3 (2 independent: 1 syndicated copy)")]
    assert updated[0]["data"]["independent_source_ids"] == ["le-sahel-fr", "sahel-wire"]

    incidents = httpx.get(f"{system.base_url}/api/incidents", timeout=5).json()
    assert [(g["source_id"], [r["source_id"] for r in g["reports"]]) for g in incidents[0]["origins"]] == [
        ("sahel-wire", ["sahel-wire", "sahel-blog"]), ("le-sahel-fr", ["le-sahel-fr"])]
