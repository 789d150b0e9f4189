"""New filters and areas: polygon, region, radius per tactic, place precision, languages, sources; explain."""

import pytest

from services.alert.evaluate import evaluate, explain
from services.alert.rules import RuleError, load_rule_text
from tests.alert.events import T0, TILLABERI, event

BASE = "id: r\nname: r\nmatch:\n  any:\n    - actors: [ISSP]\nseverity: high\n"
KOLLO = ("Kollo", 13.3043, 2.339, "NE")   # 33 km south-east of Niamey, region Tillabéri


def rule(extra: str):
    return load_rule_text(BASE + extra, "r.yaml")


def located(name: str, place: tuple = KOLLO, admin1: str | None = "Tillabéri", precision: int = 1, **kwargs):
    from shared.messages import PlaceLabel

    e = event(name, place=place, **kwargs)
    label = PlaceLabel(name=place[0], lat=place[1], lon=place[2], country=place[3], admin1=admin1,
                       precision=precision)  # type: ignore[arg-type]  # test data
    return e.model_copy(update={"place": label})


def test_polygon_contains_kollo_not_tillaberi() -> None:
    spec = rule("area:\n  polygon: [[13.6, 1.9], [13.6, 2.6], [13.0, 2.6], [13.0, 1.9]]\n")
    match = evaluate(spec, located("k"), T0)
    assert match is not None and "Kollo (13.304, 2.339) is inside the rule's polygon" in match.reasons
    assert evaluate(spec, located("t", place=TILLABERI), T0) is None


def test_region_matches_on_the_gazetteers_admin1() -> None:
    spec = rule("area:\n  region: Tillaberi\n  country: NE\n")
    assert spec.area is not None and spec.area.region_key == ("NE", "Tillabéri")
    match = evaluate(spec, located("k"), T0)
    assert match is not None and "Kollo is in the region Tillabéri (NE)" in match.reasons
    niamey = located("n", place=("Niamey", 13.51, 2.11, "NE"), admin1="Niamey")
    checks = {c.condition: c for c in explain(spec, niamey, T0)}
    assert not checks["area"].passed and checks["area"].reason == "Niamey is in Niamey (NE), not in Tillabéri (NE)"


def test_radius_per_tactic_widens_the_circle_for_car_bombs() -> None:
    spec = rule("area:\n  near: Niamey\n  radius_km: 50\n  radius_km_by_tactic: {vbied: 150}\n")
    tillaberi_vbied = located("t", place=TILLABERI, tactics=("vbied",))
    tillaberi_ambush = located("a", place=TILLABERI, tactics=("ambush",))
    match = evaluate(spec, tillaberi_vbied, T0)
    assert match is not None and any("≤ 150 km (radius for vbied)" in r for r in match.reasons), match.reasons
    assert evaluate(spec, tillaberi_ambush, T0) is None


def test_precision_language_and_source_filters_with_reasons() -> None:
    spec = load_rule_text(BASE.replace("severity", "  min_place_precision: 2\n  languages: [fr]\n"
                                       "  sources: [src-fr]\nseverity"), "r.yaml")
    good = located("g", precision=2, source="src-fr", lang="fr")
    assert evaluate(spec, good, T0) is not None
    checks = {c.condition: c for c in explain(spec, located("b", precision=3, source="src-en", lang="en"), T0)}
    assert [k for k, c in checks.items() if not c.passed] == ["sources", "languages", "min_place_precision"]
    assert checks["languages"].reason == "language en is not one of fr"
    assert checks["min_place_precision"].reason == \
        "place precision 3 (region only), less precise than 2 (near or offset)"


def test_explain_says_why_a_rule_did_not_fire() -> None:
    spec = rule("area:\n  near: Niamey\n  radius_km: 50\n")
    checks = explain(spec, event("x", actors=(("JNIM", "perpetrator"),), place=TILLABERI), T0)
    failed = {c.condition: c.reason for c in checks if not c.passed}
    assert failed["actors"] == "none of: actors ISSP"
    assert failed["area"].startswith("Tillabéri: 10") and failed["area"].endswith("km from Niamey > 50 km")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("area:\n  polygon: [[13, 2], [14, 2]]\n", "r.yaml:8: area.polygon: a polygon needs at least 3"),
        ("area:\n  region: Atlantis\n  country: NE\n", "r.yaml:8: area.region: unknown region 'Atlantis' in NE"),
        ("area:\n  near: Niamey\n  radius_km: 5\n  radius_km_by_tactic: {car: 9}\n",
         "r.yaml:10: area.radius_km_by_tactic: unknown tactic code 'car'"),
        ("area:\n  near: Niamey\n  radius_km: 5\n  region: Dosso\n", "r.yaml:7: area: give one shape"),
        ("condition: {at_least: 3}\n", "r.yaml:7: condition: `at_least` needs `within`"),
        ("condition: {first_activity: true, lookback: 30d}\n", "r.yaml:1: `first_activity` needs an `area`"),
        ("inhibits: [r]\n", "r.yaml:1: a rule cannot inhibit itself"),
    ],
    ids=["polygon of 2 corners", "unknown region", "unknown tactic radius", "two shapes", "at_least alone",
         "first activity without area", "inhibits itself"],
)
def test_new_fields_name_file_line_field(extra: str, expected: str) -> None:
    with pytest.raises(RuleError) as caught:
        load_rule_text(BASE + extra, "r.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_every_example_rule_loads() -> None:
    from pathlib import Path

    from services.alert.rules import load_rule_dir

    loaded = {spec.id: spec for spec, _, _ in load_rule_dir(Path(__file__).parents[2] / "rules")}
    assert {"issp-niamey-50km", "vbied-niamey-airport", "jnim-tillaberi", "issp-liptako-surge",
            "lakurawa-first-niger"} <= set(loaded)
    assert loaded["vbied-niamey-airport"].inhibits == ["issp-niamey-50km"]
