"""Alert rules: the YAML format ops write, validated at load time with errors naming file, line and field.

One rule per file::

    id: issp-niamey-50km                 # required; lowercase letters, digits, - _ .
    name: ISSP activity or any car bomb within 50 km of Niamey
    description: for the Niamey desk     # optional, free text
    match:                               # required
      any:                               # at least one of these filters matches ...
        - actors: [ISSP]                 #   a filter = actors and/or tactics (both given: both must match)
        - tactics: [vbied]
      all: []                            # ... and every one of these matches (any/all may be combined)
      min_confidence: 0.6                # optional, 0..1: the event's overall confidence
      min_place_precision: 2             # optional: 1 exact place only, 2 exact or "near/40 km N of", 3 any
      languages: [en, fr]                # optional: the post's language
      sources: [sahel-wire, acled-fr]    # optional: source ids
    area:                                # optional; without it the rule matches anywhere
      near: Niamey                       # a place from the gazetteer, or `lat:` and `lon:` in degrees
      radius_km: 50                      # required with near/lat/lon; > 0
      radius_km_by_tactic: {vbied: 100}  # optional: a wider (or narrower) circle for some tactics
      country: NE                        # alone: the whole country (ISO alpha-2); with `near`/`region`: picks
                                         #   the right Niamey/Gao when a name exists in several countries
    window: 6h                           # optional, default 6h: how long later reports update the same alert
    severity: high                       # low | medium | high | critical
    enabled: true                        # optional, default true
    notify: [1, 3]                       # optional: only these subscription ids (default: every subscription)

Actor codes and tactic codes are those of the taxonomy; a rule on JNIM also matches its sub-units
(ANSAR_DINE, KATIBA_MACINA, ANSAROUL_ISLAM). An actor counts when the report makes it the perpetrator,
a suspect, a party or the target, not when it is only mentioned or denies involvement. Events that are not
events (commentary, analysis) never match; an event without a place never matches a rule with an area.
Unknown fields, codes or places are errors at load time, not silent no-ops:
``rules/bad.yaml:9: area.radius_km: must be greater than 0``.

Other areas: ``polygon: [[13.9, 1.2], [13.9, 2.6], [13.0, 2.6], [13.0, 1.2]]`` (``[lat, lon]`` corners, at
least 3), or ``region: Tillabéri`` (an admin1 region of the gazetteer; an event is in it when the gazetteer
puts its place in that region: there are no region outlines to test a point against). Conditions over time:
``condition: {at_least: 3, within: 24h}`` (at least 3 incidents, not reports, matching the rule within 24 h:
five reports of one attack count once) or ``condition: {first_activity: true, lookback: 30d}`` (no activity
of the event's actors in the area in the 30 days before). ``inhibits: [rule-id]``: when this rule and the
other both alert on one incident, the other's alert is muted ("inhibited by rule …").

One alert per rule and incident (reports of one attack clustered across sources): it fires once, and is
updated (a new version) only when more independent sources report it, its corroboration or severity rises, or
the toll rises, within `window`. The full reference is docs/alerting.md.
"""

import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from shared.errors import ReasonError
from shared.gazetteer import load_gazetteer
from shared.taxonomy import ACTOR_PARENTS, TACTICS

logger = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def with_subunits(codes: list[str]) -> frozenset[str]:
    """The codes plus every sub-unit of them: a rule on JNIM is also a rule on KATIBA_MACINA."""
    wanted = set(codes)
    wanted |= {code for code, parent in ACTOR_PARENTS.items() if parent in wanted}
    return frozenset(wanted)


class RuleError(ReasonError):
    """A rule file that cannot be loaded. `reason` is shown to ops as-is, prefixed by `file:line: field:`."""

    def __init__(self, origin: str, line: int | None, field: str | None, reason: str,
                 more: list[str] | None = None) -> None:
        self.origin, self.line, self.field, self.reason = origin, line, field, reason
        self.more = more or []
        head = origin if line is None else f"{origin}:{line}"
        first = f"{head}: {field}: {reason}" if field else f"{head}: {reason}"
        Exception.__init__(self, "\n".join([first, *self.more]))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Filter(_Strict):
    """Actors and tactics, ANDed: the event names one of the actors AND one of the tactics."""

    actors: list[str] = []
    tactics: list[str] = []

    @field_validator("actors")
    @classmethod
    def _known_actors(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in ACTOR_PARENTS]
        if unknown:
            raise ValueError(f"unknown actor code {unknown[0]!r} (known: {', '.join(ACTOR_PARENTS)})")
        return value

    @field_validator("tactics")
    @classmethod
    def _known_tactics(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in TACTICS]
        if unknown:
            raise ValueError(f"unknown tactic code {unknown[0]!r} (known: {', '.join(sorted(TACTICS))})")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "Filter":
        if not self.actors and not self.tactics:
            raise ValueError("a filter needs actors, tactics or both")
        return self


class MatchSpec(_Strict):
    any_: list[Filter] = Field([], alias="any")
    all_: list[Filter] = Field([], alias="all")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    min_place_precision: Literal[1, 2, 3] | None = None
    languages: list[str] | None = None
    sources: list[str] | None = None

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [code for code in value if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad or not value:
            raise ValueError(f"language codes like en, fr, ar (got {bad[0] if bad else 'an empty list'!r})")
        return value

    @field_validator("sources")
    @classmethod
    def _source_ids(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(not s.strip() for s in value)):
            raise ValueError("give at least one source id")
        return value

    @model_validator(mode="after")
    def _something(self) -> "MatchSpec":
        if not self.any_ and not self.all_:
            raise ValueError("give `any:` or `all:` with at least one filter")
        return self


class Area(_Strict):
    near: str | None = Field(None, min_length=1)
    lat: float | None = Field(None, ge=-90.0, le=90.0)
    lon: float | None = Field(None, ge=-180.0, le=180.0)
    radius_km: float | None = Field(None, gt=0, le=5000)
    radius_km_by_tactic: dict[str, float] | None = None
    polygon: list[tuple[float, float]] | None = None
    region: str | None = Field(None, min_length=1)
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")
    # Filled at load time from the gazetteer (for `near`) or from lat/lon: the circle's centre.
    _center: tuple[float, float, str] | None = PrivateAttr(None)
    # Filled at load time for `region`: (country, region name as the gazetteer spells it).
    _region: tuple[str, str] | None = PrivateAttr(None)

    @field_validator("radius_km_by_tactic")
    @classmethod
    def _tactic_radii(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        for code, km in value.items():
            if code not in TACTICS:
                raise ValueError(f"unknown tactic code {code!r} (known: {', '.join(sorted(TACTICS))})")
            if not 0 < km <= 5000:
                raise ValueError(f"{code}: a radius must be greater than 0 and at most 5000 km")
        return value

    @field_validator("polygon")
    @classmethod
    def _corners(cls, value: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if value is None:
            return None
        if len(value) < 3:
            raise ValueError("a polygon needs at least 3 [lat, lon] corners")
        for lat, lon in value:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"corner [{lat}, {lon}] is not [lat, lon] in degrees (lat first)")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> "Area":
        point = self.lat is not None or self.lon is not None
        circle = bool(self.near) or point
        shapes = [name for name, given in (("a circle", circle), ("`polygon`", self.polygon is not None),
                                           ("`region`", self.region is not None)) if given]
        if len(shapes) > 1:
            raise ValueError(f"give one shape, not {' and '.join(shapes)}")
        if self.near and point:
            raise ValueError("give either `near` or `lat`/`lon`, not both")
        if point and (self.lat is None or self.lon is None):
            raise ValueError("give both `lat` and `lon`")
        if circle and self.radius_km is None:
            raise ValueError("a circle needs `radius_km`")
        if not circle and self.radius_km is not None:
            raise ValueError("`radius_km` needs a centre: `near` or `lat`/`lon`")
        if not circle and self.radius_km_by_tactic:
            raise ValueError("`radius_km_by_tactic` needs a circle: `near` or `lat`/`lon` with `radius_km`")
        if self.polygon is not None and self.country:
            raise ValueError("a polygon needs no `country`: remove one of them")
        if not (circle or self.polygon is not None or self.region or self.country):
            raise ValueError("give `near` or `lat`/`lon` with `radius_km`, `polygon`, `region`, or `country`")
        return self

    @property
    def center(self) -> tuple[float, float, str] | None:
        """(lat, lon, label) of the circle, None for other shapes."""
        return self.__pydantic_private__["_center"]  # type: ignore[index]  # direct: the hot path of evaluation

    @property
    def region_key(self) -> tuple[str, str] | None:
        """(country, region name) of a `region` area, as resolved in the gazetteer."""
        return self.__pydantic_private__["_region"]  # type: ignore[index]

    def radius_for(self, tactics: list[str]) -> float | None:
        """The circle's radius for an event with these tactics: the widest that applies."""
        if self.radius_km is None:
            return None
        by_tactic = self.radius_km_by_tactic or {}
        return max([self.radius_km, *(by_tactic[t] for t in tactics if t in by_tactic)])

    @property
    def max_radius_km(self) -> float | None:
        if self.radius_km is None:
            return None
        return max([self.radius_km, *(self.radius_km_by_tactic or {}).values()])


class Condition(_Strict):
    """A condition over time: `at_least` incidents `within` a window, or the `first_activity` of an actor
    in the area within `lookback`."""

    at_least: int | None = Field(None, ge=2, le=1000)
    within: str | None = None
    first_activity: bool | None = None
    lookback: str | None = None

    @field_validator("within", "lookback", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> str | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _one_kind(self) -> "Condition":
        if self.at_least is not None and self.first_activity:
            raise ValueError("give `at_least` with `within`, or `first_activity` with `lookback`, not both")
        if self.at_least is not None:
            if self.within is None:
                raise ValueError("`at_least` needs `within`, e.g. within: 24h")
            if self.lookback is not None:
                raise ValueError("`lookback` goes with `first_activity`; `at_least` takes `within`")
            return self
        if self.first_activity:
            if self.lookback is None:
                raise ValueError("`first_activity` needs `lookback`, e.g. lookback: 30d")
            if self.within is not None:
                raise ValueError("`within` goes with `at_least`; `first_activity` takes `lookback`")
            return self
        raise ValueError("give `at_least: N` with `within: 24h`, or `first_activity: true` with `lookback: 30d`")

    @property
    def span(self) -> timedelta:
        """The window looked back over."""
        return duration_delta(self.within or self.lookback or "0s")

    def describe(self) -> str:
        if self.at_least is not None:
            return f"at least {self.at_least} incidents within {self.within}"
        return f"first activity of the actor in the area within {self.lookback}"


def _duration(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value}s"
    if not isinstance(value, str) or not _DURATION.match(value):
        raise ValueError("a duration like 30m, 6h or 2d")
    number, unit = _DURATION.match(value).groups()  # type: ignore[union-attr]  # matched just above
    if float(number) <= 0:
        raise ValueError("must be longer than 0")
    return f"{number}{unit}"


def parse_duration(value: Any) -> timedelta:
    """`"6h"` (or seconds as a number) -> timedelta; raises ValueError saying what a duration looks like."""
    return duration_delta(_duration(value))


def duration_delta(value: str) -> timedelta:
    """`6h` -> 6 hours (the value was validated by `_duration`)."""
    number, unit = _DURATION.match(value).groups()  # type: ignore[union-attr]  # validated
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])


class RuleSpec(_Strict):
    """A validated rule (see the module docstring for the format)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    name: str = Field(min_length=1, max_length=300)
    description: str | None = None
    match: MatchSpec
    area: Area | None = None
    condition: Condition | None = None
    window: str = "6h"
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    enabled: bool = True
    notify: list[int] | None = None
    inhibits: list[str] | None = None
    # The filters as sets, built on first evaluation (services.alert.evaluate.compiled).
    _compiled: Any = PrivateAttr(None)

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        return _duration(value)

    @field_validator("inhibits")
    @classmethod
    def _rule_ids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [v for v in value if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,99}", v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a rule id")
        return value

    @model_validator(mode="after")
    def _not_itself(self) -> "RuleSpec":
        if self.inhibits and self.id in self.inhibits:
            raise ValueError("a rule cannot inhibit itself")
        if self.condition and self.condition.first_activity and self.area is None:
            raise ValueError("`first_activity` needs an `area`: first activity where?")
        return self

    @property
    def window_delta(self) -> timedelta:
        return duration_delta(self.window)

    def to_stored(self) -> dict[str, Any]:
        """The JSON kept in `rules.spec` (what ops wrote, normalised; places are resolved again on load)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- loading ----------------------------------------------------------------------------------------


def _pretty(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    if msg == "Extra inputs are not permitted":
        return "unknown field"
    if msg == "Field required":
        return "required field missing"
    return re.sub(r"^Input should be ", "must be ", msg)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (pydantic's error location), or of its nearest parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    # An unknown key is best shown on its own line; a bad value on the value's line.
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        if isinstance(node, yaml.ScalarNode) or isinstance(part, int):
            line = node.start_mark.line + 1
    return line


def _field(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(str(part))
    return ".".join(parts)


def _resolve_area(spec: RuleSpec) -> None:
    """Turns `near` into a centre and `region` into a gazetteer region; raises ValueError naming the place."""
    area = spec.area
    if area is None:
        return
    if area.near:
        place = load_gazetteer().best(area.near, area.country)
        if place is None:
            where = f" in {area.country.upper()}" if area.country else ""
            raise ValueError(f"unknown place {area.near!r}{where} (not in the gazetteer)")
        area._center = (place.lat, place.lon, place.name)
    elif area.lat is not None and area.lon is not None:
        area._center = (area.lat, area.lon, f"{area.lat:.3f},{area.lon:.3f}")
    elif area.region:
        country = area.country.upper() if area.country else None
        regions = [p for p in load_gazetteer().find(area.region, country) if p.kind in ("region", "province")]
        if not regions:
            where = f" in {country}" if country else ""
            known = ", ".join(sorted({p.name for p in load_gazetteer().regions(country)})) if country else ""
            raise ValueError(f"unknown region {area.region!r}{where}" + (f" (known: {known})" if known else ""))
        countries = sorted({p.country for p in regions})
        if len(countries) > 1:
            raise ValueError(f"region {area.region!r} exists in {', '.join(countries)}: add `country:`")
        area._region = (regions[0].country, regions[0].admin1 or regions[0].name)


def parse_rule(data: Any, origin: str = "<rule>", root: yaml.Node | None = None) -> RuleSpec:
    """Validates a rule already parsed from YAML (or from `rules.spec`); raises RuleError."""
    if not isinstance(data, dict):
        raise RuleError(origin, _line_of(root, ()), None, "a rule is a YAML mapping (id:, name:, match: …)")
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as exc:
        errors = [
            (_line_of(root, tuple(err["loc"])), _field(tuple(err["loc"])), _pretty(err["msg"]))
            for err in exc.errors()
        ]
        line, field, reason = errors[0]
        more = [f"{origin}:{ln}: {fd}: {rs}" if ln else f"{origin}: {fd}: {rs}" for ln, fd, rs in errors[1:]]
        raise RuleError(origin, line, field or None, reason, more) from exc
    field = "area.region" if spec.area is not None and spec.area.region else "area.near"
    try:
        _resolve_area(spec)
    except ValueError as exc:
        raise RuleError(origin, _line_of(root, tuple(field.split("."))), field, str(exc)) from exc
    return spec


def stored_rules(rows: Iterable[Any]) -> list[RuleSpec]:
    """Stored rules (`rules` rows: id, spec, origin) validated again; one that no longer loads is skipped and
    logged, not fatal."""
    specs: list[RuleSpec] = []
    for row in rows:
        try:
            specs.append(parse_rule(row.spec, origin=row.origin or f"rule {row.id}"))
        except RuleError as exc:
            logger.error("rule skipped rule=%s reason=%r", row.id, str(exc))
    return specs


def load_rule_text(text: str, origin: str = "<rule>") -> RuleSpec:
    """Parses and validates one rule from YAML text; `origin` (a file name) prefixes every error."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RuleError(origin, line, None, f"not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleError(origin, None, None, f"not valid YAML: {exc}") from exc
    return parse_rule(data, origin, root)


def load_rule_file(path: str | Path) -> tuple[RuleSpec, str]:
    """The rule in `path` and its text as written (kept in `rules.body`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(str(path), None, None, f"cannot read the file: {exc}") from exc
    return load_rule_text(text, str(path)), text


def load_rule_dir(directory: str | Path) -> list[tuple[RuleSpec, str, Path]]:
    """Every `*.yaml`/`*.yml` rule in a directory, sorted by name. All files are checked before anything is
    returned, so one RuleError lists every broken file; two files with one id are an error too."""
    directory = Path(directory)
    loaded: list[tuple[RuleSpec, str, Path]] = []
    problems: list[RuleError] = []
    seen: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            spec, body = load_rule_file(path)
        except RuleError as exc:
            problems.append(exc)
            continue
        if spec.id in seen:
            problems.append(RuleError(str(path), 1, "id", f"{spec.id!r} is also the id of {seen[spec.id]}"))
            continue
        seen[spec.id] = path
        loaded.append((spec, body, path))
    if problems:
        first = problems[0]
        more = [*first.more, *(line for p in problems[1:] for line in str(p).splitlines())]
        raise RuleError(first.origin, first.line, first.field, first.reason, more)
    return loaded
