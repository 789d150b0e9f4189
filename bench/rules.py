"""Rule evaluation throughput: events/s against 1,000 rules of mixed areas, on one core.

Builds 1,000 rules over the Sahel (a quarter each: circles around gazetteer towns with a radius per tactic,
polygons, countries, admin regions; a few with no area), random actor/tactic filters, and 20,000 synthetic
events at gazetteer places (with their admin1 region), then times `RuleIndex.matching` (the spatial index
plus the full check with reasons for every match) over all events. Also times the naive loop over every
rule on a sample, to show what the index saves. Deterministic (seeded).

usage: .venv/bin/python bench/rules.py [--rules 1000] [--events 20000] [--seed 7]
"""

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.alert.evaluate import evaluate  # noqa: E402
from services.alert.rules import ACTOR_PARENTS, TACTICS, RuleSpec, parse_rule  # noqa: E402
from services.alert.spatial import RuleIndex  # noqa: E402
from shared.gazetteer import load_gazetteer  # noqa: E402
from shared.messages import ActorLabel, EventMessage, PlaceLabel, TacticLabel  # noqa: E402

COUNTRIES = ("ML", "NE", "BF", "NG", "BJ", "TD", "MR")
ARMED = ["ISSP", "ISWAP", "JAS", "JNIM", "KATIBA_MACINA", "ANSAROUL_ISLAM", "LAKURAWA", "AQIM", "FLA"]


def make_rules(n: int, rng: random.Random) -> list[RuleSpec]:
    gaz = load_gazetteer()
    towns = [p for p in gaz.places if p.country in COUNTRIES and p.kind != "region" and p.population > 5000]
    regions = [p for p in gaz.places if p.country in COUNTRIES and p.kind == "region"]
    tactics = sorted(TACTICS)
    rules = []
    for i in range(n):
        flt: dict = {}
        if rng.random() < 0.7:
            flt["actors"] = rng.sample(ARMED, rng.randint(1, 2))
        if rng.random() < 0.6 or not flt:
            flt["tactics"] = rng.sample(tactics, rng.randint(1, 3))
        kind = i % 4 if i % 50 else -1
        if kind == 0:
            town = rng.choice(towns)
            area = {"lat": town.lat, "lon": town.lon, "radius_km": rng.choice([25, 50, 100, 150])}
            if rng.random() < 0.3:
                area["radius_km_by_tactic"] = {"vbied": 200}
        elif kind == 1:
            town = rng.choice(towns)
            d = rng.uniform(0.3, 1.5)
            area = {"polygon": [[town.lat - d, town.lon - d], [town.lat - d, town.lon + d],
                                [town.lat + d, town.lon + d], [town.lat + d * 0.5, town.lon - d]]}
        elif kind == 2:
            area = {"country": rng.choice(COUNTRIES)}
        elif kind == 3:
            region = rng.choice(regions)
            area = {"region": region.name, "country": region.country}
        else:
            area = None
        data = {"id": f"r{i:04d}", "name": f"bench rule {i}", "match": {"any": [flt]}, "severity": "medium"}
        if area:
            data["area"] = area
        rules.append(parse_rule(data, origin=f"bench r{i}"))
    return rules


def make_events(n: int, rng: random.Random) -> list[EventMessage]:
    gaz = load_gazetteer()
    places = [p for p in gaz.places if p.country in COUNTRIES]
    tactics = sorted(TACTICS)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        p = rng.choice(places)
        actor = rng.choice([*ARMED, *rng.sample(list(ACTOR_PARENTS), 2)])
        events.append(EventMessage(
            event_id=f"bench{i:011d}", post_id=f"bench{i:011d}", source_id=f"src{i % 7}", lang="fr",
            published_at=t0 + timedelta(minutes=i), classified_at=t0 + timedelta(minutes=i), is_event=True,
            actors=[ActorLabel(code=actor, role="perpetrator", confidence=0.8)], perpetrator=actor,
            tactics=[TacticLabel(code=t, confidence=0.8) for t in rng.sample(tactics, rng.randint(1, 2))],
            place=PlaceLabel(name=p.name, lat=p.lat + rng.uniform(-0.2, 0.2), lon=p.lon + rng.uniform(-0.2, 0.2),
                             country=p.country, admin1=p.admin1, kind=p.kind, precision=rng.choice([1, 1, 2, 3])),
            confidence=0.8, classifier="bench",
        ))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rules = make_rules(args.rules, rng)
    events = make_events(args.events, rng)
    now = datetime.now(UTC)

    started = time.perf_counter()
    index = RuleIndex(rules)
    built_ms = (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    matched = candidates = 0
    for event in events:
        candidates += len(index.candidates(event))
        matched += len(index.matching(event, now))
    # `candidates` is counted separately above for the report; time the matching alone.
    started = time.perf_counter()
    for event in events:
        index.matching(event, now)
    elapsed = time.perf_counter() - started
    rate = len(events) / elapsed

    sample = events[:1000]
    started = time.perf_counter()
    naive = sum(1 for e in sample for r in rules if evaluate(r, e, now) is not None)
    naive_rate = len(sample) / (time.perf_counter() - started)
    indexed = sum(len(index.matching(e, now)) for e in sample)
    assert naive == indexed, f"the index lost matches: {indexed} != {naive}"

    print(f"command: .venv/bin/python bench/rules.py --rules {args.rules} --events {args.events} --seed {args.seed}")
    print(f"rules: {len(rules)} (circles, polygons, countries, regions, a few anywhere); index built in "
          f"{built_ms:.0f} ms")
    print(f"events: {len(events)}; candidate rules per event: {candidates / len(events):.1f}; "
          f"matches per event: {matched / len(events):.2f}")
    print(f"indexed: {rate:,.0f} events/s on one core ({elapsed:.2f} s)")
    print(f"naive loop over every rule: {naive_rate:,.0f} events/s (sample of {len(sample)}; same matches)")


if __name__ == "__main__":
    main()
