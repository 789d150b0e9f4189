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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import WATCHFLOOR, System, free_port
from tests.servers import FeedServer

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

            # The alert's time is a live relative time, recomputed from its ISO value (not frozen at arrival).
            aged = page.evaluate("""() => {
                const t = document.querySelector('.alert time[data-rel]');
                t.setAttribute("datetime", new Date(Date.now() - 40 * 60 * 1000 - 500).toISOString());
                retick();
                return t.textContent;
            }""")
            assert aged == "40 min ago"
            assert page.evaluate("""() => [mutedLabel("inhibited by alert 3f2a (issp-niamey-50km, severity critical)"),
                                            mutedLabel("silence 4: FDS exercise")]""") == ["inhibited", "silenced"]

            row.click()
            page.wait_for_selector("#why li")
            assert "actor ISSP" in page.inner_text("#why")
            assert "language en" in page.inner_text(".report .meta")
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


FEED = (Path(__file__).parent.parent / "fixtures" / "feeds" / "sahel_fr_ar.rss.xml").read_bytes()
XSS_NAME = "<img src=x onerror=alert(1)>"


def wait_for_sources(system: System, token: str, want: dict[str, str], timeout: float = 30.0) -> list[dict]:
    """GET /api/sources until each named source has the wanted status (a real poll happened)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = httpx.get(system.base_url + "/api/sources", headers={"Authorization": f"Bearer {token}"},
                            timeout=10).json()
        seen = {s["id"]: s for s in listing}
        if all(sid in seen and seen[sid]["status"] == status and (status == "disabled" or seen[sid]["last_polled_at"])
               for sid, status in want.items()):
            return listing
        assert time.monotonic() < deadline, (listing, system.logs())
        time.sleep(0.3)


def described(page: Any, source_id: str) -> dict[str, str]:
    """A source's detail panel as {label: text}."""
    return page.eval_on_selector(f"#source-detail-{source_id} dl", """dl => Object.fromEntries(
        [...dl.querySelectorAll("dt")].map(dt => [dt.textContent, dt.nextElementSibling.textContent]))""")


def test_an_officer_reads_source_health_failing_first(system: System, feed_server: FeedServer,
                                                       tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    ok_url = feed_server.route("/veille.xml", FEED)
    broken_url = feed_server.route("/relay.xml", b"upstream exploded", status=500, content_type="text/plain")
    odd_url = feed_server.route("/odd.xml", FEED)
    off_url = feed_server.route("/old.xml", FEED)
    system.start()
    system.cli("source", "add", ok_url, "--name", "Veille Sahel", "--interval", "600", "--as-is")
    system.cli("source", "add", broken_url, "--name", "Relay Menaka", "--interval", "10", "--as-is")
    system.cli("source", "add", odd_url, "--name", XSS_NAME, "--interval", "600", "--as-is")
    system.cli("source", "add", off_url, "--name", "Archive feed", "--as-is")
    system.cli("source", "disable", "archive-feed")
    token_add(system, "lead", "admin")  # ends open mode
    viewer = token_add(system, "wall-screen", "viewer")  # source health is a viewer's read
    pusher = token_add(system, "bridge", "ingest")
    xss_id = "img-src-x-onerror-alert-1"
    listing = wait_for_sources(system, viewer, {"veille-sahel": "ok", "relay-menaka": "failing", xss_id: "ok",
                                                "archive-feed": "disabled"})
    assert {s["id"]: s["last_error"] for s in listing}["relay-menaka"] == "HTTP 500 Internal Server Error"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            # An officer's browser in Niamey (UTC+1): the console's days and clock times are UTC all the same.
            page = browser.new_page(viewport={"width": 1440, "height": 900}, timezone_id="Africa/Niamey")
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(system.base_url + "/")
            page.wait_for_selector("#gate:not([hidden])")
            page.fill("#gate-token", viewer)
            page.click("#gate-form button[type=submit]")
            page.wait_for_selector("#status.live", timeout=10_000)
            assert page.is_visible("#alerts-view") and not page.is_visible("#sources-view")   # alerts stay the default

            # The tabs are reachable from the keyboard: focus the alerts tab, arrow right to Sources.
            page.focus("#tab-alerts")
            page.keyboard.press("ArrowRight")
            page.wait_for_selector("#sources-view:not([hidden]) tr.source")
            assert page.get_attribute("#tab-sources", "aria-selected") == "true"
            assert not page.is_visible("#alerts-view")
            assert page.evaluate("location.hash") == "#sources"
            headers = page.locator("#sources-table thead th[scope=col]").all_text_contents()
            assert headers == ["Source", "Status", "Last poll", "Last success", "Last post", "Posts seen",
                               "Last error", "Last warning", "Next poll"]

            ids = page.eval_on_selector_all("tr.source", "rows => rows.map(r => r.dataset.source)")
            assert ids == ["relay-menaka", xss_id, "archive-feed", "veille-sahel"]   # failing first, then by name
            def cell(sid: str, selector: str) -> str:
                return page.locator(f'tr.source[data-source="{sid}"] {selector}').first.text_content() or ""

            assert cell("relay-menaka", ".pill.st-failing") == "failing"
            assert cell("relay-menaka", ".last-error") == "HTTP 500 Internal Server Error"
            assert page.is_visible('tr.source[data-source="relay-menaka"] .last-error')
            assert cell("veille-sahel", ".pill.st-ok") == "ok"
            assert cell("archive-feed", ".pill.st-disabled") == "disabled"
            assert cell("veille-sahel", ".pill.kind") == "feed"
            polled = page.locator('tr.source[data-source="veille-sahel"] time').first
            assert polled.text_content() in {"just now"} | {f"{n} s ago" for n in range(5, 60)}
            assert (polled.get_attribute("title") or "").endswith(" UTC")            # the absolute time on hover
            assert int(cell("veille-sahel", "td.num")) > 0

            # A name is text, never markup.
            assert cell(xss_id, ".source-name") == XSS_NAME
            assert page.locator("#sources-view img").count() == 0

            shots = SCREENSHOT.parent
            page.screenshot(path=str(shots / "console-sources.png"), full_page=False)

            page.fill("#source-filter", "menaka")           # by name
            assert page.eval_on_selector_all("tr.source", "r => r.map(x => x.dataset.source)") == ["relay-menaka"]
            page.fill("#source-filter", "/veille.xml")      # by url
            assert page.eval_on_selector_all("tr.source", "r => r.map(x => x.dataset.source)") == ["veille-sahel"]
            page.fill("#source-filter", "no such source")
            assert page.locator("tr.source").count() == 0 and page.is_visible("#sources-empty")
            page.fill("#source-filter", "")
            page.check("#source-problems")
            assert page.eval_on_selector_all("tr.source", "r => r.map(x => x.dataset.source)") == ["relay-menaka"]
            page.uncheck("#source-problems")
            assert page.locator("tr.source").count() == 4

            # Expand a row: everything, the url as text (no link to an internal address).
            page.click('tr.source[data-source="relay-menaka"] td:nth-child(3)')
            detail = page.wait_for_selector("tr.source-detail#source-detail-relay-menaka")
            assert page.get_attribute('tr.source[data-source="relay-menaka"] .source-name', "aria-expanded") == "true"
            assert page.text_content("#source-detail-relay-menaka .source-url") == broken_url
            assert detail.query_selector("a") is None
            fields = described(page, "relay-menaka")
            assert fields["interval"] == "every 10 s"
            assert int(fields["consecutive failures"]) >= 1
            assert fields["last error"].startswith("HTTP 500 Internal Server Error (")
            assert fields["pushed by"] == "—" and fields["enabled"] == "yes"
            page.screenshot(path=str(shots / "console-sources-detail.png"), full_page=False)
            page.focus('tr.source[data-source="relay-menaka"] .source-name')
            page.keyboard.press("Enter")
            page.wait_for_selector("#source-detail-relay-menaka", state="detached")

            # One relative-time function, pure, tested as the officer reads it.
            labels = page.evaluate("""() => {
                const now = Date.parse("2026-11-24T15:00:00Z");
                const at = (s) => new Date(now - s * 1000).toISOString();
                return [30, 40 * 60, 5 * 3600, 2 * 86400, 0, -4 * 60, 24 * 3600 + 55 * 60, 13 * 3600, 20 * 86400]
                  .map((s) => relativeTime(at(s), now)).concat([relativeTime("2026-11-24T14:30:00", now)]);
            }""")
            assert labels == ["30 s ago", "40 min ago", "5 h ago", "2 days ago", "just now", "in 4 min",
                              "yesterday 14:05Z", "today 02:00Z", "2026-11-04", "30 min ago"]
            # A shown label is recomputed from its ISO time, not frozen at render ("2 min ago" for 40 min).
            stale = page.evaluate("""() => {
                const t = document.querySelector('tr.source[data-source="veille-sahel"] time');
                t.setAttribute("datetime", new Date(Date.now() - 40 * 60 * 1000 - 500).toISOString());
                retick();
                return t.textContent;
            }""")
            assert stale == "40 min ago"

            # Fields other branches add to SourceHealth are shown when the API sends them.
            since = (datetime.now(UTC) - timedelta(hours=4, minutes=2)).isoformat()

            def with_watch_fields(route: Any) -> None:
                body = route.fetch().json()
                for s in body:
                    if s["id"] == "veille-sahel":
                        s.update(last_post_at=s["last_success_at"], watch_state="silent", watch_since=since,
                                 watch_reason="no post for 4 h (usually every 20 min)", lang="fr",
                                 keep=["Niger", "Mali"], block=["football"], posts_filtered=7,
                                 last_filtered=s["last_success_at"])
                route.fulfill(json=body)

            page.route("**/api/sources", with_watch_fields)
            page.click("#source-refresh")
            page.wait_for_selector("#sources-table th >> text=Last post")
            assert cell("veille-sahel", ".pill.watch") == "silent for 4 h"
            assert cell("veille-sahel", ".watch-reason") == "no post for 4 h (usually every 20 min)"
            assert page.eval_on_selector_all("tr.source", "r => r.map(x => x.dataset.source)")[:2] == [
                "relay-menaka", "veille-sahel"]                                  # failing, then silent, then the rest
            page.click('tr.source[data-source="veille-sahel"] .source-name')
            fields = described(page, "veille-sahel")
            assert (fields["language hint"], fields["keep patterns"], fields["block patterns"],
                    fields["posts filtered"]) == ("fr", "NigerMali", "football", "7")
            assert fields["watch"].startswith("silent since ") and fields["last post"].endswith(" ago)")
            page.screenshot(path=str(shots / "console-sources-watch.png"), full_page=False)
            page.unroute("**/api/sources")

            # An API error is said in the view, and the last list stays (marked as such).
            page.route("**/api/sources", lambda route: route.fulfill(
                status=503, json={"detail": "database unavailable, retry later"}, headers={"retry-after": "5"}))
            page.click("#source-refresh")
            page.wait_for_selector("#source-error:not([hidden])")
            error = page.text_content("#source-error") or ""
            assert "HTTP 503" in error and "database unavailable, retry later" in error and "Showing the list" in error
            assert page.locator("tr.source").count() == 4
            page.unroute("**/api/sources")

            # A token too low for source health (ingest): 403, said plainly, not an empty table.
            other = browser.new_page(viewport={"width": 1200, "height": 700})
            other.add_init_script(f"localStorage.setItem('watchfloor.token', {json.dumps(pusher)})")
            other.goto(system.base_url + "/#sources")
            other.wait_for_selector("#source-error:not([hidden])")
            refused = other.text_content("#source-error") or ""
            assert "HTTP 403" in refused and "needs viewer" in refused, refused
            assert not other.is_visible("#sources-table")
            other.screenshot(path=str(shots / "console-sources-403.png"), full_page=False)
            assert dialogs == []
        finally:
            browser.close()
    assert system.stop() == 0, system.logs()
