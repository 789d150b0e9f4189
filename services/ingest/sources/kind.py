"""What every source-kind adapter gives the poller (the seam is the consumer's, kept small)."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.ingest.fetch import FeedFetchError, FetchResult, HttpClient, fetch_feed
from services.ingest.parse import Entry, FeedParseError
from services.ingest.settings import IngestSettings


@dataclass(frozen=True)
class KindPage:
    """One poll's harvest. `new` are items past the cursor (stored if unseen); `seen` are items at or before it,
    offered so an edited one updates its post; `cursor` is the newest item now known."""

    new: list[Entry]
    seen: list[Entry] = field(default_factory=list)
    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    requests: int = 1


class SourceKind(Protocol):
    name: str

    def address(self, text: str) -> tuple[str, str] | None:
        """(handle, public url) if `text` is written as this kind's address; None if it is not this kind's.
        Raises ValueError with a reason if it is this kind's but malformed."""
        ...

    def host_url(self, handle: str, settings: IngestSettings) -> str:
        """The base URL `handle`'s polls go to (for the per-host politeness slot)."""
        ...

    async def poll(self, client: HttpClient, handle: str, cursor: str | None, etag: str | None,
                   last_modified: str | None, settings: IngestSettings) -> KindPage:
        """Fetches what is new since `cursor`; raises FeedFetchError with a reason worded for ops."""
        ...


# -- helpers every JSON-API adapter shares --------------------------------------------------------------------

def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time ("2026-12-04T10:15:00.000Z") as aware UTC; None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def reworded(exc: FeedFetchError, reason: str) -> FeedFetchError:
    """`exc` with a reason worded for ops, keeping its backoff (retryable, Retry-After, status)."""
    return FeedFetchError(exc.url, reason, retryable=exc.retryable, retry_after=exc.retry_after, status=exc.status)


def retrying(exc: FeedFetchError) -> str:
    """", retrying after N s" when the platform said when to come back."""
    return f", retrying after {exc.retry_after:.0f} s" if exc.retry_after is not None else ""


async def get(client: HttpClient, url: str, etag: str | None, last_modified: str | None, settings: IngestSettings,
              reason: Callable[[FeedFetchError], FeedFetchError]) -> FetchResult:
    """GETs `url` through fetch.py (SSRF guard, caps, validators); a failure is worded by `reason`."""
    try:
        return await fetch_feed(client, url, etag, last_modified, settings)
    except FeedFetchError as exc:
        raise reason(exc) from exc


def json_of(body: bytes | None, not_json: str) -> Any:
    """The JSON document in `body`; FeedParseError(`not_json`) if it is not JSON."""
    try:
        return json.loads(body or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedParseError(not_json) from exc
