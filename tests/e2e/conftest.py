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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [WATCHFLOOR, "up", "--port", str(self.port)], env=self.env, stdout=log, stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"watchfloor up exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"watchfloor up not healthy in {timeout}s:\n{self.log.read_text()}")

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
