"""What every source-kind adapter gives the poller (the seam is the consumer's, kept small)."""

from dataclasses import dataclass, field
from typing import Protocol

from services.ingest.fetch import HttpClient
from services.ingest.parse import Entry
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
