"""Is a place inside a rule's area, and why (pure): circles (with a radius per tactic), polygons, countries and
admin regions.

A polygon is tested in plain lat/lon (ray casting): right for the areas a desk draws (a few hundred km, far from
the poles and the antimeridian). A region is a match on the gazetteer's admin1 of the event's place, not a
point-in-polygon test: the gazetteer has region names, not outlines.
"""

import math

from services.alert.rules import Area
from shared.gazetteer import normalise
from shared.messages import PlaceLabel

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = 111.32


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def point_in_polygon(lat: float, lon: float, corners: list[tuple[float, float]]) -> bool:
    """Ray casting over [lat, lon] corners (the polygon closes itself); a point on an edge may go either way."""
    inside = False
    j = len(corners) - 1
    for i in range(len(corners)):
        lat_i, lon_i = corners[i]
        lat_j, lon_j = corners[j]
        if (lat_i > lat) != (lat_j > lat):
            cross = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if lon < cross:
                inside = not inside
        j = i
    return inside


def bounding_box(area: Area) -> tuple[float, float, float, float] | None:
    """(min_lat, min_lon, max_lat, max_lon) that holds every point of a circle or polygon; None for a country
    or a region (indexed by name, not by space)."""
    if area.polygon is not None:
        lats = [c[0] for c in area.polygon]
        lons = [c[1] for c in area.polygon]
        return min(lats), min(lons), max(lats), max(lons)
    center, radius = area.center, area.max_radius_km
    if center is None or radius is None:
        return None
    dlat = radius / KM_PER_DEGREE
    dlon = radius / (KM_PER_DEGREE * max(0.01, math.cos(math.radians(center[0]))))
    # A little slack: the haversine circle bulges past the flat estimate at large radii.
    dlat, dlon = dlat * 1.01 + 0.01, dlon * 1.01 + 0.01
    return max(-90.0, center[0] - dlat), center[1] - dlon, min(90.0, center[0] + dlat), center[1] + dlon


def region_of(place: PlaceLabel) -> tuple[str, str] | None:
    """The (country, normalised admin1) key a region area is matched on."""
    if not place.country or not place.admin1:
        return None
    return place.country.upper(), normalise(place.admin1)


def inside(area: Area, place: PlaceLabel | None, tactics: list[str]) -> tuple[bool, str, float | None]:
    """(inside?, the reason shown to the analyst, distance from the circle's centre in km)."""
    if place is None:
        return False, "the report has no place; an area rule needs one", None
    center = area.center
    if center is not None:
        radius = area.radius_for(tactics) or 0.0
        distance = distance_km(center[0], center[1], place.lat, place.lon)
        widened = "" if radius == area.radius_km else f" (radius for {', '.join(sorted(tactics))})"
        if distance <= radius:
            return True, f"{place.name}: {distance:.1f} km from {center[2]} ≤ {radius:g} km{widened}", distance
        return False, f"{place.name}: {distance:.1f} km from {center[2]} > {radius:g} km{widened}", distance
    if area.polygon is not None:
        if point_in_polygon(place.lat, place.lon, area.polygon):
            return True, f"{place.name} ({place.lat:.3f}, {place.lon:.3f}) is inside the rule's polygon", None
        return False, f"{place.name} ({place.lat:.3f}, {place.lon:.3f}) is outside the rule's polygon", None
    key = area.region_key
    if key is not None:
        if region_of(place) == (key[0], normalise(key[1])):
            return True, f"{place.name} is in the region {key[1]} ({key[0]})", None
        where = f"{place.admin1} ({place.country})" if place.admin1 else f"no known region ({place.country})"
        return False, f"{place.name} is in {where}, not in {key[1]} ({key[0]})", None
    country = (area.country or "").upper()
    if (place.country or "").upper() == country:
        return True, f"{place.name} is in {country}", None
    return False, f"{place.name} is in {place.country or 'no known country'}, not in {country}", None
