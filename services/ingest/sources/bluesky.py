"""Bluesky accounts through the public AppView: no account, no key.

    bluesky:HANDLE   GET {base}/xrpc/app.bsky.feed.getAuthorFeed?actor=HANDLE&limit=N   (newest first)

The cursor is the newest item's "INDEXED_AT|AT_URI" (a repost is ordered by when it was reposted, not by the
reposted post's own time), so a later poll publishes only what came after it. A repost is read as the post it
reposts, with `forwarded_from` that post's URL. The feed's own `cursor` pages back; it is not followed, so more
than a page of posts between two polls loses the oldest. What the AppView answers, as ops should read it:

    400            no such account (InvalidRequest "Profile not found": deleted, deactivated, misspelled) or
                   one taken down or blocking logged-out readers
    429            rate limited: retried after Retry-After (or backoff)
    not JSON       not an AppView at that address
"""

import re
from typing import Any
from urllib.parse import quote

from services.ingest.fetch import FeedFetchError, HttpClient
from services.ingest.parse import Entry, FeedParseError
from services.ingest.settings import IngestSettings
from services.ingest.sources.kind import KindPage, get, iso_time, json_of, retrying, reworded
from shared.language import language

_HANDLE = re.compile(r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_DID = re.compile(r"^did:(plc:[a-z2-7]{24}|web:[a-z0-9.-]+)$")
_PROFILE = re.compile(r"^https?://(?:www\.)?bsky\.app/profile/([^/?#]+)(?:/.*)?$", re.I)
REPOST = "app.bsky.feed.defs#reasonRepost"


def handle_of(text: str) -> str | None:
    """The handle (or DID) from `bluesky:HANDLE` or `https://bsky.app/profile/HANDLE[/post/RKEY]`, or None if
    `text` is not a Bluesky address. Raises ValueError if it is one but malformed."""
    written = text.strip()
    if written.lower().startswith("bluesky:"):
        rest = written[len("bluesky:"):].strip()
    elif (profile := _PROFILE.match(written)) is not None:
        rest = profile[1]
    else:
        return None
    handle = rest.removeprefix("@").lower()
    if _HANDLE.match(handle) or _DID.match(handle):
        return handle
    raise ValueError(
        f"{written!r} is not a Bluesky address: write bluesky:HANDLE with the full handle (a domain name),"
        " e.g. bluesky:sahelwatch.bsky.social, or https://bsky.app/profile/HANDLE"
    )


def public_url(handle: str) -> str:
    return f"https://bsky.app/profile/{handle}"


def post_url(post: dict[str, Any]) -> str | None:
    """https://bsky.app/profile/HANDLE/post/RKEY for a post view; None without an at:// URI."""
    uri = post.get("uri")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    author = post.get("author") if isinstance(post.get("author"), dict) else {}
    repo, _, rkey = uri[len("at://"):].partition("/app.bsky.feed.post/")
    who = author.get("handle") if isinstance(author.get("handle"), str) else repo
    return f"https://bsky.app/profile/{who}/post/{rkey}" if rkey else None


# -- the author feed (pure) ---------------------------------------------------------------------------------

def _order(item: dict[str, Any]) -> str:
    """When the item entered this account's feed: a repost's time, else the post's indexedAt, as "TIME|URI"."""
    post = item["post"]
    reason = item.get("reason") if isinstance(item.get("reason"), dict) else {}
    at = reason.get("indexedAt") if reason.get("$type") == REPOST else None
    at = at if isinstance(at, str) else post.get("indexedAt") if isinstance(post.get("indexedAt"), str) else ""
    return f"{at}|{post['uri']}"


def _key(order: str) -> tuple:
    at, _, uri = order.partition("|")
    when = iso_time(at)
    return (when.timestamp() if when else 0.0, at, uri)


def item_entry(item: dict[str, Any]) -> Entry | None:
    """One feed item as an entry: a repost as the post it reposts; None for one with nothing to read."""
    post = item["post"]
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    text = record.get("text").strip() if isinstance(record.get("text"), str) else ""
    url = post_url(post)
    if not text or url is None:
        return None
    reason = item.get("reason") if isinstance(item.get("reason"), dict) else {}
    reposted = reason.get("$type") == REPOST
    by = reason.get("by") if isinstance(reason.get("by"), dict) else {}
    langs = record.get("langs") if isinstance(record.get("langs"), list) else []
    guid = f"bluesky:{post['uri']}" + (f"#repost-by-{by.get('did') or by.get('handle')}" if reposted else "")
    return Entry(guid=guid, link=url, title="", text=text,
                 published_at=iso_time(record.get("createdAt")) or iso_time(post.get("indexedAt")),
                 lang=language(langs[0]) if langs else None, forwarded_from=url if reposted else None)


def parse_feed(body: bytes | None) -> list[tuple[str, Entry]]:
    """("TIME|URI" order, entry) for each readable item, oldest first. Raises FeedParseError if the body is not
    an author feed."""
    doc = json_of(body, "not Bluesky's AppView: the answer is not JSON (is the base URL an AppView?)")
    if not isinstance(doc, dict) or not isinstance(doc.get("feed"), list):
        raise FeedParseError("not Bluesky's AppView: expected an author feed ({\"feed\": [...]})")
    found = []
    for item in doc["feed"]:
        if not isinstance(item, dict) or not isinstance(item.get("post"), dict) \
                or not isinstance(item["post"].get("uri"), str):
            continue
        entry = item_entry(item)
        if entry is not None:
            found.append((_order(item), entry))
    return sorted(found, key=lambda pair: _key(pair[0]))


# -- polling ------------------------------------------------------------------------------------------------

def _reason(exc: FeedFetchError, handle: str) -> FeedFetchError:
    if exc.status == 400:
        return reworded(exc, f"Bluesky has no readable account {handle} (HTTP 400, Profile not found): deleted,"
                        " deactivated, taken down or misspelled; `watchfloor source list` shows the address")
    if exc.status in (401, 403):
        return reworded(exc, f"Bluesky will not show {handle} to logged-out readers (HTTP {exc.status});"
                        " it cannot be followed without an account")
    if exc.status == 429:
        return reworded(exc, f"Bluesky rate limited reading {handle} (HTTP 429){retrying(exc)}; poll it less often")
    return exc


class BlueskyKind:
    name = "bluesky"

    def address(self, text: str) -> tuple[str, str] | None:
        handle = handle_of(text)
        return None if handle is None else (handle, public_url(handle))

    def host_url(self, handle: str, settings: IngestSettings) -> str:
        return settings.bluesky_base_url

    async def poll(self, client: HttpClient, handle: str, cursor: str | None, etag: str | None,
                   last_modified: str | None, settings: IngestSettings) -> KindPage:
        """The author feed's items after the cursor (the newest `bluesky_backfill_posts` on a first poll)."""
        url = (f"{settings.bluesky_base_url.rstrip('/')}/xrpc/app.bsky.feed.getAuthorFeed"
               f"?actor={quote(handle, safe='.:')}&limit={settings.bluesky_backfill_posts}")
        result = await get(client, url, etag, last_modified, settings, lambda exc: _reason(exc, handle))
        if result.body is None:
            return KindPage(new=[], cursor=cursor, etag=result.etag, last_modified=result.last_modified,
                            not_modified=True)
        items = [(o, e) for o, e in parse_feed(result.body) if not cursor or _key(o) > _key(cursor)]
        newest = items[-1][0] if items else cursor
        return KindPage(new=[e for _, e in items], cursor=newest, etag=result.etag,
                        last_modified=result.last_modified)


KIND = BlueskyKind()
