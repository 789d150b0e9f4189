"""Feed-to-webhook latency of the whole system, as a user runs it.

Starts `watchfloor up` on embedded defaults (SQLite and the embedded Redis in a temp dir), a feed
server and a webhook receiver on 127.0.0.1, then adds one report of a new attack to the feed per
round. For each round it prints nothing; at the end it prints p50/p90/p99/max of:
  - pipeline latency: from the feed server answering the poll that carried the new item, to the
    signed webhook arriving (fetch, parse, store, classify, rule, incident, sign, POST);
  - end-to-end latency: from the item being put on the feed, which adds the wait for the next poll
    (sources here are polled every second).

usage: .venv/bin/python bench/pipeline.py [--rounds 48]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import System, free_port  # noqa: E402
from tests.servers import FeedServer, WebhookReceiver  # noqa: E402

# Nigerien towns at least 40 km apart, so that each report opens a new incident.
TOWNS = ["Ouallam", "Tillabéri", "Téra", "Filingué", "Abala", "Banibangou", "Torodi", "Ayorou", "Dosso",
         "Tahoua", "Diffa", "Agadez", "Zinder", "Maradi", "Bilma", "Arlit", "Tessaoua", "Madaoua",
         "Birni-N'Konni", "Gaya", "Dogondoutchi", "Mainé-Soroa", "Nguigmi", "Tchintabaraden"]

RULE = """id: issp-niger
name: Any ISSP attack in Niger
match:
  any:
    - actors: [ISSP]
area:
  country: NE
severity: high
"""


def item(n: int) -> str:
    """Report n: a town of its own for the first len(TOWNS) rounds, then the towns again 8 h later
    (beyond the 6 h incident window), so that every report opens a new incident and fires."""
    town = TOWNS[n % len(TOWNS)]
    published = datetime.now(UTC) - timedelta(hours=8 * (1 - n // len(TOWNS)))
    return (f"<item><title>IS Sahel fighters attack army post in {town}, Niger</title>"
            f"<link>https://bench.example/{n}</link><guid>bench-{n}</guid>"
            f"<pubDate>{format_datetime(published)}</pubDate>"
            f"<description>Islamic State Sahel Province fighters attacked a Nigerien army post in {town}, "
            f"Niger, on Monday, killing soldiers, the defence ministry said.</description></item>")


def feed(items: list[str]) -> str:
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>bench</title>"
            "<link>https://bench.example/</link><description>bench</description>"
            + "".join(reversed(items)) + "</channel></rss>")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2 * len(TOWNS), help=f"at most {2 * len(TOWNS)}")
    args = parser.parse_args()

    feeds, receiver = FeedServer(), WebhookReceiver()
    tmp = Path(tempfile.mkdtemp(prefix="watchfloor-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    # its record (watchfloor.locate) under the temp dir: a CLI command typed meanwhile must not attach to the bench
    env.update({"WATCHFLOOR_DATA_DIR": str(tmp / "var"), "WATCHFLOOR_STATE_DIR": str(tmp / "state"),
                "WATCHFLOOR_LOG_LEVEL": "WARNING",
                "WATCHFLOOR_MIN_INTERVAL_SECONDS": "1"})
    system = System(env=env, port=free_port(), log=tmp / "up.log")
    (tmp / "rule.yaml").write_text(RULE)
    items: list[str] = []
    pipeline_ms: list[float] = []
    total_ms: list[float] = []
    try:
        url = feeds.route("/bench.xml", feed(items))
        system.start()
        system.cli("rule", "add", str(tmp / "rule.yaml"))
        system.cli("subscription", "add", receiver.url)
        system.cli("source", "add", url, "--name", "bench", "--interval", "1", "--as-is")  # first hit = first poll
        for n in range(args.rounds):
            items.append(item(n))
            added = time.monotonic()
            feeds.route("/bench.xml", feed(items))
            got = receiver.wait_for(n + 1, timeout=30)
            if len(got) < n + 1:
                raise SystemExit(f"round {n}: no webhook within 30 s; see {system.log}")
            arrived = got[n].at
            served = min(r.at for r in feeds.hits("/bench.xml") if r.at >= added)
            pipeline_ms.append((arrived - served) * 1000)
            total_ms.append((arrived - added) * 1000)
        system.stop()
    finally:
        feeds.close()
        receiver.close()
    print(f"feed-to-webhook over {args.rounds} alerts (watchfloor up, embedded SQLite + Redis, "
          f"{os.cpu_count()} cores)")
    for name, values in (("pipeline (poll answered -> webhook)", pipeline_ms),
                         ("end to end (item on feed -> webhook, 1 s polls)", total_ms)):
        print(f"  {name:<48} p50 {statistics.median(values):7.1f} ms  p90 {pct(values, 90):7.1f} ms  "
              f"p99 {pct(values, 99):7.1f} ms  max {max(values):7.1f} ms")


if __name__ == "__main__":
    main()
