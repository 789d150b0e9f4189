"""The held-out posts (tests/classify/heldout*.jsonl): scored as shared/eval/score.py scores dev.jsonl, plus one
assertion per hard case. The posts report real, publicly reported events in texts written for these files.
heldout2 to heldout12 were written later and measured once before any rule change (first runs 80.3, 92.6, 77.1,
85.6, 83.5, 81.9, 82.2, 83.6, 95.0, 90.4 and 87.2, see docs/classifier.md); heldout4 to heldout12 by sessions that
had not read the classifier."""

import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.classify.batch import _post, _predict
from services.classify.classify import classify_post
from shared.gazetteer import load_gazetteer
from shared.messages import EventMessage

HELDOUT = Path(__file__).with_name("heldout.jsonl")
HELDOUT2 = Path(__file__).with_name("heldout2.jsonl")
HELDOUT3 = Path(__file__).with_name("heldout3.jsonl")
BLIND = {
    name: Path(__file__).with_name(f"{name}.jsonl")
    for name in (
        "heldout4", "heldout5", "heldout6", "heldout7", "heldout8", "heldout9", "heldout10", "heldout11", "heldout12"
    )
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PARENT = {"ANSAR_DINE": "JNIM", "KATIBA_MACINA": "JNIM", "ANSAROUL_ISLAM": "JNIM"}  # as score.py


def _rows(path: Path = HELDOUT) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


ROWS = {row["id"]: row for row in _rows()}
ROWS2 = {row["id"]: row for row in _rows(HELDOUT2)}
ROWS3 = {row["id"]: row for row in _rows(HELDOUT3)}


@pytest.fixture(scope="module")
def events() -> dict[str, EventMessage]:
    gazetteer = load_gazetteer()
    return {rid: classify_post(_post(row), now=NOW, gazetteer=gazetteer) for rid, row in ROWS.items()}


@pytest.fixture(scope="module")
def events2() -> dict[str, EventMessage]:
    gazetteer = load_gazetteer()
    return {rid: classify_post(_post(row), now=NOW, gazetteer=gazetteer) for rid, row in ROWS2.items()}


@pytest.fixture(scope="module")
def events3() -> dict[str, EventMessage]:
    gazetteer = load_gazetteer()
    return {rid: classify_post(_post(row), now=NOW, gazetteer=gazetteer) for rid, row in ROWS3.items()}


def _actors(codes: list[str] | None) -> set[str]:
    return {c for code in codes or [] for c in (code, PARENT.get(code)) if c}


def _km(a: dict, b: dict) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def _f1(c: Counter) -> float:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    return 2 * p * r / (p + r) if p + r else 0.0


def score(rows: list[dict], events: dict[str, EventMessage]) -> dict[str, float]:
    """The headline figures of shared/eval/score.py, computed the same way."""
    counts = {"actors": Counter(), "tactics": Counter()}
    ev = placed = placed25 = perp_n = perp_ok = killed_n = killed_ok = 0
    for row in rows:
        e, got = row["expect"], events[row["id"]]
        for key, want, have in (
            ("actors", _actors(e["actors"]), _actors(got.actor_codes)),
            ("tactics", set(e["tactics"]), set(got.tactic_codes)),
        ):
            counts[key].update(tp=len(want & have), fp=len(have - want), fn=len(want - have))
        ev += got.is_event == e["event"]
        if e["place"] and e["event"]:
            placed += 1
            placed25 += bool(got.place) and _km(e["place"], got.place.model_dump()) <= 25
        if e["perpetrator"]:
            perp_n += 1
            perp_ok += bool(got.perpetrator) and _actors([got.perpetrator]) >= _actors([e["perpetrator"]])
        if e["killed"] is not None:
            killed_n += 1
            killed_ok += got.killed == e["killed"]
    out = {
        "actors": _f1(counts["actors"]),
        "tactics": _f1(counts["tactics"]),
        "event": ev / len(rows),
        "place25": placed25 / placed if placed else 1.0,
        "perpetrator": perp_ok / perp_n if perp_n else 1.0,
        "killed": killed_ok / killed_n if killed_n else 1.0,
    }
    out["score"] = 100 * sum(out[k] for k in ("actors", "tactics", "event", "place25", "perpetrator")) / 5
    return out


def test_the_held_out_set_covers_every_language_and_enough_posts() -> None:
    langs = Counter(row["lang"] for row in ROWS.values())
    assert len(ROWS) >= 80
    assert min(langs[lang] for lang in ("en", "fr", "ar", "ha")) >= 8, langs


def test_the_second_held_out_set_follows_the_dev_language_mix() -> None:
    langs = Counter(row["lang"] for row in ROWS2.values())
    assert len(ROWS2) >= 60 and not set(ROWS2) & set(ROWS)
    assert langs["en"] > langs["fr"] > langs["ha"] > 0 and langs["ar"] > 0, langs


def _assert_dev_thresholds(s: dict[str, float]) -> None:
    assert s["score"] >= 90, s
    assert s["actors"] >= 0.95, s
    assert s["tactics"] >= 0.90, s
    assert s["event"] >= 0.95, s
    assert s["place25"] >= 0.85, s
    assert s["perpetrator"] >= 0.90, s
    assert s["killed"] >= 0.90, s


def test_the_second_held_out_set_scores_like_the_dev_thresholds(events2: dict[str, EventMessage]) -> None:
    _assert_dev_thresholds(score(list(ROWS2.values()), events2))


def test_the_third_held_out_set_follows_the_dev_language_mix() -> None:
    langs = Counter(row["lang"] for row in ROWS3.values())
    assert len(ROWS3) >= 50 and not set(ROWS3) & (set(ROWS) | set(ROWS2))
    assert langs["en"] > langs["fr"] > langs["ha"] > 0 and langs["ar"] > 0, langs


def test_the_third_held_out_set_scores_like_the_dev_thresholds(events3: dict[str, EventMessage]) -> None:
    _assert_dev_thresholds(score(list(ROWS3.values()), events3))


class _Predicted:
    """A `watchfloor classify` prediction line, read like an EventMessage by score()."""

    def __init__(self, line: str) -> None:
        self.p = json.loads(line)
        self.actor_codes, self.tactic_codes = self.p["actors"], self.p["tactics"]
        self.is_event, self.perpetrator, self.killed = self.p["event"], self.p["perpetrator"], self.p["killed"]
        self.place = _Place(self.p["place"]) if self.p["place"] else None


class _Place:
    def __init__(self, place: dict) -> None:
        self._place = place

    def model_dump(self) -> dict:
        return self._place


@pytest.mark.parametrize("which", sorted(BLIND))
def test_the_blind_held_out_sets_score_88_and_no_language_below_80(which: str) -> None:
    """Written by sessions that had not read the classifier (first runs 77.1, 85.6, 83.5, 81.9, 82.2, 83.6, 95.0,
    90.4 and 87.2, the last three in dev's own mix), as feed days: ordinary reports, denials, anniversaries,
    roundups, Arabic claims, Hausa, datelines. Scored on what `watchfloor classify` writes (a roundup's line carries
    every attack's actors and tactics)."""
    rows = _rows(BLIND[which])
    earlier = set(ROWS) | set(ROWS2) | set(ROWS3) | {r["id"] for n, f in BLIND.items() if n != which for r in _rows(f)}
    assert len(rows) >= 60 and not {r["id"] for r in rows} & earlier
    gazetteer = load_gazetteer()
    got = {row["id"]: _Predicted(_predict(row, gazetteer, NOW)[0]) for row in rows}
    overall = score(rows, got)
    assert overall["score"] >= 88 and overall["event"] >= 0.95, overall
    for lang in ("en", "fr", "ar", "ha"):
        by_lang = score([r for r in rows if r["lang"] == lang], got)
        assert by_lang["score"] >= 80, (lang, by_lang)


def test_the_held_out_set_scores_like_the_dev_thresholds(events: dict[str, EventMessage]) -> None:
    _assert_dev_thresholds(score(list(ROWS.values()), events))


@pytest.mark.parametrize("lang", ["ar", "ha"])
def test_arabic_and_hausa_get_actors_tactics_and_places(lang: str, events: dict[str, EventMessage]) -> None:
    s = score([row for row in ROWS.values() if row["lang"] == lang], events)
    assert s["actors"] >= 0.9 and s["tactics"] >= 0.85 and s["place25"] >= 0.8, s


CASES = [
    # (post id, what the case is, check)
    ("h026", "a denying actor is left out", lambda e: "NIGERIA_MIL" not in e.actor_codes and e.perpetrator is None),
    ("h070", "Arabic claim, verb before the claimant", lambda e: e.perpetrator == "ISSP"),
    ("h005", "claim names the perpetrator", lambda e: e.perpetrator == "ISWAP"),
    ("h001", "attribution names the perpetrator", lambda e: e.perpetrator == "JAS"),
    ("h023", "an escorting army is not the perpetrator", lambda e: e.perpetrator == "JNIM"),
    ("h006", "a state air strike has a state perpetrator", lambda e: e.perpetrator == "FRANCE_MIL"),
    ("h044", "announced in Niamey, happened at Chinégodar", lambda e: e.place is not None and e.place.name != "Niamey"),
    ("h021", "announced in Niamey, place unknown: abstain", lambda e: e.place is None or e.place.name != "Niamey"),
    ("h022", "37 km north-east of Banibangou is a point, precision 2", lambda e: e.place and e.place.precision == 2),
    ("h051", "a dozen km south-east of Mopti is Sévaré", lambda e: e.place and e.place.precision == 2),
    ("h043", "a province only: abstain", lambda e: e.place is None),
    ("h024", "Niger the river in flood is no event", lambda e: not e.is_event),
    ("h034", "analysis is no event", lambda e: not e.is_event and e.place is None),
    ("h039", "diplomacy is no event", lambda e: not e.is_event),
    ("h037", "sport is no event", lambda e: not e.is_event),
    ("h082", "sport in Hausa is no event", lambda e: not e.is_event),
    ("h063", "an anniversary is no event", lambda e: not e.is_event),
    ("h083", "an anniversary in Hausa is no event", lambda e: not e.is_event),
    ("h036", "a court case is no event", lambda e: not e.is_event),
    ("h038", "a withdrawal is no event", lambda e: not e.is_event),
    ("h044", "a toll in French words", lambda e: e.killed == 89),
    ("h013", "a toll in English words", lambda e: e.killed == 75),
    ("h017", "killed, not wounded", lambda e: e.killed == 10),
    ("h059", "killed, not wounded (French)", lambda e: e.killed == 7),
    ("h002", "the revised toll, not the first one", lambda e: e.killed == 89),
    ("h042", "le bilan s'alourdit", lambda e: e.killed == 53),
    ("h048", "the new toll, not the previous one", lambda e: e.killed == 24),
    ("h016", "two tolls that disagree: none", lambda e: e.killed is None),
    ("h012", "a sub-unit and its parent", lambda e: {"ANSAR_DINE", "JNIM"} <= set(e.actor_codes)),
    ("h053", "a sub-unit carries out an execution", lambda e: e.tactic_codes == ["execution"]),
    ("h030", "Katiba Macina besieges: blockade", lambda e: "blockade" in e.tactic_codes),
    (
        "h003",
        "a suicide car bomb is vbied and suicide_attack",
        lambda e: {"vbied", "suicide_attack"} <= set(e.tactic_codes),
    ),
    ("h067", "Arabic clitics: li-l-jaysh is the army", lambda e: "NIGER_FDS" in e.actor_codes),
    ("h069", "Arabic Bama is Bama, Borno (not Pama, Burkina)", lambda e: e.place and e.place.country == "NG"),
    ("h014", "a hostage siege is not a blockade", lambda e: "blockade" not in e.tactic_codes),
]


@pytest.mark.parametrize(("rid", "case", "check"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_hard_case(rid: str, case: str, check, events: dict[str, EventMessage]) -> None:
    event = events[rid]
    assert check(event), (case, event.model_dump(include={"is_event", "actors", "perpetrator", "tactics", "killed"}))


def test_every_label_carries_its_evidence(events: dict[str, EventMessage]) -> None:
    for rid, event in events.items():
        row = ROWS[rid]
        for label in [*event.actors, *event.tactics, *([event.place] if event.place else [])]:
            assert 0 < label.confidence <= 1
            for span in label.evidence:
                body = row["title"] if span.field == "title" else row["text"]
                assert body[span.start : span.end] == span.text, (rid, span)
        if event.place:
            assert event.place.reason and event.place.evidence, rid
        assert event.classifier and event.gazetteer
