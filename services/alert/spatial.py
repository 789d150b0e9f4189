"""Which rules could match an event, without looping over every rule (pure): a coarse spatial index.

    circles, polygons   a grid of `cell_deg` × `cell_deg` cells -> the rules whose bounding box touches the cell
    countries           country code -> rules          regions    (country, admin1) -> rules
    no area             every event is a candidate
An event is tested only against the rules of its cell, its country, its region and the area-less rules; an
event without a place only against the area-less ones. A second, inverted index (actor or tactic code -> rules
that need it) drops at once the rules whose filters cannot match the event's actors and tactics.
The index is built when the rules change (the
Rulebook reloads them) and answers in the rules' own order, so results do not depend on the index.
"""

import math
from collections import defaultdict
from datetime import datetime

from services.alert.evaluate import Facts, Match, compiled, evaluate, facts
from services.alert.geofence import bounding_box
from services.alert.rules import RuleSpec
from shared.gazetteer import normalise
from shared.messages import EventMessage


class RuleIndex:
    def __init__(self, rules: list[RuleSpec], cell_deg: float = 1.0) -> None:
        self.rules = list(rules)
        self.cell_deg = cell_deg
        self._cells: dict[tuple[int, int], list[int]] = defaultdict(list)
        self._countries: dict[str, list[int]] = defaultdict(list)
        self._regions: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._anywhere: list[int] = []
        self._by_code: dict[str, set[int]] = defaultdict(set)
        self._any_code: set[int] = set()
        for i, rule in enumerate(self.rules):
            needs = compiled(rule).needs
            if needs is None:
                self._any_code.add(i)
            for code in needs or ():
                self._by_code[code].add(i)
            area = rule.area
            if area is None:
                self._anywhere.append(i)
                continue
            box = bounding_box(area)
            if box is not None:
                for cell in self._cells_of(box):
                    self._cells[cell].append(i)
            elif area.region_key is not None:
                country, region = area.region_key
                self._regions[(country, normalise(region))].append(i)
            elif area.country:
                self._countries[area.country.upper()].append(i)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell_deg), math.floor(lon / self.cell_deg)

    def _cells_of(self, box: tuple[float, float, float, float]) -> list[tuple[int, int]]:
        (lat0, lon0), (lat1, lon1) = self._cell(box[0], box[1]), self._cell(box[2], box[3])
        return [(a, b) for a in range(lat0, lat1 + 1) for b in range(lon0, lon1 + 1)]

    def candidates(self, event: EventMessage, event_facts: Facts | None = None) -> list[RuleSpec]:
        """The rules that could match `event` by area and codes (a superset of those that do), in the rules'
        order."""
        place = event.place
        found = set(self._anywhere)
        if place is not None:
            found.update(self._cells.get(self._cell(place.lat, place.lon), ()))
            country = (place.country or "").upper()
            found.update(self._countries.get(country, ()))
            if place.admin1:
                found.update(self._regions.get((country, normalise(place.admin1)), ()))
        codes = (event_facts or facts(event)).codes
        coded = self._any_code.union(*(self._by_code.get(code, ()) for code in codes))
        return [self.rules[i] for i in sorted(found & coded)]

    def matching(self, event: EventMessage, now: datetime) -> list[tuple[RuleSpec, Match]]:
        """Every rule that matches `event` (conditions over time aside), with its reasons."""
        out = []
        event_facts = facts(event)
        for rule in self.candidates(event, event_facts):
            match = evaluate(rule, event, now, event_facts)
            if match is not None:
                out.append((rule, match))
        return out
