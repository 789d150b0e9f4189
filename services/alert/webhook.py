"""One signed webhook POST and what its outcome means (the only httpx user of the alert service).

    delivered   2xx
    retry       5xx, 429, 408, 3xx (redirects are not followed), timeout, connection error;
                `Retry-After` (seconds or HTTP date) is honoured
    gave_up     any other 4xx; 410 Gone also disables the subscription (Standard Webhooks); an address the
                SSRF guard refuses, at connect or as a redirect's target (shared/urlguard.py)
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from services.alert.signing import signed_headers
from shared.retry_after import retry_after_seconds
from shared.settings import CommonSettings
from shared.urlguard import GuardedTransport, UrlPolicy, UrlRefused, check_url_syntax, resolve_allowed, shown

USER_AGENT = "watchfloor-webhooks/1"
RETRY_STATUSES = frozenset({408, 429})


class Client(httpx.AsyncClient):
    """The dispatcher's client: redirects not followed, every connection through the SSRF guard."""

    def __init__(self, timeout_s: float, policy: UrlPolicy) -> None:
        super().__init__(transport=GuardedTransport(policy), timeout=timeout_s, follow_redirects=False,
                         headers={"user-agent": USER_AGENT})
        self.url_policy = policy


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


def client(timeout_s: float, policy: UrlPolicy | None = None) -> Client:
    """The client the dispatcher keeps open: no redirects followed, one timeout per attempt. `policy`
    defaults to the environment's WATCHFLOOR_ALLOW_PRIVATE_URLS (the dispatcher passes its settings')."""
    return Client(timeout_s, policy if policy is not None else CommonSettings().url_policy)


async def _refused_redirect(client: httpx.AsyncClient, url: str, location: str) -> str | None:
    """Why the guard would refuse the redirect's target, or None: a receiver pointing us at an internal
    address is not retried (its redirects are never followed either way)."""
    policy = getattr(client, "url_policy", None)
    if policy is None:
        return None
    target = urljoin(url, location)
    try:
        host, port = check_url_syntax(target)
        await resolve_allowed(host, port, policy)
    except UrlRefused as exc:
        return f"redirect to {shown(target)} {exc.reason}"
    except OSError:
        return None
    return None


async def deliver(
    client: httpx.AsyncClient, url: str, secret: str | Sequence[str], msg_id: str, body: str,
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

    try:
        response = await client.post(url, content=content, headers=headers)
    except httpx.TimeoutException:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), "timed out waiting for the receiver")
    except httpx.ConnectError as exc:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"cannot connect: {exc or type(exc).__name__}")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(), f"bad subscription URL: {exc}")
    except UrlRefused as exc:  # the SSRF guard, at connect: retrying cannot change the answer
        return DeliveryOutcome(Outcome.GAVE_UP, None, elapsed(), exc.reason)
    except httpx.TransportError as exc:
        return DeliveryOutcome(Outcome.RETRY, None, elapsed(), f"{type(exc).__name__}: {exc}")
    latency = elapsed()
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryOutcome(Outcome.DELIVERED, status, latency)
    if status == 410:
        return DeliveryOutcome(Outcome.GAVE_UP, status, latency, "HTTP 410 Gone from receiver: endpoint removed",
                               disable_subscription=True)
    retry_after = retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        refused = await _refused_redirect(client, url, where)
        if refused is not None:
            return DeliveryOutcome(Outcome.GAVE_UP, status, latency, refused)
        return DeliveryOutcome(Outcome.RETRY, status, latency,
                               f"HTTP {status} redirect to {redact_url(where)} not followed: fix the URL")
    if status >= 500 or status in RETRY_STATUSES:
        return DeliveryOutcome(Outcome.RETRY, status, latency, f"HTTP {status} from receiver", retry_after)
    return DeliveryOutcome(Outcome.GAVE_UP, status, latency, f"HTTP {status} from receiver")
