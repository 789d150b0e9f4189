"""Where the running system is, so that a command typed beside `watchfloor up` acts on it.

`watchfloor up` writes one small record of itself (pid, data dir, database URL, console address) under
`$WATCHFLOOR_STATE_DIR` (default `$XDG_STATE_HOME/watchfloor`, i.e. `~/.local/state/watchfloor`) and removes
it when it stops; a record whose process is gone is ignored and cleared. A CLI command given no data dir and
no database URL (flag or environment) uses the one running `up` it finds and says so on stderr; with none
running it uses the defaults.

And no command but `up` and `migrate` creates a database as a side effect: an SQLite file that does not exist,
or a database with no schema, is an error that says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared.errors import ReasonError

EXPLICIT = ("WATCHFLOOR_DATA_DIR", "WATCHFLOOR_DATABASE_URL")


def state_dir() -> Path:
    configured = os.environ.get("WATCHFLOOR_STATE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "watchfloor"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record(*, data_dir: Path, database_url: str | None, redis_url: str | None, console: str) -> Path:
    """Writes this process's record (readable by its owner only: a database URL may carry a password)."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"up-{os.getpid()}.json"
    body = {"pid": os.getpid(), "data_dir": str(data_dir.resolve()), "database_url": database_url,
            "redis_url": redis_url, "console": console, "cwd": os.getcwd()}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    tmp.replace(path)
    return path


def running() -> list[dict[str, Any]]:
    """The records of `watchfloor up` processes alive now (stale ones are removed)."""
    folder = state_dir()
    found = []
    for path in sorted(folder.glob("up-*.json")) if folder.is_dir() else []:
        try:
            body = json.loads(path.read_text())
            pid = int(body["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid):
            found.append(body)
        else:
            path.unlink(missing_ok=True)
    return found


def overrides_for_cli(overrides: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The settings a CLI command should use, and a note for stderr when they came from a running `up`.
    Explicit choices (a --data-dir, WATCHFLOOR_DATA_DIR, WATCHFLOOR_DATABASE_URL) always win."""
    if "data_dir" in overrides or any(os.environ.get(name) for name in EXPLICIT):
        return overrides, None
    alive = running()
    if len(alive) != 1:
        return overrides, None
    up = alive[0]
    chosen = {**overrides, "data_dir": Path(up["data_dir"])}
    if up.get("database_url"):
        chosen["database_url"] = up["database_url"]
    if up.get("redis_url") and not os.environ.get("WATCHFLOOR_REDIS_URL"):
        chosen["redis_url"] = up["redis_url"]
    if Path("var").resolve() == Path(up["data_dir"]):
        return chosen, None  # the default here is that very system: nothing to point out
    return chosen, f"using the running `watchfloor up` (pid {up['pid']}, data dir {up['data_dir']}, console " \
                   f"{up['console']}); pass --data-dir to choose another"


def sqlite_path(db_url: str) -> Path | None:
    """The file of an SQLite URL, or None for any other database."""
    if not db_url.startswith("sqlite"):
        return None
    _, _, rest = db_url.partition(":///")
    return Path(rest) if rest and rest != ":memory:" else None


def require_existing_database(db_url: str) -> None:
    """Raises a ReasonError saying what to do when the SQLite file is missing (opening it would create an
    empty one, and every command after would fail with 'no such table')."""
    path = sqlite_path(db_url)
    if path is not None and not path.exists():
        raise ReasonError(
            f"no database at {path}: start the system with `watchfloor up` (it creates and migrates it), or "
            f"run `watchfloor migrate`; if `up` runs with another --data-dir, pass the same --data-dir here"
        )


NO_SCHEMA = "the database at {url} has no schema (or an old one): run `watchfloor migrate`"
