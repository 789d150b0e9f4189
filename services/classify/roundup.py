"""Several attacks in one post: a roundup ("ISSP attacked Ménaka; in Burkina Faso, JNIM struck Djibo") yields one
event per attack, each with its own actors, tactics, place and spans.

A sentence of the text starts a new attack when it holds an attack word and names a place more than
`APART_KM` from every attack already found; the attack runs to the next such sentence. Each part is then
classified on its own, and kept when it reports a current event of its own place. The main event is the
post's as a whole (its place is the first attack's); the others are returned besides it. Pure; the number of
parts is capped, and each part is bounded by the post's classified length.
"""

from dataclasses import dataclass

from services.classify.match import Hit, sentence_bounds
from services.classify.place import Mention, km_between

APART_KM = 50.0
MAX_PARTS = 6


@dataclass(frozen=True)
class Part:
    start: int
    end: int


def split_attacks(text: str, attack_hits: list[Hit], mentions: list[Mention]) -> list[Part]:
    """The parts of `text` that each report another attack, in text order; [] when it reports one."""
    hits = sorted((h for h in attack_hits if h.field == "text"), key=lambda h: h.start)
    places = sorted((m for m in mentions if m.field == "text"), key=lambda m: m.start)
    starts: list[tuple[int, tuple[float, float]]] = []
    seen: list[tuple[float, float]] = []
    pos, h, p = 0, 0, 0
    while pos < len(text) and len(starts) < MAX_PARTS:
        s0, s1 = pos, max(sentence_bounds(text, pos)[1], pos + 1)
        while h < len(hits) and hits[h].start < s0:
            h += 1
        while p < len(places) and places[p].start < s0:
            p += 1
        has_attack = h < len(hits) and hits[h].start < s1
        # a town rather than the region of the same name ("Ménaka" is both)
        here = [next((pl for pl in m.places if not pl.is_area), None) for m in places[p:] if m.start < s1]
        points = [(pl.lat, pl.lon) for pl in here if pl is not None]
        if has_attack and points:
            point = points[0]
            if not seen or all(km_between(point, other) > APART_KM for other in seen):
                starts.append((s0, point))
            seen.extend(points)
        elif points:
            seen.extend(points)  # a place named without an attack is not another attack, but not a new one either
        pos = s1 + 2  # past ". "
    if len(starts) < 2:
        return []
    bounds = [s for s, _ in starts] + [len(text)]
    return [Part(bounds[i], bounds[i + 1]) for i in range(1, len(starts))]
