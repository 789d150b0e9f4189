"""`watchfloor up` and `run` refuse clearly when they cannot start, instead of a traceback."""

import socket
import subprocess
import sys
from pathlib import Path

WATCHFLOOR = str(Path(sys.executable).with_name("watchfloor"))


def test_run_on_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    env = {"WATCHFLOOR_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "WATCHFLOOR_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([WATCHFLOOR, "run", "classify", "--port", "0"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "has no schema: run `watchfloor migrate` first" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"WATCHFLOOR_DATA_DIR": str(tmp_path / "var"), "WATCHFLOOR_STATE_DIR": str(tmp_path / "state"),
               "PATH": "/usr/bin:/bin"}
        done = subprocess.run([WATCHFLOOR, "up", "--port", str(port)], env=env, capture_output=True, text=True,
                              timeout=90)
    assert done.returncode == 1, done.stderr
    assert f"could not start on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "var" / "redis.sock").exists(), "the embedded Redis was left running"
