"""One signed webhook POST and what its outcome means (the only httpx user of the alert service).

    delivered   2xx
    retry       5xx, 429, 408, 3xx (redirects are not followed), timeout, connection error;
                `Retry-After` (seconds or HTTP date) is honoured
    gave_up     any other 4xx; 410 Gone also disables the subscription (Standard Webhooks)
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.alert.signing import signed_headers
from shared.retry_after import retry_after_seconds

USER_AGENT = "watchfloor-webhooks/1"
RETRY_STATUSES = frozenset({408, 429})
Client = httpx.AsyncClient


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


def client(timeout_s: float) -> httpx.AsyncClient:
    """The client the dispatcher keeps open: no redirects followed, one timeout per attempt."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, headers={"user-agent": USER_AGENT})


async def deliver(
    client: httpx.AsyncClient, url: str, secret: str, msg_id: str, body: str,
    timestamp: datetime | None = None,
) -> DeliveryOutcome:
    """POSTs `body` signed for this attempt; never raises for a receiver's or network's failure."""
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
        return DeliveryOutcome(Outcome.RETRY, status, latency,
                               f"HTTP {status} redirect to {redact_url(where)} not followed: fix the URL")
    if status >= 500 or status in RETRY_STATUSES:
        return DeliveryOutcome(Outcome.RETRY, status, latency, f"HTTP {status} from receiver", retry_after)
    return DeliveryOutcome(Outcome.GAVE_UP, status, latency, f"HTTP {status} from receiver")
