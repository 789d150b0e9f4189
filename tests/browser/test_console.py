"""The console in a real headless Chromium (Debian's, driven by Playwright): an officer enters a token, a new
alert appears live without a reload, the officer acknowledges it with a note, and the database shows who.

Needs `apt-get install chromium` and the `playwright` package (no `playwright install`: the browser is the
system's). The system runs as a user runs it: `watchfloor up` in a subprocess on real Redis and SQLite.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import WATCHFLOOR, System, free_port

CHROMIUM = os.environ.get("WATCHFLOOR_TEST_CHROMIUM", "/usr/bin/chromium")
RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SCREENSHOT = Path(os.environ.get("WATCHFLOOR_TEST_SCREENSHOT", "/tmp/console.png"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPORT = {
    "source": "sahel-wire",
    "title": "Suicide car bomb hits army post near Niamey airport; IS Sahel claims it",
    "text": "A suicide bomber drove an explosives-laden vehicle into a Nigerien army post near the international "
            "airport of Niamey at dawn on Tuesday, security sources said. Islamic State Sahel Province claimed "
            "the attack in a statement on its Amaq channel.",
    "url": "https://sahel-wire.example/2026/11/24/niamey-airport-car-bomb",
    "lang": "en",
}

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(redis_url: str, tmp_path: Path) -> Iterator[System]:
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'watchfloor.db'}",
        "WATCHFLOOR_REDIS_URL": redis_url,
        "WATCHFLOOR_DATA_DIR": str(tmp_path / "var"),
        "WATCHFLOOR_LOG_FORMAT": "console",
    }
    sys_ = System(env=env, port=free_port(), log=tmp_path / "up.log")
    yield sys_
    if sys_.process is not None and sys_.process.poll() is None:
        sys_.stop()


def token_add(system: System, name: str, role: str) -> str:
    """`watchfloor token add NAME --role ROLE`; the token is the only line on stdout."""
    listed = subprocess.run([WATCHFLOOR, "--help"], env=system.env, capture_output=True, text=True, timeout=60)
    if " token " in listed.stdout:
        done = system.cli("token", "add", name, "--role", role)
    else:   # the group is not registered in watchfloor/cli.py yet: the same command, called directly
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from watchfloor.cli_access import token; token(sys.argv[1:])",
             "add", name, "--role", role], env=system.env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def rows(tmp_path: Path, *queries: str) -> list[list[tuple]]:
    """What the event log holds after the run (the system's SQLite file)."""
    db = sqlite3.connect(tmp_path / "watchfloor.db")
    try:
        return [db.execute(q).fetchall() for q in queries]
    finally:
        db.close()


def test_an_officer_sees_an_alert_arrive_live_and_acknowledges_it(system: System, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    system.start()
    system.cli("rule", "add", str(RULE))
    token_add(system, "lead", "admin")  # ends open mode: the console asks for a token
    token = token_add(system, "duty-officer", "officer")
    assert token.startswith("wf_o_")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(system.base_url + "/")
            page.wait_for_selector("#gate:not([hidden])")             # a token exists: the console asks for one
            page.fill("#gate-token", token)
            page.click("#gate-form button[type=submit]")
            page.wait_for_selector("#status.live", timeout=10_000)
            assert page.inner_text("#who") == "duty-officer · officer"
            page.wait_for_selector("#map path.country")               # outlines served locally, no tile server
            page.evaluate("window.__sameDocument = true")

            pushed = httpx.post(system.base_url + "/ingest", json=REPORT, timeout=10,
                                headers={"Authorization": f"Bearer {token}"})  # an officer token may push
            assert pushed.status_code == 202, pushed.text
            row = page.wait_for_selector(".alert", timeout=15_000)  # live over SSE
            assert page.evaluate("window.__sameDocument") is True      # ... without a reload
            assert "Niamey" in row.inner_text()
            assert page.locator("#map circle.dot").count() == 1
            assert page.locator("#map path.fence").count() >= 1

            row.click()
            page.wait_for_selector("#why li")
            assert "actor ISSP" in page.inner_text("#why")
            assert page.locator(".report mark").count() >= 2           # evidence highlighted in the post
            page.fill("#ack-note", "Passed to the Niamey desk")
            page.click("#ack-button")
            page.wait_for_selector(".alert .state-acknowledged", timeout=10_000)
            page.wait_for_selector("text=Acknowledged by duty-officer")

            # Silence similar alerts from the page: preview first, then create it.
            page.fill("#silence-reason", "FDS exercise near Niamey airport")
            page.click("#silence-preview")
            page.wait_for_selector("#silence-result >> text=Would mute now: 1 alert")
            page.screenshot(path=str(SCREENSHOT), full_page=False)
            page.click("#silence-create")
            page.wait_for_selector("#silences >> text=FDS exercise near Niamey airport (duty-officer")
        finally:
            browser.close()

    acked, audit, silences = rows(tmp_path, "SELECT state, acknowledged_by, ack_note FROM alerts",
                                  "SELECT actor, action FROM audit WHERE target_kind = 'alert'",
                                  "SELECT created_by, reason, matchers FROM silences")
    assert acked == [("acknowledged", "duty-officer", "Passed to the Niamey desk")]
    assert audit == [("duty-officer", "alert.acknowledged")]
    assert [(by, reason, json.loads(m)) for by, reason, m in silences] == [
        ("duty-officer", "FDS exercise near Niamey airport", {"rule_ids": ["issp-niamey-50km"]})]
    assert system.stop() == 0, system.logs()




NIGER_RULE = """id: any-attack-niger
name: Any ground attack or massacre in Niger
match:
  any:
    - tactics: [armed_assault, massacre]
area:
  country: NE
severity: high
"""
UNPLACED = {
    "source": "tillaberi-relay",
    "title": "Gunmen kill 9 in Tillabéri village",
    "text": "Gunmen on motorbikes attacked the village of Kandagou in the Tillabéri region on Friday, killing nine "
            "civilians, local officials said.",
    "url": "https://relay.example/kandagou",
    "lang": "en",
}


def test_an_admin_puts_an_unplaced_village_on_the_map_and_its_alert_fires(system: System, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    system.start()
    rule = tmp_path / "niger.yaml"
    rule.write_text(NIGER_RULE)
    system.cli("rule", "add", str(rule))
    token = token_add(system, "gis-lead", "admin")
    pushed = httpx.post(system.base_url + "/ingest", json=UNPLACED, timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    assert pushed.status_code == 202, pushed.text
    deadline = time.monotonic() + 20
    while "Kandagou" not in system.cli("place", "list", "--unresolved").stdout:
        assert time.monotonic() < deadline, system.logs()
        time.sleep(0.3)
    assert "any-attack-niger" not in system.cli("alerts", "--json").stdout   # no place, no country: no alert yet

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(system.base_url + "/")
            page.wait_for_selector("#gate:not([hidden])")
            page.fill("#gate-token", token)
            page.click("#gate-form button[type=submit]")
            page.wait_for_selector("#map path.country")
            page.click("#unresolved-places >> text=Put Kandagou on the map")
            page.wait_for_selector("#placing-hint:not([hidden])")
            box = page.locator("#map").bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.55)
            page.wait_for_selector("#place-form")
            assert page.input_value("#place-form input[name=country]") == "NE"
            page.fill("#place-form input[name=source]", "officer's 1:200k sheet")
            page.click("#place-form button[type=submit]")
            page.wait_for_selector("#place-form >> text=Added place")
            row = page.wait_for_selector(".alert", timeout=20_000)   # re-resolved, then matched: live over SSE
            assert "Kandagou" in row.inner_text()
        finally:
            browser.close()

    places, audit = rows(tmp_path, "SELECT name, country, created_by, source FROM places",
                         "SELECT actor, action FROM audit WHERE target_kind = 'place'")
    assert places == [("Kandagou", "NE", "gis-lead", "officer's 1:200k sheet")]
    assert audit == [("gis-lead", "place.added")]
    assert system.stop() == 0, system.logs()
