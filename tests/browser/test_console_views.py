"""A watch floor's day in the console, in Debian's Chromium (issue 11): the map zooms to a selected alert and
keeps its geofence in sight, names towns without overlapping labels; the Incidents view opens an incident to
its reports grouped by origin; the Audit view shows who acknowledged; Search finds posts, `%` taken literally.

  t=0   two rules (ISSP or a car bomb within 50 km of Niamey; any ground attack in Niger)
  t=0   a wire story of a car bomb in Niamey (sahel-wire), its syndicated copy (sahel-blog), a French report
        of its own (le-sahel-fr): one incident, an alert of each rule; an attack in Tillabéri (tillaberi-relay): a
        second incident and alert; a market report with a "%" (market-watch): no event
  then  an officer selects the Niamey alert (the map zooms to it), acknowledges it, reads the incidents, the
        audit and searches the log; a screenshot of each view is kept
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.browser.test_console import ARGS, CHROMIUM, NIGER_RULE, RULE, SCREENSHOT, system, token_add
from tests.e2e.conftest import System
from tests.e2e.test_officer_scenario import wait
from tests.e2e.test_syndicated_copy import HEADLINE, OWN, SYNDICATED, WIRE

__all__ = ["system"]   # the fixture
pytestmark = pytest.mark.e2e

TILLABERI = ("Gunmen kill twelve soldiers in attack on army post in Tillabéri",
             "Gunmen on motorbikes attacked an army post in the town of Tillabéri in western Niger on Wednesday, "
             "killing twelve soldiers, the defence ministry said.")
MARKET = ("Millet prices up 40% in Gao market, traders say",
          "The price of a sack of millet rose by 40% in a month at the Gao market, traders said on Thursday.")


def push(system: System, token: str, source: str, lang: str, title: str, text: str, at: datetime) -> None:
    response = httpx.post(f"{system.base_url}/ingest", timeout=5, headers={"Authorization": f"Bearer {token}"},
                          json={"source": source, "lang": lang, "title": title, "text": text,
                                "published_at": at.isoformat(), "url": f"https://{source}.example/{abs(hash(title))}"})
    assert response.status_code == 202, response.text


def get(system: System, token: str, path: str, **params: Any) -> Any:
    response = httpx.get(system.base_url + path, params=params, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    """Pairs of on-screen boxes ({text, left, top, right, bottom}) that overlap by more than half a pixel."""
    return [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if min(a["right"], b["right"]) - max(a["left"], b["left"]) > .5
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > .5]


LABEL_BOXES = """() => [...document.querySelectorAll('#map text.label')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.firstChild.textContent, cls: t.getAttribute('class'), left: r.left, top: r.top, right: r.right,
            bottom: r.bottom, shown: r.width > 0 && getComputedStyle(t).display !== 'none'};
}).filter(b => b.shown)"""


def test_a_watch_floor_day_map_incidents_audit_and_search(system: System, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    shots = SCREENSHOT.parent
    system.start()
    rule = tmp_path / "niger.yaml"
    rule.write_text(NIGER_RULE)
    system.cli("rule", "add", str(RULE), str(rule))
    admin = token_add(system, "lead", "admin")
    officer = token_add(system, "duty-officer", "officer")
    attack = datetime.now(UTC) - timedelta(hours=3)
    push(system, officer, "sahel-wire", "en", HEADLINE, WIRE, attack)
    wait(lambda: len(get(system, admin, "/api/incidents")) == 1, 20, "the Niamey incident", system)
    push(system, officer, "sahel-blog", "en", HEADLINE, SYNDICATED, attack + timedelta(minutes=40))
    push(system, officer, "le-sahel-fr", "fr", *OWN, at=attack + timedelta(minutes=50))
    push(system, officer, "tillaberi-relay", "en", *TILLABERI, at=attack + timedelta(minutes=70))
    push(system, officer, "market-watch", "en", *MARKET, at=attack + timedelta(minutes=80))
    wait(lambda: len(get(system, admin, "/api/alerts")) == 3 and
         sorted(i["report_count"] for i in get(system, admin, "/api/incidents")) == [1, 3] and
         len(get(system, admin, "/api/events")) == 5, 30, "three alerts on two incidents, five posts logged", system)
    niamey = next(a for a in get(system, admin, "/api/alerts") if a["rule_id"] == "issp-niamey-50km")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(system.base_url + "/")
            page.wait_for_selector("#gate:not([hidden])")
            page.fill("#gate-token", officer)
            page.click("#gate-form button[type=submit]")
            page.wait_for_selector("#status.live", timeout=10_000)
            page.wait_for_selector("#map path.country")
            page.wait_for_selector("#map path.admin1")                  # region borders, from a package
            page.wait_for_function("document.querySelectorAll('.alert').length === 3")

            # --- the map: select an alert, the map zooms to it, its geofence stays in sight -----------------------
            dot = f'#map circle.dot[data-alert="{niamey["alert_id"]}"]'
            before = page.evaluate(f"""() => ({{view: document.querySelector('#map').getAttribute('viewBox'),
                r: document.querySelector('{dot}').getBoundingClientRect().width / 2}})""")
            page.click(f'.alert[data-alert="{niamey["alert_id"]}"]')
            page.wait_for_function(f"document.querySelector('#map').getAttribute('viewBox') !== {before['view']!r}")
            page.wait_for_selector(f"{dot}.sel")
            page.wait_for_timeout(400)                                  # restyle runs on the next frame
            seen = page.evaluate(f"""() => {{
                const svg = document.querySelector('#map'), box = svg.getBoundingClientRect();
                const [vx, vy, vw, vh] = svg.getAttribute('viewBox').split(' ').map(Number);
                const [px, py] = xy({niamey['place']['lon']}, {niamey['place']['lat']});
                const fence = document.querySelector('#map path.fence[data-rule="issp-niamey-50km"]')
                    .getBoundingClientRect();
                const d = document.querySelector('{dot}').getBoundingClientRect();
                // just inside the fence's ring, on its left: what is on top there?
                const hit = document.elementFromPoint(fence.left + 3, fence.top + fence.height / 2);
                return {{placeInView: px >= vx && px <= vx + vw && py >= vy && py <= vy + vh,
                         fence: [fence.left, fence.top, fence.right, fence.bottom],
                         svg: [box.left, box.top, box.right, box.bottom],
                         r: d.width / 2, hit: hit ? (hit.getAttribute('class') || hit.tagName) : null,
                         full: vw / state.full[2]}};
            }}""")
            assert seen["placeInView"], seen
            assert seen["full"] < 0.2, seen                              # zoomed in, not the whole Sahel
            left, top, right, bottom = seen["fence"]
            assert right - left > 50 and bottom - top > 50, seen        # the 50 km fence is drawn, not a speck
            assert left >= seen["svg"][0] - 1 and right <= seen["svg"][2] + 1, seen
            assert top >= seen["svg"][1] - 1 and bottom <= seen["svg"][3] + 1, seen
            assert seen["hit"] and "dot" not in seen["hit"] and ("fence" in seen["hit"] or seen["hit"] in (
                "country", "svg")), seen
            assert abs(seen["r"] - before["r"]) <= 1, (before, seen)   # the dot keeps its size on screen

            page.wait_for_function("document.querySelectorAll('#map text.tlabel:not([display])').length >= 3",
                                   timeout=10_000)                     # towns named once zoomed in
            labels = page.evaluate(LABEL_BOXES)
            assert any("tlabel" in b["cls"] for b in labels) and any(b["text"] == "Niamey" for b in labels), labels
            assert any(b["text"] == "issp-niamey-50km" for b in labels), labels
            assert overlapping(labels) == [], overlapping(labels)
            page.screenshot(path=str(shots / "console-map-zoomed.png"), full_page=False)

            page.mouse.move(*(lambda b: (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2))(
                page.locator("#map").bounding_box()))
            for _ in range(3):
                page.mouse.wheel(0, -300)                               # zoom further in: still no overlap
            page.wait_for_timeout(800)
            assert overlapping(page.evaluate(LABEL_BOXES)) == []
            assert abs(page.evaluate(f"document.querySelector('{dot}').getBoundingClientRect().width / 2")
                       - before["r"]) <= 1

            page.wait_for_selector("#ack-note")
            page.fill("#ack-note", "Niamey desk informed")
            page.click("#ack-button")
            page.wait_for_selector("text=Acknowledged by duty-officer")

            # --- incidents: newest first, one opens to its timeline and its reports by origin ----------------------
            page.click("#tab-incidents")
            page.wait_for_selector("tr.incident")
            assert page.evaluate("location.hash") == "#incidents"
            places = page.locator("tr.incident .open-incident").all_text_contents()
            assert places == ["Tillabéri (NE)", "Niamey (NE)"], places
            page.click("tr.incident >> text=Niamey (NE)")
            page.wait_for_selector("#incident-origins .origin")
            timeline = page.eval_on_selector_all("#incident-timeline li", "li => li.map(x => x.textContent)")
            assert [t.split(" · ")[1] for t in timeline] == ["sahel-wire", "sahel-blog", "le-sahel-fr"], timeline
            assert "language fr" in timeline[2] and "copy of sahel-wire" in timeline[1], timeline
            origins = page.eval_on_selector_all("#incident-origins .origin", """gs => gs.map(g => ({
                original: g.querySelector('div').textContent,
                copies: [...g.querySelectorAll('li.copy-of')].map(li => li.textContent)}))""")
            assert "sahel-wire" in origins[0]["original"] and len(origins[0]["copies"]) == 1, origins
            assert "via text" in origins[0]["copies"][0] and "sahel-blog" in origins[0]["copies"][0], origins
            assert "similarity 0." in origins[0]["copies"][0] or "similarity 1.00" in origins[0]["copies"][0]
            assert "le-sahel-fr" in origins[1]["original"] and origins[1]["copies"] == [], origins
            assert "acknowledged" in page.text_content("#incident-alerts")
            assert page.text_content('tr.incident[aria-selected=true] td:nth-child(10)') == "2"   # independent
            page.screenshot(path=str(shots / "console-incidents.png"), full_page=False)
            page.select_option("#incident-status", "resolved")
            assert page.locator("tr.incident").count() == 0 and page.is_visible("#incidents-empty")
            page.select_option("#incident-status", "")

            # --- audit: the acknowledgement, who and when; the filter works ----------------------------------------
            page.focus("#tab-incidents")
            page.keyboard.press("ArrowRight")                           # keyboard: Incidents -> Audit
            page.wait_for_selector("#audit-view:not([hidden]) tr.audit-row")
            ack = page.locator("tr.audit-row", has_text="alert.acknowledged")
            assert ack.count() == 1 and "duty-officer" in ack.text_content()
            assert (ack.locator("time").get_attribute("title") or "").endswith(" UTC")
            assert niamey["alert_id"] in ack.text_content() and "Niamey desk informed" in ack.text_content()
            page.fill("#audit-actor", "duty-officer")
            page.press("#audit-actor", "Enter")
            page.wait_for_function("[...document.querySelectorAll('tr.audit-row td:nth-child(2)')]"
                                   ".every(td => td.textContent === 'duty-officer')")
            page.screenshot(path=str(shots / "console-audit.png"), full_page=False)
            page.fill("#audit-action", "silence.created")
            page.press("#audit-action", "Enter")
            page.wait_for_selector("#audit-empty:not([hidden])")
            page.click("#audit-clear")
            page.wait_for_selector("tr.audit-row")

            # --- search: a word finds its posts, % is a plain character ----------------------------------------------
            page.click("#tab-search")
            page.fill("#search-q", "40%")
            page.press("#search-q", "Enter")
            page.wait_for_selector("#search-counts >> text=1 post found")
            assert page.locator(".result mark").first.text_content() == "40%"
            page.fill("#search-q", "%")
            page.press("#search-q", "Enter")
            page.wait_for_function("document.querySelectorAll('.result').length === 1 && "
                                   "document.querySelector('.result mark').textContent === '%'")
            page.fill("#search-q", "CAR BOMB")
            page.press("#search-q", "Enter")
            page.wait_for_selector("#search-counts >> text=2 posts found")
            marks = page.locator(".result mark").all_text_contents()
            assert marks and all(m.lower() == "car bomb" for m in marks), marks
            page.fill("#search-country", "ML")
            page.press("#search-q", "Enter")
            page.wait_for_selector("#search-counts >> text=0 posts found")
            page.fill("#search-country", "")
            page.fill("#search-q", "car bomb")
            page.select_option("#search-is-event", "true")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("#search-counts >> text=2 posts found")
            page.click(".result >> nth=0 >> button.explain")
            page.wait_for_selector("#explain-text")
            assert "issp-niamey-50km" in page.text_content("#explain-text")
            page.screenshot(path=str(shots / "console-search.png"), full_page=False)
            assert dialogs == []
        finally:
            browser.close()
    assert system.stop() == 0, system.logs()
