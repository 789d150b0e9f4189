"""Source kinds beside feeds: one adapter module per platform, each "fetch a page -> entries + new cursor".

    `source add telegram:CHANNEL`, `mastodon:@user@host`, `bluesky:HANDLE`, `gdelt:QUERY`
        ─▶ parse_address ─▶ Address(kind, handle, url, id)
    Poller, a source of kind k ─▶ KINDS[k].poll(client, handle, cursor, validators, settings) ─▶ KindPage

The scheduler, backoff, health and outbox are the feed poller's; an adapter only knows its platform: how
an address is written, which URLs to GET (through fetch.py, so through the SSRF guard), how to read the
answer, and which HTTP outcomes mean what to an operator. Bluesky and GDELT are each a module and an entry
in KINDS.
"""

import re
from dataclasses import dataclass

from services.ingest.sources import bluesky, gdelt, mastodon, telegram
from services.ingest.sources.kind import KindPage, SourceKind
from shared.errors import ReasonError


class AddressError(ReasonError):
    """An address names a kind but is malformed ("telegram:bad name!"). `reason` says how to write it."""


@dataclass(frozen=True)
class Address:
    """A platform source as `source add` stores it: `handle` is what the adapter polls, `url` its public page."""

    kind: str
    handle: str
    url: str
    source_id: str
    name: str


__all__ = ["KINDS", "Address", "AddressError", "KindPage", "SourceKind", "parse_address"]

KINDS: dict[str, SourceKind] = {kind.name: kind for kind in (telegram.KIND, mastodon.KIND, bluesky.KIND, gdelt.KIND)}


def parse_address(text: str) -> Address | None:
    """The platform source `text` names, or None if it is a plain feed URL. Raises AddressError if it names a
    kind but is malformed."""
    for kind in KINDS.values():
        try:
            found = kind.address(text)
        except ValueError as exc:
            raise AddressError(str(exc)) from exc
        if found is not None:
            handle, url = found
            tail = re.sub(r"[^a-z0-9._]+", "-", handle.lower().replace("#", "tag-")).strip("-")
            label = getattr(kind, "label", None)  # a kind whose handle is no account name words its own
            name = label(handle) if label else handle if handle[:1] in ("@", "#") else f"@{handle}"
            return Address(kind=kind.name, handle=handle, url=url, source_id=f"{kind.name}-{tail}"[:64], name=name)
    return None
