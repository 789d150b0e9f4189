"""Throughput and memory of one classify worker, cost against text length, and the dev-set score.

Loads the gazetteer (building its cache if missing), then classifies N posts on one core. The posts are
generated: report templates in four languages x gazetteer places x actors x tolls x tactics, plus the dev
and held-out texts with their numbers, days and places swapped, so that no two posts are the same text and
no per-text cache can flatter the figure. Prints posts/s, the worker's peak resident set, the same N posts
through `watchfloor classify` as a whole process (start-up included), the cost of one post of 1k, 10k,
100k and 1M characters in each language (with the default cap on what is read, and with the cap lifted, to
show every pass is linear), and the dev score.

usage: .venv/bin/python bench/classify.py [--posts 10000] [--seed 7]
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEV = Path("/work/shared/eval/dev.jsonl")
SCORE = Path("/work/shared/eval/score.py")
HELDOUT = ROOT / "tests" / "classify" / "heldout.jsonl"

PLACES = [
    "Ouallam",
    "Tillabéri",
    "Téra",
    "Filingué",
    "Abala",
    "Banibangou",
    "Torodi",
    "Ayorou",
    "Tahoua",
    "Diffa",
    "Agadez",
    "Ménaka",
    "Gao",
    "Ansongo",
    "Kidal",
    "Tessit",
    "Bourem",
    "Douentza",
    "Mopti",
    "Djenné",
    "Niono",
    "Ségou",
    "Djibo",
    "Dori",
    "Arbinda",
    "Kaya",
    "Barsalogho",
    "Fada N'Gourma",
    "Diapaga",
    "Titao",
    "Kandi",
    "Malanville",
    "Tanguiéta",
    "Maiduguri",
    "Monguno",
    "Gwoza",
    "Bama",
    "Dikwa",
    "Damasak",
    "Konduga",
    "Geidam",
    "Damaturu",
    "Sokoto",
    "Gusau",
    "Inatès",
    "Tongo Tongo",
    "Sévaré",
    "Boni",
    "Solhan",
    "Tinzaouaten",
    "Chinagodrar",
    "Koutoukalé",
]
ACTORS = [
    "JNIM",
    "ISWAP",
    "Boko Haram",
    "IS Sahel",
    "l'EIGS",
    "le GSIM",
    "Katiba Macina",
    "Ansarul Islam",
    "Lakurawa",
    "AQIM",
    "the FLA",
    "ISWAP fighters",
    "Islamic State Sahel Province",
]
ARMIES = [
    "Malian soldiers",
    "Nigerien troops",
    "Burkinabe soldiers",
    "Nigerian troops",
    "Beninese soldiers",
    "the army",
    "VDP volunteers",
    "UN peacekeepers",
]
TEMPLATES = [
    (
        "en",
        "{actor} fighters attack army post in {place}",
        "{actor} fighters stormed an army post in {place} on {day}, killing {n} {army}, security sources said. "
        "{actor} claimed the attack.",
    ),
    (
        "en",
        "Roadside bomb kills {n} near {place}",
        "A roadside bomb struck a convoy about {km} km {dir} of {place} on {day}, killing {n} {army} and wounding "
        "{m}. Officials blamed {actor}.",
    ),
    (
        "en",
        "Analysis: what {actor}'s expansion means for {place}",
        "Analysts say {actor} has spread its influence around {place} since {year}; this analysis looks at why.",
    ),
    (
        "fr",
        "{place} : {n} morts dans l'attaque d'un camp militaire",
        "Au moins {n} militaires ont été tués {day_fr} dans l'attaque du camp de {place}, a annoncé le gouvernement "
        "à Niamey. {actor} a revendiqué l'attaque.",
    ),
    (
        "fr",
        "Enlèvement près de {place}",
        "Des hommes armés ont enlevé {n} civils {day_fr} près de {place}, selon des sources locales. {actor} est "
        "soupçonné.",
    ),
    ("ar", "", "بيان صادر عن {actor} - بفضل الله هاجم المجاهدون ثكنة للجيش في بلدة {place} وقتلوا {n} من عناصرها."),
    ("ha", "", "'Yan bindiga sun kai hari garin {place} ranar {day_ha}, suka kashe mutane {n}. Ana zargin {actor}."),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_FR = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
DAYS_HA = ["Litinin", "Talata", "Laraba", "Alhamis", "Juma'a", "Asabar", "Lahadi"]
DIRS = ["north", "south", "east", "west", "north-east", "south-west"]


def generate(count: int, seed: int) -> list[dict]:
    """`count` distinct posts: templates filled at random, and real dev/held-out texts with details swapped."""
    rng = random.Random(seed)
    real = [json.loads(line) for path in (DEV, HELDOUT) if path.exists() for line in path.open(encoding="utf-8")]
    posts: list[dict] = []
    seen: set[str] = set()
    while len(posts) < count:
        if real and rng.random() < 0.35:
            row = rng.choice(real)
            text = row["text"]
            for word in ("Monday", "Tuesday", "Sunday", "lundi", "mardi", "dimanche"):
                text = text.replace(word, rng.choice(DAYS + DAYS_FR))
            text = text.replace(" 12 ", f" {rng.randint(2, 300)} ").replace(" 20 ", f" {rng.randint(2, 300)} ")
            text += f" ({rng.choice(PLACES)}, {rng.randint(1, 28)}/{rng.randint(1, 12)})"
            post = {"lang": row["lang"], "title": row.get("title") or "", "text": text}
        else:
            lang, title, text = rng.choice(TEMPLATES)
            d = rng.randrange(7)
            fill = {
                "actor": rng.choice(ACTORS),
                "place": rng.choice(PLACES),
                "army": rng.choice(ARMIES),
                "n": rng.randint(2, 150),
                "m": rng.randint(1, 60),
                "km": rng.randint(5, 90),
                "dir": rng.choice(DIRS),
                "day": DAYS[d],
                "day_fr": DAYS_FR[d],
                "day_ha": DAYS_HA[d],
                "year": rng.randint(2015, 2025),
            }
            post = {"lang": lang, "title": title.format(**fill), "text": text.format(**fill)}
        key = post["title"] + "\n" + post["text"]
        if key in seen:
            continue
        seen.add(key)
        posts.append({"id": f"b{len(posts):05d}", **post})
    return posts


def run_worker(posts_path: str) -> dict:
    """The worker: load the gazetteer, classify every post once; report timings and peak RSS."""
    from services.classify.batch import _post
    from services.classify.events import classify_events, warm_up
    from shared.gazetteer import load_gazetteer

    t0 = time.perf_counter()
    gazetteer = load_gazetteer()
    loaded = time.perf_counter() - t0
    warm_up(gazetteer, datetime.now(UTC))
    rows = [json.loads(line) for line in open(posts_path, encoding="utf-8")]
    messages = [_post(row) for row in rows]
    now = datetime.now(UTC)
    events = 0
    t1 = time.perf_counter()
    for message in messages:
        events += classify_events(message, now=now, gazetteer=gazetteer)[0].is_event
    elapsed = time.perf_counter() - t1
    return {
        "posts": len(messages),
        "events": events,
        "seconds": elapsed,
        "load_seconds": loaded,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


LENGTH_UNITS = {
    "en": "Gunmen attacked an army post near Ouallam on Sunday, killing four soldiers, officials in Niamey said. "
    "JNIM claimed the attack; the army denied the toll. ",
    "fr": "Des hommes armés ont attaqué un poste de gendarmerie à Kaya dimanche, tuant 12 gendarmes, selon une source "
    "sécuritaire. ",
    "ar": "هاجم مسلحون موقعا للجيش المالي قرب غاو وقتل 12 جنديا، وتبنى تنظيم الدولة الهجوم. ",
    "ha": "Yan bindiga sun kai hari a garin Bama da ke jihar Borno, sun kashe mutane 20. ",
}


def cost_by_length() -> None:
    """Seconds for one post of each length, capped (the service's default) and uncapped."""
    from services.classify.classify import MAX_CHARS, classify_post
    from services.classify.events import warm_up
    from shared.gazetteer import load_gazetteer
    from shared.messages import PostMessage

    gazetteer = load_gazetteer()
    now = datetime.now(UTC)
    warm_up(gazetteer, now)
    lengths = (1_000, 10_000, 100_000, 1_000_000)
    print(f"cost of one post by length (seconds; capped = first {MAX_CHARS:,} characters read, the default):")
    print("  lang  cap      " + "".join(f"{n:>10,}" for n in lengths) + "   s per 1M chars at 1M")
    for lang, unit in LENGTH_UNITS.items():
        for label, cap in (("capped", MAX_CHARS), ("uncapped", 10**9)):
            row = []
            for n in lengths:
                text = (unit * (n // len(unit) + 1))[:n]
                post = PostMessage(post_id="1" * 64, source_id="b", title="Attack", text=text, fetched_at=now)
                t0 = time.perf_counter()
                classify_post(post, now=now, gazetteer=gazetteer, max_chars=cap)
                row.append(time.perf_counter() - t0)
            print(f"  {lang:<5} {label:<8} " + "".join(f"{t:>10.3f}" for t in row) + f"   {row[-1]:.2f}")


def whole_process(posts_path: Path, count: int, runs: int = 3) -> None:
    """`watchfloor classify` on the posts as a user runs it: start-up, gazetteer, reading and writing included.
    Run a few times (the first may build the start-up cache; this machine's speed wanders): every run is printed,
    and the median."""
    exe = Path(sys.executable).with_name("watchfloor")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([str(exe), "classify", "--input", str(posts_path), "--output", str(Path(tmp) / "p.jsonl")],
                           check=True, capture_output=True, cwd=ROOT)
            walls.append(time.perf_counter() - t0)
    wall = sorted(walls)[len(walls) // 2]
    each = ", ".join(f"{w:.2f}" for w in walls)
    print(f"watchfloor classify, whole process: {count} posts in {wall:.2f} s (median of {each}) = "
          f"{count / wall:,.0f} posts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        posts_path = Path(tmp) / "posts.jsonl"
        with posts_path.open("w", encoding="utf-8") as fh:
            for post in generate(args.posts, args.seed):
                fh.write(json.dumps(post, ensure_ascii=False) + "\n")
        # A fresh process, pinned to one core, so that its peak RSS is the worker's alone.
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(posts_path)]
        if hasattr(os, "sched_setaffinity"):
            cmd = ["taskset", "-c", "0", *cmd]
        print("worker:", " ".join(cmd[:-1]), "<posts.jsonl>")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rate = result["posts"] / result["seconds"]
        print(f"posts: {result['posts']} distinct ({result['events']} classified as events), one core")
        print(f"gazetteer load: {result['load_seconds']:.2f} s")
        print(f"throughput: {rate:,.0f} posts/s ({result['seconds']:.2f} s)")
        print(f"peak RSS of the worker: {result['maxrss_mb']:.0f} MB")
        whole_process(posts_path, result["posts"])
    cost_by_length()

    if DEV.exists() and SCORE.exists():
        with tempfile.TemporaryDirectory() as tmp:
            pred = Path(tmp) / "pred.jsonl"
            from services.classify.batch import classify_file

            classify_file(DEV, pred)
            score = subprocess.run(
                [sys.executable, str(SCORE), str(DEV), str(pred)], capture_output=True, text=True, check=True
            )
        print(f"dev score ({DEV}):")
        print(score.stdout.rstrip())


if __name__ == "__main__":
    main()
