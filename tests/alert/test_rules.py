"""Rule files: the first rule ops wrote loads as it is; mistakes name the file, the line and the field."""

from datetime import timedelta
from pathlib import Path

import pytest

from services.alert.rules import RuleError, load_rule_dir, load_rule_file, load_rule_text

FIRST_RULE = """\
id: issp-niamey-50km
name: ISSP activity or any car bomb within 50 km of Niamey
match:
  any:
    - actors: [ISSP]
    - tactics: [vbied]
area:
  near: Niamey
  radius_km: 50
severity: high
"""


def test_first_rule_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "issp-niamey-50km.yaml"
    path.write_text(FIRST_RULE)
    spec, body = load_rule_file(path)
    assert body == FIRST_RULE
    assert spec.id == "issp-niamey-50km" and spec.severity == "high" and spec.enabled
    assert [f.actors for f in spec.match.any_] == [["ISSP"], []]
    assert spec.area is not None and spec.area.center is not None
    lat, lon, name = spec.area.center
    assert name == "Niamey" and abs(lat - 13.51) < 0.05 and abs(lon - 2.11) < 0.05
    assert spec.window_delta == timedelta(hours=6)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("radius_km: 50", "radius_km: 0"), "rules/bad.yaml:9: area.radius_km: must be greater than 0"),
        (("radius_km: 50", "radius_km: -5"), "rules/bad.yaml:9: area.radius_km: must be greater than 0"),
        (("[ISSP]", "[ISPS]"), "rules/bad.yaml:5: match.any[0].actors: unknown actor code 'ISPS'"),
        (("[vbied]", "[car_bomb]"), "rules/bad.yaml:6: match.any[1].tactics: unknown tactic code 'car_bomb'"),
        (("near: Niamey", "near: Atlantis"), "rules/bad.yaml:8: area.near: unknown place 'Atlantis'"),
        (("severity: high", "severity: urgent"), "rules/bad.yaml:10: severity: must be 'low', 'medium'"),
        (("  near: Niamey", "  near: Niamey\n  colour: red"), "rules/bad.yaml:9: area.colour: unknown field"),
        (("id: issp-niamey-50km\n", ""), "rules/bad.yaml:1: id: required field missing"),
        (("severity: high", "severity: high\nwindow: soon"), "rules/bad.yaml:11: window: a duration like"),
        (("    - tactics: [vbied]", "    - tactics: [vbied"), "rules/bad.yaml:"),
    ],
    ids=["radius 0", "negative radius", "unknown actor", "unknown tactic", "unknown place", "bad severity",
         "unknown field", "missing id", "bad window", "broken YAML"],
)
def test_bad_rule_names_file_line_field(change: tuple[str, str], expected: str) -> None:
    text = FIRST_RULE.replace(*change)
    assert text != FIRST_RULE
    with pytest.raises(RuleError) as caught:
        load_rule_text(text, "rules/bad.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_all_errors_are_reported_at_once() -> None:
    text = FIRST_RULE.replace("[ISSP]", "[ISPS]").replace("radius_km: 50", "radius_km: 0")
    with pytest.raises(RuleError) as caught:
        load_rule_text(text, "r.yaml")
    assert "r.yaml:5: match.any[0].actors" in str(caught.value)
    assert "r.yaml:9: area.radius_km" in str(caught.value)


def test_the_documented_example_loads() -> None:
    """The format in the module docstring (it goes into the README) is a rule that loads."""
    import textwrap

    from services.alert import rules

    example = textwrap.dedent((rules.__doc__ or "").split("One rule per file::")[1].split("Actor codes")[0])
    spec = load_rule_text(example, "README example")
    assert (spec.area and spec.area.country, spec.match.min_confidence, spec.notify) == ("NE", 0.6, [1, 3])


def test_country_area_window_and_routing() -> None:
    spec = load_rule_text(
        "id: jnim-mali\nname: JNIM in Mali\nmatch:\n  all:\n    - actors: [JNIM]\n      tactics: [ambush]\n"
        "  min_confidence: 0.5\narea:\n  country: ML\nwindow: 90m\nseverity: medium\nnotify: [2]\n",
        "jnim.yaml",
    )
    assert spec.area is not None and spec.area.center is None and spec.area.country == "ML"
    assert spec.window_delta == timedelta(minutes=90)
    assert spec.notify == [2]


def test_circle_needs_a_radius() -> None:
    with pytest.raises(RuleError, match=r"x.yaml:7: area: a circle needs `radius_km`"):
        load_rule_text(FIRST_RULE.replace("  radius_km: 50\n", ""), "x.yaml")


def test_rule_directory_reports_every_broken_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FIRST_RULE)
    (tmp_path / "b.yaml").write_text(FIRST_RULE.replace("radius_km: 50", "radius_km: 0"))
    (tmp_path / "c.yml").write_text(FIRST_RULE.replace("[vbied]", "[car_bomb]"))
    (tmp_path / "d.yaml").write_text(FIRST_RULE)                       # same id as a.yaml
    with pytest.raises(RuleError) as caught:
        load_rule_dir(tmp_path)
    message = str(caught.value)
    assert f"{tmp_path / 'b.yaml'}:9: area.radius_km" in message
    assert f"{tmp_path / 'c.yml'}:6: match.any[1].tactics" in message
    assert f"{tmp_path / 'd.yaml'}:1: id: 'issp-niamey-50km' is also the id of" in message
    for name in ("b.yaml", "c.yml", "d.yaml"):
        (tmp_path / name).unlink()
    assert [spec.id for spec, _, _ in load_rule_dir(tmp_path)] == ["issp-niamey-50km"]
