"""Which incident a report belongs to (pure): several reports of one attack are one incident.

An event joins an open incident when they share a perpetrator actor (a sub-unit counts as its parent; a victim
never counts: two attacks on one army are two incidents) or a tactic, are within `radius_km` of each other and
within `window` in time; otherwise it opens a new one.
A report without a place joins only an incident without a place (nothing to measure a distance on).
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from services.alert.evaluate import distance_km
from services.alert.geofence import EARTH_RADIUS_KM
from shared import ids
from shared.messages import EventMessage
from shared.taxonomy import ACTOR_PARENTS, MILITIA, STATE

ATTRIBUTING_ROLES = frozenset({"perpetrator", "suspected", "involved"})


@dataclass(frozen=True)
class ClusterPolicy:
    radius_km: float = 25.0
    window: timedelta = timedelta(hours=6)


@dataclass
class IncidentView:
    """The clustering-relevant part of an incident, as stored."""

    id: str
    first_seen_at: datetime
    last_seen_at: datetime
    lat: float | None
    lon: float | None
    actors: list[str] = field(default_factory=list)
    perpetrator: str | None = None
    tactics: list[str] = field(default_factory=list)
    killed: int | None = None
    place: dict[str, Any] | None = None
    country: str | None = None

    @classmethod
    def of_row(cls, row: Any) -> "IncidentView":
        """From an `incidents` row."""
        return cls(
            id=row.id, first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at, lat=row.lat, lon=row.lon,
            actors=list(row.actors or []), perpetrator=row.perpetrator, tactics=list(row.tactics or []),
            killed=row.killed, place=row.place, country=row.country,
        )

    def columns(self) -> dict[str, Any]:
        """What is stored of it in its `incidents` row (all but the id)."""
        return {"first_seen_at": self.first_seen_at, "last_seen_at": self.last_seen_at, "lat": self.lat,
                "lon": self.lon, "country": self.country, "place": self.place, "actors": self.actors,
                "perpetrator": self.perpetrator, "tactics": self.tactics, "killed": self.killed}


def event_time(event: EventMessage) -> datetime:
    """When the reported activity was published (else fetched, else classified)."""
    return event.published_at or event.fetched_at or event.classified_at


def perpetrators(event: EventMessage) -> set[str]:
    """Actors the report attributes the activity to, each with its parent unit. A state force or militia that
    is only "involved" is most often the victim: two attacks on one army are two incidents."""
    codes = {
        a.code
        for a in event.actors
        if a.role in ATTRIBUTING_ROLES and not (a.role == "involved" and a.code in STATE | MILITIA)
    }
    if event.perpetrator:
        codes.add(event.perpetrator)
    return codes | {p for c in codes if (p := ACTOR_PARENTS.get(c))}


def _incident_actors(incident: IncidentView) -> set[str]:
    """The incident's perpetrator, and the armed groups it names (never the state forces it names: victims)."""
    codes = {c for c in incident.actors if c not in STATE | MILITIA}
    codes |= {incident.perpetrator} if incident.perpetrator else set()
    return codes | {p for c in codes if (p := ACTOR_PARENTS.get(c))}


def joins(incident: IncidentView, event: EventMessage, policy: ClusterPolicy) -> float | None:
    """The distance in km (0 without places) if `event` belongs to `incident`, else None."""
    at = event_time(event)
    if at < incident.first_seen_at - policy.window or at > incident.last_seen_at + policy.window:
        return None
    shares_tactic = bool(set(event.tactic_codes) & set(incident.tactics))
    shares_actor = bool(perpetrators(event) & _incident_actors(incident))
    if not (shares_tactic or shares_actor):
        return None
    if event.place is None or incident.lat is None or incident.lon is None:
        return 0.0 if event.place is None and incident.lat is None else None
    distance = distance_km(incident.lat, incident.lon, event.place.lat, event.place.lon)
    return distance if distance <= policy.radius_km else None


def choose_incident(
    candidates: list[IncidentView], event: EventMessage, policy: ClusterPolicy
) -> IncidentView | None:
    """The closest open incident the event joins, or None when it opens a new one."""
    best: tuple[float, float, IncidentView] | None = None
    at = event_time(event)
    for incident in candidates:
        distance = joins(incident, event, policy)
        if distance is None:
            continue
        gap = abs((at - incident.last_seen_at).total_seconds())
        if best is None or (distance, gap) < best[:2]:
            best = (distance, gap, incident)
    return best[2] if best else None


@dataclass(frozen=True)
class IncidentChange:
    """What one report does to the incidents: `open` a new one, `join` an open one, or nothing new for a report
    already assigned (`known`: a redelivery or a re-classification). `incident` has the report merged in."""

    kind: Literal["open", "join", "known"]
    incident: IncidentView


def place_incident(event: EventMessage, known: IncidentView | None, candidates: list[IncidentView],
                   policy: ClusterPolicy) -> IncidentChange:
    """Which incident the report belongs to. `known` is the incident it was already assigned to, if any;
    `candidates` the open incidents near it in time, read under the place lock (see `place_cells`), so that
    two workers cannot both decide to open one for the same attack."""
    if known is not None:
        return IncidentChange("known", merge(known, event))
    chosen = choose_incident(candidates, event, policy)
    if chosen is None:
        return IncidentChange("open", merge(open_incident(ids.incident_id(event.event_id), event), event))
    return IncidentChange("join", merge(chosen, event))


def open_incident(incident_id: str, event: EventMessage) -> IncidentView:
    """A new incident made of this one report."""
    at = event_time(event)
    place = event.place
    return IncidentView(
        id=incident_id, first_seen_at=at, last_seen_at=at,
        lat=place.lat if place else None, lon=place.lon if place else None,
        actors=sorted({a.code for a in event.actors if a.role != "denied"}),
        perpetrator=event.perpetrator, tactics=sorted(set(event.tactic_codes)), killed=event.killed,
        place=place.model_dump(mode="json") if place else None, country=place.country if place else None,
    )


def merge(incident: IncidentView, event: EventMessage) -> IncidentView:
    """The incident with one more report: union of actors and tactics, the highest toll, the most
    precise place (a town beats a region), the widest time span. Merging the same report twice is a no-op."""
    at = event_time(event)
    place = event.place
    keep_place = incident.place is None or (
        place is not None and place.precision < int(incident.place.get("precision", 3))
    )
    killed = max((k for k in (incident.killed, event.killed) if k is not None), default=None)
    return IncidentView(
        id=incident.id,
        first_seen_at=min(incident.first_seen_at, at), last_seen_at=max(incident.last_seen_at, at),
        lat=place.lat if keep_place and place else incident.lat,
        lon=place.lon if keep_place and place else incident.lon,
        actors=sorted(set(incident.actors) | {a.code for a in event.actors if a.role != "denied"}),
        perpetrator=incident.perpetrator or event.perpetrator,
        tactics=sorted(set(incident.tactics) | set(event.tactic_codes)),
        killed=killed,
        place=place.model_dump(mode="json") if keep_place and place else incident.place,
        country=place.country if keep_place and place else incident.country,
    )


# --- where two workers must take turns ------------------------------------------------------------------

NO_PLACE_CELL = (-1, 0)
"""Reports without a place join only incidents without a place: they all take turns on this one cell."""


def _columns(row: int, height_deg: float, radius_km: float) -> int:
    """How many columns row `row` is cut into: each at least `radius_km` wide even at the row's poleward edge."""
    edge = max(abs(-90.0 + row * height_deg), abs(-90.0 + min(180.0, (row + 1) * height_deg)))
    around_km = 2 * math.pi * EARTH_RADIUS_KM * math.cos(math.radians(min(90.0, edge)))
    return max(1, math.floor(around_km / radius_km))


def _row(lat: float, height_deg: float) -> int:
    return min(math.floor((lat + 90.0) / height_deg), math.ceil(180.0 / height_deg) - 1)


def place_cells(lat: float | None, lon: float | None, radius_km: float) -> list[tuple[int, int]]:
    """The grid cells (row, column) that the disc of `radius_km` around a place touches, sorted.

    Rows are `radius_km` tall; each row is cut into columns at least `radius_km` wide. A place within
    `radius_km` of another lies in a cell of the other's list, and its own list holds its own cell: so two
    reports close enough to join one incident always share a cell, and a lock per cell makes their workers
    take turns, wherever a cell boundary falls (the antimeridian and the poles included).
    """
    if lat is None or lon is None:
        return [NO_PLACE_CELL]
    radius_km = max(radius_km, 0.1)
    height = math.degrees(radius_km / EARTH_RADIUS_KM)
    margin = 1e-9  # a neighbour exactly `radius_km` away stays inside, whatever the rounding
    lo, hi = _row(max(-90.0, lat - height - margin), height), _row(min(90.0, lat + height + margin), height)
    # The exact longitude reach of a spherical cap: asin(sin δ / cos φ); the whole circle when it holds a pole.
    reach = math.sin(radius_km / EARTH_RADIUS_KM) / max(math.cos(math.radians(lat)), 1e-12)
    half = math.degrees(math.asin(reach)) + margin if reach < 1 and abs(lat) + height < 90 else 180.0
    cells = set()
    for row in range(lo, hi + 1):
        columns = _columns(row, height, radius_km)
        width = 360.0 / columns
        first, last = math.floor((lon - half + 180.0) / width), math.floor((lon + half + 180.0) / width)
        span = range(columns) if last - first + 1 >= columns else range(first, last + 1)
        cells |= {(row, col % columns) for col in span}
    return sorted(cells)
