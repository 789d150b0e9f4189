"""Does one classified event match one rule, and why (pure: no I/O, `now` passed in).

The reasons are shown to the analyst as-is ("actor ISSP (perpetrator)", "12.3 km from Niamey ≤ 50 km"),
so an alert always says why it fired.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from services.alert.rules import Filter, RuleSpec, with_subunits
from shared.messages import EventMessage

MATCHING_ROLES = frozenset({"perpetrator", "suspected", "involved", "target"})
"""An actor "mentioned" in passing or one that "denied" involvement does not make the event theirs."""

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Match:
    rule_id: str
    reasons: list[str]
    distance_km: float | None = None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _filter_reasons(flt: Filter, event: EventMessage) -> list[str] | None:
    """The reasons this filter matches the event, or None. Actors and tactics are ANDed."""
    reasons: list[str] = []
    if flt.actors:
        wanted = with_subunits(flt.actors)
        hits = [a for a in event.actors if a.code in wanted and a.role in MATCHING_ROLES]
        if not hits and event.perpetrator in wanted:
            reasons.append(f"actor {event.perpetrator} (perpetrator)")
        elif not hits:
            return None
        for label in hits:
            via = "" if label.code in flt.actors else f", a unit of {', '.join(sorted(set(flt.actors)))}"
            reasons.append(f"actor {label.code} ({label.role}{via})")
    if flt.tactics:
        tactics = [t.code for t in event.tactics if t.code in flt.tactics]
        if not tactics:
            return None
        reasons.extend(f"tactic {code}" for code in tactics)
    return reasons


def evaluate(rule: RuleSpec, event: EventMessage, now: datetime) -> Match | None:
    """A Match with the human reasons when `event` satisfies `rule`, else None.

    Posts that are not events never match; an event without a place never matches a rule with an area.
    `now` is accepted for rules with time conditions; the current format has none.
    """
    del now
    if not rule.enabled or not event.is_event:
        return None
    if event.confidence < rule.match.min_confidence:
        return None
    reasons: list[str] = []
    if rule.match.any_:
        hits = [r for r in (_filter_reasons(f, event) for f in rule.match.any_) if r is not None]
        if not hits:
            return None
        for found in hits:
            reasons.extend(r for r in found if r not in reasons)
    for flt in rule.match.all_:
        found = _filter_reasons(flt, event)
        if found is None:
            return None
        reasons.extend(r for r in found if r not in reasons)
    if rule.match.min_confidence:
        reasons.append(f"confidence {event.confidence:.2f} ≥ {rule.match.min_confidence:.2f}")

    distance: float | None = None
    area = rule.area
    if area is not None:
        place = event.place
        if place is None:
            return None
        center = area.center
        if center is not None and area.radius_km is not None:
            distance = distance_km(center[0], center[1], place.lat, place.lon)
            if distance > area.radius_km:
                return None
            reasons.append(f"{place.name}: {distance:.1f} km from {center[2]} ≤ {area.radius_km:g} km")
        elif area.country:
            if (place.country or "").upper() != area.country.upper():
                return None
            reasons.append(f"{place.name} is in {area.country.upper()}")
    return Match(rule_id=rule.id, reasons=reasons, distance_km=distance)
