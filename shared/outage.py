"""Outages of the database or Redis, reported once when they start and once when they end, per process.

Background loops, stream consumers and HTTP routes all notice the same outage. They report it to the one
`Outage` of that dependency, so an operator reads two lines ("database unavailable ...", "database back
after 42 s"), not a traceback per second. An error that is not an outage (a bug, bad data) is logged by
`LoopErrors` when it changes, with its traceback the first time only.

    unavailable(exc) ─▶ "database" | "redis" | None
    Outage.failed(exc) ─▶ ERROR once ......... Outage.ok() ─▶ INFO once, with the duration
    install_http(app) ─▶ 503 + Retry-After {"detail": "database unavailable"} instead of a 500
"""

import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy.exc
from redis import exceptions as redis_errors

logger = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
RETRY_AFTER_SECONDS = 5
"""What a 503 during an outage tells clients to wait (HTTP `Retry-After`)."""
MAX_REASON_CHARS = 300


def unavailable(exc: BaseException) -> str | None:
    """The dependency `exc` says cannot be reached ("database" or "redis"), or None for any other error.

    asyncpg lets a refused connection through as a plain ConnectionRefusedError, and redis-py wraps all of
    its own, so a bare socket error here is the database's."""
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return REDIS
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(
            exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
        ):
            return DATABASE
        return DATABASE if exc.orig is not None and _socket_error(exc.orig) else None
    if isinstance(exc, sqlalchemy.exc.TimeoutError) or _socket_error(exc):
        return DATABASE
    return None


def _socket_error(exc: BaseException) -> bool:
    # asyncio joins the failures of every address of a host name ("localhost": ::1 and 127.0.0.1) into
    # one plain OSError("Multiple exceptions: [Errno 111] Connect call failed ...").
    return isinstance(exc, ConnectionError | socket.gaierror) or (
        isinstance(exc, OSError) and "Connect call failed" in str(exc)
    )


def describe(exc: BaseException, limit: int = MAX_REASON_CHARS) -> str:
    """`Type: message` on one line, cut at `limit` characters. For a database error, the driver's own error
    without SQLAlchemy's statement and parameters (they can be long, and carry data)."""
    if isinstance(exc, sqlalchemy.exc.StatementError) and exc.orig is not None:
        exc = exc.orig
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Outage:
    """One dependency's outage as this process sees it. Whoever notices first reports it; the rest stay quiet."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None  # time.monotonic() of the first failure
        self.reason = ""

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, *, where: str = "") -> None:
        if self.since is not None:
            return
        self.since, self.reason = time.monotonic(), describe(exc)
        logger.error(
            "%s unavailable reason=%r noticed_by=%s (logged once; its end is logged too)",
            self.what, self.reason, where or "-",
            extra={"dependency": self.what, "reason": self.reason, "noticed_by": where},
        )

    def ok(self) -> None:
        if self.since is None:
            return
        seconds = time.monotonic() - self.since
        self.since, self.reason = None, ""
        logger.info("%s back after %.0f s", self.what, seconds,
                    extra={"dependency": self.what, "outage_seconds": round(seconds, 1)})


_OUTAGES: dict[str, Outage] = {}


def outage(what: str) -> Outage:
    """This process's `Outage` of `what` ("database" or "redis"). One per process, as a logger is: the
    outage is the process's, whichever loop or route meets it."""
    if what not in _OUTAGES:
        _OUTAGES[what] = Outage(what)
    return _OUTAGES[what]


def reset() -> None:
    """Forgets every outage in progress (tests run many systems in one process)."""
    _OUTAGES.clear()


class LoopErrors:
    """What a background loop does with the exception of one pass: an outage goes to its dependency's
    `Outage`; anything else is logged when it changes (traceback the first time), never once per pass."""

    def __init__(self, loop: str, log: logging.Logger, uses: Iterable[str] = (DATABASE,)) -> None:
        self.loop, self._log, self._uses = loop, log, tuple(uses)
        self._last: str | None = None

    def failed(self, exc: BaseException) -> None:
        what = unavailable(exc)
        if what is not None:
            outage(what).failed(exc, where=self.loop)
            return
        reason = describe(exc)
        if reason != self._last:
            self._log.error("%s pass failed reason=%r (retrying; logged again only if it changes)",
                            self.loop, reason, exc_info=exc, extra={"loop": self.loop, "reason": reason})
        self._last = reason

    def ok(self) -> None:
        """A pass succeeded: the dependencies it used are back, and an earlier error is over."""
        for what in self._uses:
            outage(what).ok()
        if self._last is not None:
            self._log.info("%s recovered", self.loop, extra={"loop": self.loop})
            self._last = None


def install_http(app: Any) -> None:
    """Makes `app` (FastAPI) answer 503 with `Retry-After` and a short reason while the database or Redis is
    unreachable, instead of a 500 with a traceback per request. Other errors keep their usual 500."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    async def unavailable_response(request: Request, exc: Exception) -> JSONResponse:
        what = unavailable(exc)
        if what is None:
            raise exc  # not an outage: the server's usual 500, traceback and all
        outage(what).failed(exc, where=f"{request.method} {request.url.path}")
        return JSONResponse(
            {"detail": f"{what} unavailable, retry later", "retry_after": RETRY_AFTER_SECONDS},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for kind in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, OSError,
                 redis_errors.ConnectionError, redis_errors.TimeoutError):
        app.add_exception_handler(kind, unavailable_response)
