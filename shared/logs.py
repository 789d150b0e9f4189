"""Logging set up once: readable lines on a terminal, one JSON object a line otherwise.

A JSON line has `ts`, `level`, `logger` and `msg`, every `extra=` field of the call as a key of its own, the ids
of the stream message being handled (`post_id`, `event_id`, `alert_id`: see `message_ids`), and `error` and
`traceback` when an exception is logged. So `jq 'select(.post_id == "…")'` follows one post through every stage.
"""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import orjson

BASE_KEYS = ("ts", "level", "logger", "msg", "error", "traceback")
"""The keys a JSON line always has (`error` and `traceback` only with an exception). An `extra=` field of the
same name is written with a trailing underscore (`msg_`) rather than hide them."""
ID_FIELDS = ("post_id", "event_id", "alert_id")
"""The message ids `message_ids` carries, in the order they are written."""

# Every attribute a bare LogRecord has, plus what Formatter.format adds: the rest came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

_ids: ContextVar[dict[str, str] | None] = ContextVar("watchfloor_message_ids", default=None)  # replaced, never mutated


@contextmanager
def message_ids(**ids: str | None) -> Iterator[None]:
    """Every log record emitted inside (in this task, and in tasks it starts) carries these ids as fields, on
    top of those already bound: the alert stage handling an event carries its post_id and event_id, and an
    alert it fires adds alert_id. None values are left out."""
    merged = {**(_ids.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    token = _ids.set(merged)
    try:
        yield
    finally:
        _ids.reset(token)


def current_ids() -> dict[str, str]:
    """The ids `message_ids` bound for the code running now."""
    return dict(_ids.get() or {})


class MessageIdsFilter(logging.Filter):
    """Adds the bound message ids to each record as attributes; an explicit `extra=` of the same name wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _jsonable(value: Any) -> Any:
    """`value` if orjson takes it as it is, else its str() (repr() if str() raises). Never raises."""
    if value is None or isinstance(value, str | float | bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)  # orjson's integers are 64-bit
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return value
    except Exception:
        pass
    for render in (str, repr):
        try:
            return render(value)
        except Exception:  # a __str__ that raises must not lose the log line
            continue
    return f"<unprintable {type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: the base keys, then the record's `extra=` fields (ids included) as they are."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = f"{type(exc).__name__}: {exc}"
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        for key in ID_FIELDS:  # the ids first, so a reader's eye finds them at the same place
            if key in record.__dict__:
                out[key] = _jsonable(record.__dict__[key])
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key in ID_FIELDS or key.startswith("_"):
                continue
            out[f"{key}_" if key in BASE_KEYS else key] = _jsonable(value)
        try:
            return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # text orjson refuses (a lone surrogate from a hostile message): escaped, not lost
            return json.dumps(out, default=str)


CONSOLE_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `fmt` ("console" or "json") to `stream` (stderr), with the message ids filter.

    The console format is unchanged by the ids: its lines already name the post they are about in short form
    (`post=3f2a1c`), and a terminal is read by a person; the JSON lines carry the full ids for machines."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(CONSOLE_FORMAT, "%H:%M:%S"))
    handler.addFilter(MessageIdsFilter())
    return handler


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Installs one handler on the root logger; `fmt` is auto, console or json."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level.upper())
    # Neither format shows the caller's file, line, thread or process: not looked up for every line (the
    # logging HOWTO's "Optimization"; a fifth of a line's cost, and a stage logs a few lines per message).
    logging._srcfile = None  # type: ignore[attr-defined]  # documented there as the way to skip findCaller
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("httpx", "httpcore", "uvicorn.access", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
