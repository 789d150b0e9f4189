"""Rule evaluation: actors (with sub-units), tactics, the circle around a place, the country, non-events."""

import pytest

from services.alert.evaluate import evaluate
from services.alert.rules import RuleSpec, load_rule_text
from tests.alert.events import GAO, T0, TILLABERI, event
from tests.alert.test_rules import FIRST_RULE

NOW = T0


@pytest.fixture(scope="module")
def niamey_rule() -> RuleSpec:
    return load_rule_text(FIRST_RULE, "issp-niamey-50km.yaml")


def test_claimed_issp_attack_in_niamey_matches_with_reasons(niamey_rule: RuleSpec) -> None:
    match = evaluate(niamey_rule, event("e1", tactics=("armed_assault",)), NOW)
    assert match is not None
    assert "actor ISSP (perpetrator)" in match.reasons
    assert any(r.endswith("km from Niamey ≤ 50 km") for r in match.reasons)
    assert match.distance_km is not None and match.distance_km < 1


def test_car_bomb_by_anyone_matches_on_tactic(niamey_rule: RuleSpec) -> None:
    match = evaluate(niamey_rule, event("e1", actors=(), tactics=("vbied",), place=("Kollo", 13.3, 2.33, "NE")),
                     NOW)
    assert match is not None
    assert "tactic vbied" in match.reasons
    assert any(r.startswith("Kollo: 33.") for r in match.reasons), match.reasons


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"place": TILLABERI}, "110 km away is outside the 50 km circle"),
        ({"place": None}, "no place: an area rule cannot match"),
        ({"is_event": False}, "not an event"),
        ({"actors": (("JNIM", "perpetrator"),), "tactics": ("ambush",)}, "other actor, other tactic"),
        ({"actors": (("ISSP", "denied"),), "tactics": ("ambush",)}, "ISSP denied it"),
        ({"actors": (("ISSP", "mentioned"),), "tactics": ("ambush",)}, "ISSP only mentioned"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_no_match(niamey_rule: RuleSpec, kwargs: dict, why: str) -> None:
    assert evaluate(niamey_rule, event("e1", **kwargs), NOW) is None, why


def test_rule_on_jnim_matches_its_sub_units() -> None:
    rule = load_rule_text(
        "id: jnim-mali\nname: JNIM in Mali\nmatch:\n  any:\n    - actors: [JNIM]\narea:\n  country: ML\n"
        "severity: medium\n", "jnim.yaml")
    macina = event("e1", actors=(("KATIBA_MACINA", "perpetrator"),), tactics=("ambush",), place=GAO)
    match = evaluate(rule, macina, NOW)
    assert match is not None
    assert "actor KATIBA_MACINA (perpetrator, a unit of JNIM)" in match.reasons
    assert "Gao is in ML" in match.reasons
    assert evaluate(rule, event("e2", actors=(("KATIBA_MACINA", "perpetrator"),)), NOW) is None  # Niamey: NE


def test_all_filters_and_min_confidence() -> None:
    rule = load_rule_text(
        "id: issp-suicide-vbied\nname: ISSP suicide car bomb\nmatch:\n  all:\n    - actors: [ISSP]\n"
        "    - tactics: [vbied]\n    - tactics: [suicide_attack]\n  min_confidence: 0.7\nseverity: critical\n",
        "x.yaml")
    both = event("e1", tactics=("vbied", "suicide_attack"))
    assert evaluate(rule, both, NOW) is not None
    assert evaluate(rule, event("e2", tactics=("vbied",)), NOW) is None
    assert evaluate(rule, event("e3", tactics=("vbied", "suicide_attack"), confidence=0.5), NOW) is None
    assert evaluate(rule, event("e4", tactics=("vbied", "suicide_attack"), place=None), NOW) is not None


def test_a_filter_with_actors_and_tactics_needs_both() -> None:
    rule = load_rule_text(
        "id: issp-ied\nname: ISSP IED\nmatch:\n  any:\n    - actors: [ISSP]\n      tactics: [ied]\n"
        "severity: low\n", "x.yaml")
    assert evaluate(rule, event("e1", tactics=("ied",)), NOW) is not None
    assert evaluate(rule, event("e2", tactics=("vbied",)), NOW) is None
    assert evaluate(rule, event("e3", actors=(("JNIM", "perpetrator"),), tactics=("ied",)), NOW) is None
