"""Who may do what on the API: bearer tokens with a role, checked on every route.

    ingest   pushes posts to `POST /ingest` and nothing else (a bridge or scraper's token)
    viewer   ingest + reads everything (alerts, incidents, rules, silences, the event log, the audit trail)
    officer  viewer + acknowledge alerts, create, preview and expire silences
    admin    officer + rules, subscriptions and API tokens

A token is `wf_<role letter>_<32 random url-safe characters>`, shown once when created; only its sha256 is
stored. No token -> 401; an unknown or revoked token -> 401; too low a role -> 403, each with a reason a
person can act on. Bootstrap: until an admin token exists, a request without a token from the loopback
interface acts as an anonymous admin, so a fresh `watchfloor up` works for a newcomer on their own machine; the
first admin token (`watchfloor token add NAME --role admin`) closes the API to everyone without one. A bridge's
ingest token or a wall screen's viewer token made first does not lock its admin out.

Tokens travel only in the `Authorization` header, never in a URL (URLs end up in logs, proxies and browser
history). The console's event stream, which EventSource opens without headers, presents a ticket instead: a
random single-use string that `POST /api/alerts/stream/ticket` hands to a caller for 60 s, kept in this
process's memory (the console and its API are one process).
"""

import hashlib
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import store_access
from shared.db import session_scope
from shared.errors import ReasonError

logger = logging.getLogger(__name__)

ROLES = ("ingest", "viewer", "officer", "admin")
ROLE_LETTER = {"ingest": "i", "viewer": "v", "officer": "o", "admin": "a"}
ANONYMOUS = "anonymous@loopback"
TOKEN_PREFIX_LEN = 12
LAST_USED_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token: a console polling every second must not turn
every read into a write."""
TICKET_TTL_S = 60.0
MAX_TICKETS = 10_000
OPEN_MODE_RECHECK_S = 2.0
"""How long an answer of "no admin token yet" (open mode) is trusted before the database is asked again: a
query per request cost ingest a tenth of its time (issue 11). "An admin token exists" is trusted for good (it
never becomes false: revoked tokens count), so open mode ends at most this long after the first admin token."""
"""Unredeemed tickets kept at most (oldest dropped first): the ticket table cannot grow without bound."""
IN_URL = "tokens are accepted only in the `Authorization: Bearer <token>` header, never in the URL (URLs are " \
         "logged); the console's event stream uses `?ticket=` from POST /api/alerts/stream/ticket"
MISSING = "missing bearer token: create one with `watchfloor token add NAME --role viewer` and send it as " \
          "`Authorization: Bearer <token>` (the console asks for it)"


class AccessError(ReasonError):
    """A token that cannot be created or revoked. `reason` is shown as-is."""


@dataclass(frozen=True)
class NewToken:
    secret: str
    prefix: str
    digest: str


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's name is the identity written to the audit table."""

    name: str
    role: str
    token_id: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.token_id is None


def new_token(role: str) -> NewToken:
    """A fresh token for `role`; the secret is shown once and never stored."""
    check_role(role)
    secret = f"wf_{ROLE_LETTER[role]}_{secrets.token_urlsafe(24)}"
    return NewToken(secret=secret, prefix=secret[:TOKEN_PREFIX_LEN], digest=digest(secret))


def digest(secret: str) -> str:
    """The sha256 kept in `api_tokens.token_hash`."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}: choose ingest, viewer, officer or admin")
    return role


def allows(role: str, needed: str) -> bool:
    """True when `role` is at least `needed` (ingest < viewer < officer < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def refusal(role: str, needed: str, action: str) -> str:
    """The 403 reason: "role viewer may not acknowledge alerts: needs officer"."""
    return f"role {role} may not {action}: needs {needed}"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bearer(request: Request) -> str | None:
    """The token from `Authorization: Bearer …`; a token in the query string is refused (401), not read."""
    if "token" in request.query_params or "access_token" in request.query_params:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, IN_URL, headers={"WWW-Authenticate": "Bearer"})
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class RedactTokens(logging.Filter):
    """Masks `token=…` and `ticket=…` in access-log lines: a refused token in a URL is still a secret."""

    PATTERN = re.compile(r"((?:access_)?token=|ticket=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        return True


def redact_access_log() -> None:
    """Installs RedactTokens on uvicorn's access logger (once)."""
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access_log.filters):
        access_log.addFilter(RedactTokens())


class Access:
    """Builds FastAPI dependencies: `Depends(access.require("officer", "acknowledge alerts"))` gives a Caller."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._warned_open = False
        self._tickets: dict[str, tuple[Caller, float]] = {}
        self._open_until = 0.0  # time.monotonic() until which open mode is taken as still on
        self._closed = False  # an admin token exists: open mode is over for good

    async def _open_mode(self) -> bool:
        """True while no admin token exists; asked of the database at most every OPEN_MODE_RECHECK_S."""
        if self._closed:
            return False
        if time.monotonic() < self._open_until:
            return True
        async with session_scope(self.sessions) as session:
            if await store_access.any_admin_token(session):
                self._closed = True
                return False
        self._open_until = time.monotonic() + OPEN_MODE_RECHECK_S
        return True

    def issue_ticket(self, caller: Caller) -> str:
        """A single-use ticket standing for `caller` for TICKET_TTL_S seconds (for EventSource)."""
        now = time.monotonic()
        for key in [k for k, (_, until) in self._tickets.items() if until <= now]:
            del self._tickets[key]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (caller, now + TICKET_TTL_S)
        return ticket

    def redeem_ticket(self, ticket: str) -> Caller:
        """The caller a ticket stands for; 401 if it is unknown, used or expired."""
        caller, until = self._tickets.pop(ticket, (None, 0.0))
        if caller is None or until <= time.monotonic():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown, used or expired stream ticket: get a new "
                                "one from POST /api/alerts/stream/ticket", headers={"WWW-Authenticate": "Bearer"})
        return caller

    async def caller(self, request: Request) -> Caller:
        """The caller of this request, or HTTP 401 with the reason."""
        token = bearer(request)
        if token is None and request.headers.get("authorization"):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "malformed Authorization header: send "
                                "`Authorization: Bearer <token>`", headers={"WWW-Authenticate": "Bearer"})
        if token is None:
            host = request.client.host if request.client else None
            if is_loopback(host) and await self._open_mode():
                if not self._warned_open:
                    self._warned_open = True
                    logger.warning("API open: no admin token exists yet, so requests from loopback act as "
                                   "admin; create one with `watchfloor token add NAME --role admin`")
                return Caller(name=ANONYMOUS, role="admin")
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, MISSING, headers={"WWW-Authenticate": "Bearer"})
        async with session_scope(self.sessions) as session:
            row = await store_access.token_by_digest(session, digest(token))
            if row is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token: check it was copied whole, or "
                                    "create one with `watchfloor token add NAME --role viewer`",
                                    headers={"WWW-Authenticate": "Bearer"})
            if row.revoked_at is not None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                                    f"token {row.prefix}… ({row.name}) was revoked at "
                                    f"{row.revoked_at.isoformat(timespec='seconds')}: ask an admin for a new one",
                                    headers={"WWW-Authenticate": "Bearer"})
            await store_access.touch(session, row, every=LAST_USED_EVERY)
            return Caller(name=row.name, role=row.role, token_id=row.id)

    async def still_valid(self, caller: Caller) -> bool:
        """False once the caller's token is revoked (or, for the anonymous loopback admin, once a token
        exists): long-lived responses such as the event stream check it on every heartbeat."""
        async with self.sessions() as session:
            if caller.token_id is None:
                return not await store_access.any_admin_token(session)
            row = await store_access.token_by_id(session, caller.token_id)
            return row is not None and row.revoked_at is None

    def require(self, needed: str, action: str) -> Callable[[Request], Awaitable[Caller]]:
        """A dependency: the Caller if its role is at least `needed`, else 401 or 403 with the reason."""
        check_role(needed)

        async def dependency(request: Request) -> Caller:
            caller = await self.caller(request)
            if not allows(caller.role, needed):
                raise HTTPException(status.HTTP_403_FORBIDDEN, refusal(caller.role, needed, action))
            return caller

        return dependency

