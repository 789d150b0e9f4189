"""Through `watchfloor up`, with a rule for any armed actor in each of the four countries: denied rumours,
anniversaries, threats, trend analysis, sport and a story whose words collide with place names page no one,
while the current attacks pushed in the same batch (one of them a roundup of two) each page exactly once."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from shared.taxonomy import ACTOR_PARENTS
from tests.e2e.conftest import System
from tests.servers import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
pytestmark = pytest.mark.e2e

PAGE = [  # (source, title, text): each a current attack
    ("niger-wire", "Gunmen kill four soldiers at army post near Ouallam",
     "Gunmen attacked an army post near Ouallam in western Niger on Sunday, killing four soldiers, security "
     "sources said."),
    ("mali-wire", "JNIM claims ambush on army convoy near Boni",
     "JNIM claimed responsibility for an ambush on a Malian army convoy near Boni on Tuesday that killed six "
     "soldiers."),
    ("sahel-roundup", "Two attacks in the Sahel: Ménaka and Djibo",
     "Fighters of the Islamic State Sahel Province attacked an army post in Ménaka on Sunday, killing six "
     "soldiers, local sources said. In Burkina Faso, JNIM militants ambushed a supply convoy near Djibo on the "
     "same day, killing 11 soldiers, according to security sources."),
]
QUIET = [  # nothing happened now
    ("bamako-desk", "Army denies rumours of JNIM attack on Bamako airport",
     "The army said no attack took place at Bamako airport on Sunday and dismissed reports circulating on social "
     "media as false information."),
    ("niger-wire", "One year ago: remembering the Inates attack",
     "On 10 December 2025, hundreds of ISGS fighters overran the army camp at Inates, killing 71 soldiers. "
     "Families gathered in Niamey on Wednesday to remember them."),
    ("mali-wire", "JNIM threatens to attack Bamako",
     "In a video, the group warned it would strike the capital and attack convoys on the roads to the south."),
    ("sahel-analysis", "Analysis: why attacks on Burkina Faso's army rose in 2025",
     "Attacks by JNIM on army positions in Burkina Faso rose by a fifth last year, analysts say, as the group "
     "extended its blockade of northern towns."),
    ("sport-desk", "Mali knock Burkina Faso out of the cup",
     "Mali beat Burkina Faso 2-1 in the AFCON semi-finals on Sunday, with a late goal from the striker."),
    ("good-news", "Dog Helps Save Woman From Flooded River",
     "A dog helped save a woman who fell into a flooded river on Sunday, neighbours said."),
]


def rule(country: str) -> str:
    actors = ", ".join(sorted(ACTOR_PARENTS))
    return (f"id: any-armed-{country.lower()}\nname: Any armed actor in {country}\nmatch:\n  any:\n"
            f"    - actors: [{actors}]\narea:\n  country: {country}\nseverity: high\n")


def test_only_current_attacks_page_each_once(system: System, webhook_receiver: WebhookReceiver,
                                             tmp_path: Path) -> None:
    system.start()
    for country in ("ML", "NE", "BF", "NG"):
        path = tmp_path / f"{country}.yaml"
        path.write_text(rule(country))
        system.cli("rule", "add", str(path))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)

    at = datetime.now(UTC) - timedelta(hours=1)
    for n, (source, title, text) in enumerate([*QUIET, *PAGE, *QUIET]):   # the quiet ones before and after
        response = httpx.post(f"{system.base_url}/ingest", timeout=5, json={
            "source": source, "title": title, "text": text, "published_at": (at + timedelta(minutes=n)).isoformat(),
            "url": f"https://{source}.example/{n}"})
        assert response.status_code == 202, response.text

    def fired() -> list[dict]:
        got = [Webhook(SECRET).verify(p.body, p.headers) for p in webhook_receiver.posts()]
        return got if len(got) >= 4 else []

    deadline = time.monotonic() + 30
    while not fired():
        assert time.monotonic() < deadline, system.logs()[-4000:]
        time.sleep(0.2)
    time.sleep(2.0)                                     # the quiet ones went through too: nothing more arrives
    received = [Webhook(SECRET).verify(p.body, p.headers) for p in webhook_receiver.posts()]
    assert [d["type"] for d in received] == ["alert.fired"] * 4, [d["data"]["title"] for d in received]
    places = sorted(d["data"]["place"]["name"] for d in received)
    assert places == ["Boni", "Djibo", "Ménaka", "Ouallam"]
    assert len({d["data"]["alert_id"] for d in received}) == 4

    # The quiet posts are in the event log with their status, paging no one.
    rows = [json.loads(line) for line in system.cli("export", "--format", "jsonl", "--since", "1d").stdout.splitlines()]
    status = {r["title"]: (r["is_event"], r["status"]) for r in rows}
    assert status["Army denies rumours of JNIM attack on Bamako airport"] == (False, "denied")
    assert status["One year ago: remembering the Inates attack"][1] == "historical"
    assert status["JNIM threatens to attack Bamako"][1] == "hypothetical"
    assert not any(status[title][0] for _source, title, _text in QUIET)
    assert system.stop() == 0, system.logs()
