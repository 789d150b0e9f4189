"""Mastodon accounts and hashtags through an instance's public REST API: no account, no key.

    mastodon:@user@instance   GET /api/v1/accounts/lookup?acct=user, then /api/v1/accounts/ID/statuses
    mastodon:#tag@instance    GET /api/v1/timelines/tag/TAG

Both take `min_id`: the statuses just after it, so a source that fell behind catches up a page per poll
and never skips one. The cursor is the newest status id (for an account, "ACCOUNT_ID:STATUS_ID", so the
account is looked up once). A boost is read as the post it boosts, with `forwarded_from` its URL. Edits
are not followed (`min_id` never returns an older status). What instances answer, as ops should read it:

    404 / 410      no such account (deleted, moved, misspelled) or suspended
    401 / 403      the instance requires sign-in to read it (authorized fetch, limited federation)
    429            rate limited: retried after Retry-After
    not JSON       not a Mastodon API at that address
"""

import re
from typing import Any
from urllib.parse import quote

from services.ingest.fetch import FeedFetchError, HttpClient
from services.ingest.parse import Entry, FeedParseError, html_to_text
from services.ingest.settings import IngestSettings
from services.ingest.sources.kind import KindPage, get, iso_time, json_of, retrying, reworded
from shared.language import language

_ACCOUNT = re.compile(r"^@?([A-Za-z0-9_]{1,30})@([A-Za-z0-9.-]+\.[A-Za-z]{2,}|localhost)$")
_TAG = re.compile(r"^#(\w{1,100})@([A-Za-z0-9.-]+\.[A-Za-z]{2,}|localhost)$")


def handle_of(text: str) -> str | None:
    """`@user@instance` or `#tag@instance` from `mastodon:…`, or None if `text` is not a Mastodon address.
    Raises ValueError if it is one but malformed."""
    written = text.strip()
    if not written.lower().startswith("mastodon:"):
        return None
    rest = written[len("mastodon:"):].strip()
    if (account := _ACCOUNT.match(rest)) is not None:
        return f"@{account[1].lower()}@{account[2].lower()}"  # usernames are case-insensitive
    if (tag := _TAG.match(rest)) is not None:
        return f"#{tag[1]}@{tag[2].lower()}"
    raise ValueError(
        f"{written!r} is not a Mastodon address: write mastodon:@user@instance (an account) or"
        " mastodon:#tag@instance (a hashtag), e.g. mastodon:@sahelwatch@mastodon.social"
    )


def _split(handle: str) -> tuple[str, str, str]:
    """(kind "@" or "#", name, instance)."""
    name, _, instance = handle[1:].partition("@")
    return handle[0], name, instance


def public_url(handle: str) -> str:
    sigil, name, instance = _split(handle)
    return f"https://{instance}/@{name}" if sigil == "@" else f"https://{instance}/tags/{name}"


# -- statuses (pure) ----------------------------------------------------------------------------------------

def _key(status_id: str) -> tuple[int, str]:
    return (len(status_id), status_id)  # ids are decimal strings (snowflakes): longer is newer


def status_entry(status: dict[str, Any]) -> Entry | None:
    """One status as an entry: a boost as the post it boosts; None for one with no id or nothing to read."""
    boosted = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
    shown = boosted or status
    parts = [html_to_text(shown.get("spoiler_text") or ""), html_to_text(shown.get("content") or "")]
    parts += [html_to_text(m.get("description") or "") for m in shown.get("media_attachments") or []
              if isinstance(m, dict)]
    text = "\n".join(p for p in parts if p)
    uri = status.get("uri") if isinstance(status.get("uri"), str) else None
    if not uri or not text:
        return None
    link = shown.get("url") or shown.get("uri")
    return Entry(
        guid=f"mastodon:{uri}", link=link if isinstance(link, str) else uri, title="", text=text,
        published_at=iso_time(shown.get("created_at")), lang=language(shown.get("language")),
        forwarded_from=(boosted.get("url") or boosted.get("uri")) if boosted else None,
    )


def parse_statuses(body: bytes) -> list[tuple[str, Entry]]:
    """(status id, entry) for each readable status, oldest first. Raises FeedParseError if the body is not a
    JSON list of statuses."""
    doc = json_of(body, "not Mastodon's API: the answer is not JSON (is the instance a Mastodon server?)")
    if not isinstance(doc, list):
        raise FeedParseError("not Mastodon's API: expected a list of statuses")
    found = []
    for status in doc:
        if not isinstance(status, dict) or not isinstance(status.get("id"), str) or not status["id"].isdigit():
            continue
        entry = status_entry(status)
        if entry is not None:
            found.append((status["id"], entry))
    return sorted(found, key=lambda pair: _key(pair[0]))


# -- polling ------------------------------------------------------------------------------------------------

def _reason(exc: FeedFetchError, handle: str) -> FeedFetchError:
    sigil, name, instance = _split(handle)
    what = f"@{name}" if sigil == "@" else f"the #{name} timeline"
    if exc.status in (404, 410):
        gone = "suspended or deleted" if exc.status == 410 else "deleted, moved or misspelled"
        reason = f"{instance} has no {what} (HTTP {exc.status}): {gone}; `watchfloor source list` shows the address"
    elif exc.status in (401, 403):
        reason = (f"{instance} requires sign-in to read {what} (HTTP {exc.status}): it runs in authorized-fetch or"
                  " limited mode; follow it through another instance")
    elif exc.status == 429:
        reason = f"{instance} rate limited reading {what} (HTTP 429){retrying(exc)}; poll it less often"
    else:
        return exc
    return reworded(exc, reason)


class MastodonKind:
    name = "mastodon"

    def address(self, text: str) -> tuple[str, str] | None:
        handle = handle_of(text)
        return None if handle is None else (handle, public_url(handle))

    def host_url(self, handle: str, settings: IngestSettings) -> str:
        return settings.mastodon_base_url or f"https://{_split(handle)[2]}"

    async def _get(self, client: HttpClient, handle: str, path: str, etag: str | None, last_modified: str | None,
                   settings: IngestSettings) -> tuple[bytes | None, str | None, str | None]:
        url = self.host_url(handle, settings).rstrip("/") + path
        result = await get(client, url, etag, last_modified, settings, lambda exc: _reason(exc, handle))
        return result.body, result.etag, result.last_modified

    async def poll(self, client: HttpClient, handle: str, cursor: str | None, etag: str | None,
                   last_modified: str | None, settings: IngestSettings) -> KindPage:
        """The statuses after the cursor (the newest `mastodon_backfill_statuses` on a first poll)."""
        sigil, name, _instance = _split(handle)
        account, _, last = (cursor or "").rpartition(":") if sigil == "@" else ("", "", cursor or "")
        requests = 0
        if sigil == "@" and not account:
            body, _, _ = await self._get(client, handle, f"/api/v1/accounts/lookup?acct={quote(name)}", None, None,
                                         settings)
            requests += 1
            found = json_of(body, "not Mastodon's API: the account lookup is not JSON")
            if not isinstance(found, dict) or not str(found.get("id", "")).isdigit():
                raise FeedParseError(f"not Mastodon's API: the lookup of @{name} gave no account id")
            account = str(found["id"])
        limit = 40 if last else settings.mastodon_backfill_statuses
        query = f"?limit={limit}" + (f"&min_id={last}" if last else "")
        path = (f"/api/v1/accounts/{account}/statuses" if sigil == "@" else f"/api/v1/timelines/tag/{quote(name)}")
        body, etag, last_modified = await self._get(client, handle, path + query, etag, last_modified, settings)
        requests += 1
        prefix = f"{account}:" if sigil == "@" else ""
        if body is None:
            return KindPage(new=[], cursor=f"{prefix}{last}", etag=etag, last_modified=last_modified,
                            not_modified=True, requests=requests)
        statuses = [(sid, e) for sid, e in parse_statuses(body) if not last or _key(sid) > _key(last)]
        newest = max([last, *(sid for sid, _ in statuses)], key=_key) if (last or statuses) else ""
        return KindPage(new=[e for _, e in statuses], cursor=f"{prefix}{newest}", etag=etag,
                        last_modified=last_modified, requests=requests)


KIND = MastodonKind()
