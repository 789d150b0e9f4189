"""Things that are slow to build and never change for given inputs (the AOI gazetteer, the classifier's
indexes), pickled once in the cache directory and loaded by every later process.

The file name carries a digest of everything the value is built from, so a new package version, data file or
code change builds a new file instead of loading a stale one. Writes go to a temporary file renamed into place,
so two processes starting at once never read half a file; an unreadable file is logged and rebuilt.
"""

import gc
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


def default_cache_dir() -> Path:
    env = os.environ.get("WATCHFLOOR_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "watchfloor"


def digest(parts: Iterable[str | bytes | Path]) -> str:
    """A short digest of strings, bytes and files' contents (a file that does not exist counts as its name)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            data = part.read_bytes() if part.exists() else f"missing:{part.name}".encode()
        else:
            data = part if isinstance(part, bytes) else part.encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:12]


def versions(*packages: str) -> str:
    """Installed versions of packages, for a digest."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - installed with the project
            out.append(f"{name}=?")
    return ",".join(out)


def cached_pickle(path: Path, build: Callable[[], T]) -> T:
    """The value pickled at `path`, or `build()`'s, written there for the next process."""
    if path.exists():
        enabled = gc.isenabled()
        gc.disable()  # the collector would walk the half-built graph again and again: loading takes half as long
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except Exception as exc:  # a truncated or foreign file: any unpickling error means rebuild
            logger.warning("cache unreadable path=%s reason=%r; rebuilding", path, str(exc))
        finally:
            if enabled:
                gc.enable()
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as fh:
            try:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                Path(fh.name).unlink(missing_ok=True)
                raise
        Path(fh.name).replace(path)
    except OSError as exc:
        logger.warning("cache not written path=%s reason=%r", path, str(exc))
    return value
