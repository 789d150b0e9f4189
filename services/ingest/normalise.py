"""Entries to `PostMessage`s, with a dedup key that survives feeds without guids (pure).

The key chain is Miniflux's: the entry's guid, else its canonical link (no utm_* tracking, no fragment,
host in lower case), else a hash of title and text. A guid repeated inside one feed (a misconfigured feed
giving every item the site's URL) is not unique, so those entries are keyed by guid and link together.
"""

import hashlib
from collections import Counter
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.ingest.parse import Entry
from shared.ids import post_id
from shared.language import detect_language
from shared.messages import PostMessage

_TRACKING = {"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "yclid"}
MAX_COLUMN = 2000  # posts.guid, posts.url and posts.dedup_key are VARCHAR(2000)


def canonical_link(url: str) -> str:
    """The link without what varies between two copies of one article: tracking parameters and fragment."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in _TRACKING
    ]
    netloc = parts.netloc.lower()
    if parts.scheme.lower() == "http" and netloc.endswith(":80"):
        netloc = netloc[:-3]
    elif parts.scheme.lower() == "https" and netloc.endswith(":443"):
        netloc = netloc[:-4]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def content_hash(entry: Entry) -> str:
    return "sha256:" + hashlib.sha256(f"{entry.title}\n{entry.text}".encode()).hexdigest()


def _fit(key: str) -> str:
    return key if len(key) <= MAX_COLUMN else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def dedup_key(entry: Entry) -> str:
    """What identifies this entry within its source: guid, else canonical link, else a content hash."""
    if entry.guid:
        return _fit(entry.guid)
    if entry.link:
        return _fit(canonical_link(entry.link))
    return content_hash(entry)


def dedup_keys(entries: list[Entry]) -> list[str]:
    """Keys for one feed's entries; a guid shared by several entries is disambiguated by link or content."""
    keys = [dedup_key(e) for e in entries]
    counts = Counter(keys)
    out = []
    for entry, key in zip(entries, keys, strict=True):
        if counts[key] > 1:
            tail = canonical_link(entry.link) if entry.link else content_hash(entry)
            key = _fit(f"{key}|{tail}")
        out.append(key)
    return out


def to_post(entry: Entry, source_id: str, now: datetime, key: str | None = None, *,
            lang_hint: str | None = None) -> PostMessage:
    """The message for one entry; its id is `post_id(source_id, dedup key)`, so a re-poll yields the same id.
    A post whose feed does not say its language takes its source's hint (the operator's word), else the one
    its text is written in (CLD3's guess); a declared language is kept."""
    key = key or dedup_key(entry)
    return PostMessage(
        post_id=post_id(source_id, key),
        source_id=source_id,
        url=entry.link if entry.link and len(entry.link) <= MAX_COLUMN else None,
        guid=entry.guid if entry.guid and len(entry.guid) <= MAX_COLUMN else None,
        title=entry.title,
        text=entry.text,
        lang=entry.lang[:8] if entry.lang else lang_hint or detect_language(entry.title, entry.text),
        published_at=entry.published_at,
        fetched_at=now,
        forwarded_from=entry.forwarded_from[:MAX_COLUMN] if entry.forwarded_from else None,
    )
