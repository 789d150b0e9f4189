"""The system as a user runs it: `watchfloor up` in a subprocess, the CLI in others."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import redis

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


def fresh_feed(name: str) -> bytes:
    """A fixture feed with its items re-dated to the last hour, oldest last: reports older than the alert
    service's max event age open no alert, and these tests must not stop working when the fixture ages."""
    body = (FEEDS / name).read_text(encoding="utf-8")
    stamps = re.findall(r"<pubDate>[^<]*</pubDate>", body)
    now = datetime.now(UTC)
    for n, stamp in enumerate(stamps):
        when = format_datetime(now - timedelta(minutes=30 - 5 * n))
        body = body.replace(stamp, f"<pubDate>{when}</pubDate>", 1)
    return body.encode("utf-8")


def free_port() -> int:
    """A port free now. Nothing holds it: until a server binds it, another process (an xdist worker, another
    suite on the machine) may take it; `start_healthy` picks another one then."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_TAKEN = "could not start on 127.0.0.1:"
"""What `watchfloor up` and `run` say when their port was taken (watchfloor/runtime.py)."""


def listens(pid: int, port: int) -> bool:
    """True if process `pid` has a socket listening on 127.0.0.1:`port` (Linux /proc; elsewhere assumed): a /health
    answered on the port may come from another process that took the port first."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    inodes = {f[9] for f in (line.split() for line in table) if f[1] == f"0100007F:{port:04X}" and f[3] == "0A"}
    for fd in fds:
        try:
            if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                return True
        except OSError:
            continue
    return False


def stream_length(redis_url: str, stream: str) -> int:
    """Entries on `stream` now (0 when it does not exist yet)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return client.xlen(stream) if client.exists(stream) else 0
    finally:
        client.close()


def start_healthy(args: list[str], env: dict[str, str], log: Path, port: int | None = None, *, timeout: float = 60.0,
                  cwd: Path | None = None, tries: int = 3) -> tuple[subprocess.Popen, int]:
    """Starts `watchfloor *args --port PORT` (`port`, or a free one) and waits until its /health answers 200;
    returns the process and its port. A port taken between `free_port()` and the bind (by another process on the
    machine: tests run in parallel) costs a retry on another free port, not a failed test."""
    for attempt in range(tries):
        chosen = port if port is not None and attempt == 0 else free_port()
        start = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            process = subprocess.Popen([WATCHFLOOR, *args, "--port", str(chosen)], env=env, stdout=out, stderr=out,
                                       cwd=cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                said = log.read_bytes()[start:].decode(errors="replace")
                if PORT_TAKEN in said and attempt + 1 < tries:
                    break  # another process took the port: try another
                raise AssertionError(f"watchfloor {args[0]} exited with {process.returncode}:\n{said}")
            try:
                if httpx.get(f"http://127.0.0.1:{chosen}/health", timeout=1).status_code == 200 and listens(
                        process.pid, chosen):
                    return process, chosen
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            process.kill()
            process.wait()
            raise AssertionError(f"watchfloor {args[0]} not healthy in {timeout}s:\n{log.read_text(errors='replace')}")
    raise AssertionError("unreachable")


@dataclass
class System:
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command typed in a second terminal, against the same database and Redis."""
        done = subprocess.run([WATCHFLOOR, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"watchfloor {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, timeout: float = 60.0) -> None:
        """`watchfloor up` on `port`, healthy; on another free port if that one was taken meanwhile."""
        self.process, self.port = start_healthy(["up"], self.env, self.log, self.port, timeout=timeout)

    def stop(self) -> int:
        """Ctrl-C, as an operator would; returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def system(db_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    env = {
        **os.environ,
        "WATCHFLOOR_DATABASE_URL": db_url,
        "WATCHFLOOR_REDIS_URL": redis_url,
        "WATCHFLOOR_DATA_DIR": str(tmp_path / "var"),
        "WATCHFLOOR_LOG_FORMAT": "console",
        "WATCHFLOOR_CLAIM_IDLE_MS": "1000",
        "WATCHFLOOR_RETRY_SCHEDULE_SECONDS": "[0.3, 0.6, 1.2]",
        "WATCHFLOOR_MIN_INTERVAL_SECONDS": "1",
    }
    sys_ = System(env=env, port=free_port(), log=tmp_path / "up.log")
    yield sys_
    if sys_.process is not None and sys_.process.poll() is None:
        sys_.stop()
