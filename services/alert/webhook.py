"""One signed webhook POST and what its outcome means (the only HTTP client of the alert service).

    delivered   2xx
    retry       5xx, 429, 408, 3xx (redirects are not followed), timeout, connection error;
                `Retry-After` (seconds or HTTP date) is honoured
    gave_up     any other 4xx; 410 Gone also disables the subscription (Standard Webhooks); an address the
                SSRF guard refuses, at connect or as a redirect's target (shared/urlguard.py)

The client is aiohttp's, not httpx's (which ingest uses): a webhook costs a quarter of the CPU (0.3-0.4 ms a
POST against 1.4-1.6 ms, measured on this machine), and at hundreds of alerts a second that is a fifth of a core.
"""

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.alert.signing import signed_headers
from shared.retry_after import retry_after_seconds
from shared.settings import CommonSettings
from shared.urlguard import (
    UrlPolicy,
    UrlRefused,
    check_address,
    check_url_syntax,
    literal_ip,
    resolve_allowed,
    shown,
)

USER_AGENT = "watchfloor-webhooks/1"
RETRY_STATUSES = frozenset({408, 429})
READ_BYTES = 65_536
"""Bytes of a receiver's answer read at most: it is not used, but read to its end, so that an answer still
being dripped is not taken for one given (and the connection can be kept)."""


class GuardedResolver(AbstractResolver):
    """Resolves a host and checks every address with the SSRF guard (`resolve_allowed`): the connection goes
    only to an address that was checked, so a name cannot rebind between the check and the connect."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = await resolve_allowed(host, port, self.policy)  # UrlRefused, or OSError if it does not resolve
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        return None


class Client:
    """The dispatcher's client: redirects not followed, every host resolved through the guard, a literal IP
    checked before the request; one connection pool, opened on first use in the running loop."""

    def __init__(self, timeout_s: float, policy: UrlPolicy) -> None:
        self.timeout_s, self.url_policy = timeout_s, policy
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.url_policy), limit=100,
                                             ttl_dns_cache=10)
            self._session = aiohttp.ClientSession(
                # per connect and per read, as httpx's: the whole attempt's deadline is the dispatcher's
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout_s,
                                                                   sock_read=self.timeout_s),
                headers={"user-agent": USER_AGENT}, trust_env=False, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class DeliveryOutcome:
    outcome: Outcome
    status_code: int | None
    latency_ms: float
    reason: str | None = None
    retry_after_s: float | None = None
    disable_subscription: bool = False


def redact_url(url: str) -> str:
    """The URL without credentials or query string (signed URLs and tokens stay out of logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _why(error: OSError) -> str:
    """"connection refused", "name or service not known"…: the system's words, without the errno."""
    if isinstance(error, socket.gaierror) or not error.errno:
        return str(error.strerror or error).lower()
    return os.strerror(error.errno).lower()


def client(timeout_s: float, policy: UrlPolicy | None = None) -> Client:
    """The client the dispatcher keeps open: no redirects followed, one timeout per attempt. `policy`
    defaults to the environment's WATCHFLOOR_ALLOW_PRIVATE_URLS (the dispatcher passes its settings')."""
    return Client(timeout_s, policy if policy is not None else CommonSettings().url_policy)


async def _refused_redirect(client: Client, url: str, location: str) -> str | None:
    """Why the guard would refuse the redirect's target, or None: a receiver pointing us at an internal
    address is not retried (its redirects are never followed either way)."""
    target = urljoin(url, location)
    try:
        host, port = check_url_syntax(target)
        await resolve_allowed(host, port, client.url_policy)
    except UrlRefused as exc:
        return f"redirect to {shown(target)} {exc.reason}"
    except OSError:
        return None
    return None


async def deliver(
    client: Client, url: str, secret: str | Sequence[str], msg_id: str, body: str,
    timestamp: datetime | None = None,
) -> DeliveryOutcome:
    """POSTs `body` signed for this attempt (once per secret, during a rotation); never raises for a receiver's
    or network's failure."""
    timestamp = timestamp or datetime.now(UTC)
    content = body.encode("utf-8")
    headers = signed_headers(body, secret, msg_id, timestamp)
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    answer: dict[str, Any] = {}
    try:
        host, _port = check_url_syntax(url)
        if (ip := literal_ip(host)) is not None:  # aiohttp connects to a literal IP without asking the resolver
            check_address(ip, client.url_policy)
        async with client.session().post(url, data=content, headers=headers, allow_redirects=False) as response:
            got = 0  # the answer is read to its end (at most READ_BYTES): a receiver still dripping it has not answered
            while got < READ_BYTES and (chunk := await response.content.read(READ_BYTES - got)):
                got += len(chunk)
            answer = {"status": response.status, "retry-after": response.headers.get("retry-after"),
                      "location": response.headers.get("location")}
    except UrlRefused as exc:  # the SSRF guard, before or at connect: retrying cannot change the answer
        return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(), exc.reason)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), "timed out waiting for the receiver")
    except aiohttp.ClientConnectorError as exc:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"cannot connect: {_why(exc.os_error)}")
    except aiohttp.InvalidURL as exc:
        return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(), f"bad subscription URL: {exc}")
    except (aiohttp.ClientError, OSError) as exc:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"{type(exc).__name__}: {exc}")
    latency = elapsed()
    status = answer["status"]
    if 200 <= status < 300:
        return DeliveryOutcome(Outcome.DELIVERED, status, latency)
    if status == 410:
        return DeliveryOutcome(Outcome.GAVE_UP, status, latency, "HTTP 410 Gone from receiver: endpoint removed",
                               disable_subscription=True)
    retry_after = retry_after_seconds(answer["retry-after"], datetime.now(UTC))
    if 300 <= status < 400:
        where = answer["location"] or "?"
        refused = await _refused_redirect(client, url, where)
        if refused is not None:
            return DeliveryOutcome(Outcome.GAVE_UP, status, latency, refused)
        return DeliveryOutcome(Outcome.RETRY, status, latency,
                               f"HTTP {status} redirect to {redact_url(where)} not followed: fix the URL")
    if status >= 500 or status in RETRY_STATUSES:
        return DeliveryOutcome(Outcome.RETRY, status, latency, f"HTTP {status} from receiver", retry_after)
    return DeliveryOutcome(Outcome.GAVE_UP, status, latency, f"HTTP {status} from receiver")
