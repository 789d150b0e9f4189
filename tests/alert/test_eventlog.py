"""The event log as ops read it: query by time, actor, tactic, area, rule and state; export as CSV, GeoJSON and
JSON lines, each parsed back; `explain` for a post that fired and one that did not (API and CLI)."""

import asyncio
import csv
import io
import json
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner

from services.alert import eventlog
from services.alert.eventlog import LogQuery, QueryError
from tests.alert.apiclient import base_url, bearer, make_token, publish_logged, server
from tests.alert.conftest import Running, eventually
from tests.alert.events import GAO, T0, TILLABERI, event, vbied_niamey_en, vbied_niamey_fr
from watchfloor.cli_eventlog import explain, export

__all__ = ["base_url", "server"]   # fixtures

AWKWARD = 'Attaque à Niamey, "kamikaze" signalé\nsuite'   # a comma, quotes and a line break in one field


def _records() -> list[dict]:
    return [
        {"event_id": "e1", "title": AWKWARD, "actors": ["ISSP:perpetrator", "NIGER_FDS:target"], "tactics": ["vbied"],
         "lat": 13.51, "lon": 2.11, "country": "NE", "is_event": True, "killed": None, "rules": ["r1"]},
        {"event_id": "e2", "title": "no place", "actors": [], "tactics": ["ied"], "lat": None, "lon": None},
    ]


def test_csv_is_rfc_4180_and_reads_back_with_the_csv_module() -> None:
    text = "".join(eventlog.render(_records(), "csv", "events"))
    assert text.startswith("event_id,at,source_id,title,") and "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["event_id"] for r in rows] == ["e1", "e2"]
    assert rows[0]["title"] == AWKWARD
    assert rows[0]["actors"] == "ISSP:perpetrator; NIGER_FDS:target" and rows[0]["is_event"] == "true"
    assert rows[0]["killed"] == "" and rows[1]["lat"] == ""


def test_geojson_points_are_lon_then_lat() -> None:
    collection = json.loads("".join(eventlog.render(_records(), "geojson", "events")))
    assert collection["type"] == "FeatureCollection"
    first, second = collection["features"]
    assert first["type"] == "Feature" and first["id"] == "e1"
    assert first["geometry"] == {"type": "Point", "coordinates": [2.11, 13.51]}    # RFC 7946: [lon, lat]
    assert first["properties"]["title"] == AWKWARD and "lat" not in first["properties"]
    assert second["geometry"] is None
    assert json.loads("".join(eventlog.render([], "geojson", "alerts"))) == {"type": "FeatureCollection",
                                                                           "features": []}


def test_json_lines_are_one_object_a_line() -> None:
    lines = "".join(eventlog.render(_records(), "jsonl", "events")).splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == ["e1", "e2"]
    assert json.loads(lines[0])["title"] == AWKWARD


def test_queries_that_cannot_run_say_why() -> None:
    with pytest.raises(QueryError, match="near needs radius_km"):
        eventlog.resolve_near("Niamey", None)
    with pytest.raises(QueryError, match="unknown place 'Atlantis'"):
        eventlog.resolve_near("Atlantis", 10)
    with pytest.raises(QueryError, match="unknown state 'open'"):
        LogQuery(state="open")
    near = eventlog.resolve_near("Niamey", 50, "NE")
    assert near is not None and near.label == "Niamey"
    assert eventlog.keep({"actors": ["KATIBA_MACINA:perpetrator"]}, LogQuery(actors=("JNIM",)))  # a sub-unit


async def _logged(running: Running) -> dict[str, str]:
    """Four reports: two of one car bomb in Niamey (one alert), one in Tillabéri, one in Gao (no alert)."""
    reports = {
        "niamey-en": vbied_niamey_en(),
        "niamey-fr": vbied_niamey_fr(),
        "tillaberi": event("tillaberi", source="src-t", place=TILLABERI, at=T0 + timedelta(hours=2),
                           title="Car bomb near Tillabéri"),
        "gao": event("gao", source="src-g", actors=(("JNIM", "perpetrator"),), tactics=("ambush",), place=GAO,
                     at=T0 + timedelta(hours=3), title="JNIM ambush near Gao"),
    }
    last = b""
    for report in reports.values():
        last = await publish_logged(running, report)
    await eventually(lambda: running.handled(last))
    return {name: report.event_id for name, report in reports.items()}


async def test_the_event_log_is_queried_and_exported_by_actor_tactic_area_rule_and_state(
        running: Running, base_url: str) -> None:
    ids = await _logged(running)
    viewer = await make_token(running.sessions, "analyst", "viewer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(viewer)) as client:
        async def event_ids(**params: object) -> list[str]:
            answer = await client.get("/api/events", params=params)
            assert answer.status_code == 200, answer.text
            return sorted(r["event_id"] for r in answer.json())

        assert await event_ids() == sorted(ids.values())
        assert await event_ids(actor="JNIM") == [ids["gao"]]
        assert await event_ids(tactic="vbied", country="NE") == sorted(
            [ids["niamey-en"], ids["niamey-fr"], ids["tillaberi"]])
        assert await event_ids(near="Niamey", radius_km=50) == sorted([ids["niamey-en"], ids["niamey-fr"]])
        assert await event_ids(rule="issp-niamey-50km") == sorted([ids["niamey-en"], ids["niamey-fr"]])
        assert await event_ids(rule="issp-niamey-50km", state="acknowledged") == []
        assert await event_ids(since=(T0 + timedelta(minutes=90)).isoformat(),
                               until=(T0 + timedelta(hours=2, minutes=30)).isoformat()) == [ids["tillaberi"]]
        refused = await client.get("/api/events", params={"near": "Niamey"})
        assert refused.status_code == 422 and "radius_km" in refused.json()["detail"]

        alerts = (await client.get("/api/events", params={"of": "alerts", "country": "NE"})).json()
        assert [(a["rule_id"], a["state"], sorted(a["sources"])) for a in alerts] == [
            ("issp-niamey-50km", "firing", ["src-en", "src-fr"])]

        download = await client.get("/api/export", params={"format": "csv", "tactic": "vbied"})
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert "attachment" in download.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(download.text, newline="")))
        assert sorted(r["event_id"] for r in rows) == sorted([ids["niamey-en"], ids["niamey-fr"], ids["tillaberi"]])
        niamey = next(r for r in rows if r["event_id"] == ids["niamey-en"])
        assert (niamey["rules"], niamey["alert_states"], niamey["place"]) == ("issp-niamey-50km", "firing", "Niamey")

        geo = (await client.get("/api/export", params={"format": "geojson", "of": "alerts"})).json()
        [feature] = geo["features"]
        lon, lat = feature["geometry"]["coordinates"]
        assert 1.9 < lon < 2.3 and 13.3 < lat < 13.7          # Niamey as [lon, lat]
        lines = (await client.get("/api/export", params={"format": "jsonl", "actor": "JNIM"})).text.splitlines()
        assert [json.loads(line)["event_id"] for line in lines] == [ids["gao"]]

        # "What would this rule have fired?": a rule not yet stored, run over the log.
        gao_rule = "id: jnim-gao\nname: JNIM near Gao\nmatch:\n  any:\n    - actors: [JNIM]\narea:\n  near: Gao\n" \
                   "  country: ML\n  radius_km: 30\nseverity: medium\n"
        since = (T0 - timedelta(days=1)).isoformat()
        dry = await client.post("/api/rules/dry-run", content=gao_rule, params={"since": since})
        assert dry.status_code == 200, dry.text
        assert [h["event_id"] for h in dry.json()["hits"]] == [ids["gao"]]
        broken = await client.post("/api/rules/dry-run", content=gao_rule.replace("30", "0"), params={"since": since})
        assert (broken.status_code, broken.json()["field"]) == (422, "area.radius_km")


async def test_explain_says_why_a_rule_fired_for_one_post_and_not_for_another(
        running: Running, base_url: str) -> None:
    ids = await _logged(running)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:   # open bootstrap on loopback
        fired = (await client.get(f"/api/explain/{ids['niamey-en']}")).json()
        [verdict] = fired["rules"]
        assert verdict["fired"] and verdict["alert_id"]
        assert verdict["summary"].startswith("fired: alert ")
        assert {c["condition"]: c["passed"] for c in verdict["checks"]}["area"] is True
        assert {(lab["kind"], lab["code"]) for lab in fired["labels"]} >= {("actor", "ISSP"), ("tactic", "vbied")}
        actor = next(lab for lab in fired["labels"] if lab["kind"] == "actor")
        assert actor["evidence"][0]["text"] == "ISSP"

        missed = (await client.get(f"/api/explain/{ids['tillaberi'][:10]}")).json()   # a unique prefix
        [verdict] = missed["rules"]
        assert not verdict["fired"]
        area = next(c for c in verdict["checks"] if c["condition"] == "area")
        assert not area["passed"] and "km from Niamey > 50 km" in area["reason"]
        assert verdict["summary"].startswith("did not fire: area: Tillabéri")
        assert (await client.get("/api/explain/nothing-like-this")).status_code == 404

    # The same from a second terminal: `watchfloor explain POST_ID` and `watchfloor export`.
    env = {"WATCHFLOOR_DATABASE_URL": running.settings.database_url or ""}
    runner = CliRunner()
    said = await asyncio.to_thread(runner.invoke, explain, [ids["tillaberi"]], env=env, catch_exceptions=False)
    assert said.exit_code == 0, said.output
    assert "no     issp-niamey-50km: did not fire: area:" in said.output
    assert "✗ area: Tillabéri:" in said.output and "actor ISSP (perpetrator)" in said.output
    said = await asyncio.to_thread(runner.invoke, explain, [ids["niamey-en"]], env=env)
    assert "FIRED  issp-niamey-50km: fired: alert" in said.output
    unknown = await asyncio.to_thread(runner.invoke, explain, ["zzzzzzzz"], env=env)
    assert unknown.exit_code == 1 and "no classified post zzzzzzzz" in unknown.output

    exported = await asyncio.to_thread(runner.invoke, export, ["--format", "geojson", "--near", "Niamey",
                                                               "--radius-km", "50"], env=env)
    assert exported.exit_code == 0, exported.output
    collection = json.loads(exported.stdout)
    assert sorted(f["id"] for f in collection["features"]) == sorted([ids["niamey-en"], ids["niamey-fr"]])
    refused = await asyncio.to_thread(runner.invoke, export, ["--near", "Atlantis", "--radius-km", "5"], env=env)
    assert refused.exit_code == 1 and "unknown place 'Atlantis'" in refused.output
