"""Telegram channels through t.me's public web preview (`/s/CHANNEL`): no account, no key.

The preview lists a channel's latest ~20 messages, newest last; `?before=ID` gives the ones before ID. Each
message is a `div.tgme_widget_message` with `data-post="channel/123"`; its text (a photo's or video's caption
too) is `.tgme_widget_message_text`, its time `time[datetime]`, a forward's origin
`.tgme_widget_message_forwarded_from_name`, and "edited" in `.tgme_widget_message_meta` when it was edited.
The cursor is the highest message id seen. What t.me answers, as ops should read it:

    200 with messages                  posts (newer than the cursor) and possible edits (at or before it)
    redirect away from /s/, or a page  "no public preview": the channel turned it off, is private or is gone
      without a message list
    404                                the channel does not exist (deleted or renamed)
    429                                rate limited: retried after Retry-After
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from services.ingest.fetch import FeedFetchError, HttpClient, fetch_feed
from services.ingest.parse import Entry
from services.ingest.settings import IngestSettings
from services.ingest.sources.kind import KindPage

PUBLIC = "https://t.me"  # post URLs and guids always name t.me, whatever mirror is polled
_CHANNEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")  # Telegram usernames: 5-32 chars; a few old ones 4
_HOSTS = {"t.me", "www.t.me", "telegram.me", "www.telegram.me"}
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\s*\n\s*")


# -- addresses ----------------------------------------------------------------------------------------------

def _checked(channel: str, written: str) -> str:
    if not _CHANNEL.match(channel):
        raise ValueError(
            f"{written!r} is not a Telegram channel: its name (as in t.me/NAME) has 4-32 letters, digits or"
            " underscores and starts with a letter, e.g. telegram:sahel_relay"
        )
    return channel


def channel_of(text: str) -> str | None:
    """The channel `text` names (`telegram:NAME`, `telegram:@NAME`, `https://t.me/NAME`, `https://t.me/s/NAME`,
    a message link), or None if it is not a Telegram address. Raises ValueError if it is one but malformed."""
    written = text.strip()
    if written.lower().startswith("telegram:"):
        return _checked(written[len("telegram:"):].strip().lstrip("@"), written)
    try:
        parts = urlsplit(written if "://" in written else f"https://{written}")
    except ValueError:
        return None
    if (parts.hostname or "").lower() not in _HOSTS:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["s"]:
        segments = segments[1:]
    if not segments:
        raise ValueError(f"{written!r} names no channel; write https://t.me/NAME or telegram:NAME")
    return _checked(segments[0].lstrip("@"), written)


# -- the page -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    text: str
    published_at: datetime | None
    forwarded_from: str | None = None  # the original's t.me link, else its author's name
    links: tuple[str, ...] = ()
    edited: bool = False


@dataclass(frozen=True)
class Preview:
    """A parsed `/s/CHANNEL` page; `listed` is False when it has no message list (preview off)."""

    messages: list[Message]
    listed: bool


def _text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    for br in node.css("br"):
        br.replace_with("\n")
    text = _SPACES.sub(" ", node.text(deep=True))
    return _BLANK_LINES.sub("\n", text).strip()


def _when(node: LexborNode) -> datetime | None:
    stamp = node.css_first(".tgme_widget_message_date time[datetime]") or node.css_first("time[datetime]")
    value = stamp.attributes.get("datetime") if stamp is not None else None
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_preview(body: bytes, channel: str, base_url: str = PUBLIC) -> Preview:
    """Messages of one preview page, oldest first, with text (captions included); pure. Messages of another
    channel (a page embedding one) and messages with neither text nor links (a sticker) are left out."""
    tree = LexborHTMLParser(body.decode("utf-8", errors="replace"))
    listed = tree.css_first(".tgme_channel_history") is not None
    messages: dict[int, Message] = {}
    for node in tree.css("div.tgme_widget_message[data-post]"):
        listed = True
        owner, _, number = (node.attributes.get("data-post") or "").rpartition("/")
        if not number.isdigit() or owner.lower() != channel.lower():
            continue
        bubble = node.css_first(".tgme_widget_message_bubble") or node
        parts = [_text(t) for t in bubble.css(".tgme_widget_message_bubble > .tgme_widget_message_text")]
        if not parts:  # no bubble wrapper: take the message's own text, never a quoted reply's
            parts = [_text(t) for t in node.css(".tgme_widget_message_text")
                     if "js-message_reply_text" not in (t.attributes.get("class") or "")][:1]
        preview = bubble.css_first(".tgme_widget_message_link_preview")
        links = [urljoin(base_url, a.attributes.get("href") or "")
                 for t in bubble.css(".tgme_widget_message_bubble > .tgme_widget_message_text")
                 for a in t.css("a[href]")]
        if preview is not None:
            links.append(preview.attributes.get("href") or "")
            parts.append(_text(preview.css_first(".link_preview_title")))
        text = "\n".join(p for p in parts if p)
        links = [link for link in dict.fromkeys(links) if link.startswith(("http://", "https://"))]
        forwarded = node.css_first(".tgme_widget_message_forwarded_from_name")
        origin = None
        if forwarded is not None:
            origin = forwarded.attributes.get("href") or _text(forwarded) or None
        meta = node.css_first(".tgme_widget_message_meta")
        edited = meta is not None and "edited" in meta.text(deep=True).lower()
        if not text and not links:
            continue
        messages[int(number)] = Message(
            id=int(number), channel=owner, text=text, published_at=_when(node), forwarded_from=origin,
            links=tuple(links), edited=edited,
        )
    return Preview(messages=[messages[k] for k in sorted(messages)], listed=listed)


def to_entry(message: Message) -> Entry:
    """guid `telegram:CHANNEL/ID`, link `https://t.me/CHANNEL/ID`: the post's identity whatever mirror served it."""
    text = message.text
    extra = [link for link in message.links if link not in text]
    if extra:
        text = f"{text}\n{' '.join(extra)}".strip()
    return Entry(
        guid=f"telegram:{message.channel}/{message.id}", link=f"{PUBLIC}/{message.channel}/{message.id}",
        title="", text=text, published_at=message.published_at, forwarded_from=message.forwarded_from,
    )


# -- polling ------------------------------------------------------------------------------------------------

def _reason(exc: FeedFetchError, channel: str) -> FeedFetchError:
    """t.me's HTTP outcomes, worded for the operator of a Telegram source."""
    if exc.status in (404, 410):
        reason = (f"t.me has no channel @{channel} (HTTP {exc.status}): it was deleted or renamed; find its new"
                  f" name, or `watchfloor source remove telegram-{channel.lower()}`")
    elif exc.status == 429:
        after = f", retrying after {exc.retry_after:.0f} s" if exc.retry_after is not None else ""
        reason = f"t.me rate limited the preview of @{channel} (HTTP 429){after}; poll t.me sources less often"
    else:
        return exc
    return FeedFetchError(exc.url, reason, retryable=exc.retryable, retry_after=exc.retry_after, status=exc.status)


def _no_preview(url: str, channel: str, landed: str | None = None) -> FeedFetchError:
    where = f" (sent to {landed})" if landed else ""
    return FeedFetchError(
        url, f"t.me shows no public preview for @{channel}{where}: the channel turned it off, is private or was"
        f" deleted; check {PUBLIC}/s/{channel} in a browser", retryable=False,
    )


class TelegramKind:
    name = "telegram"

    def address(self, text: str) -> tuple[str, str] | None:
        channel = channel_of(text)
        return None if channel is None else (channel, f"{PUBLIC}/s/{channel}")

    def host_url(self, handle: str, settings: IngestSettings) -> str:
        return settings.telegram_base_url

    async def _page(self, client: HttpClient, channel: str, before: int | None, etag: str | None,
                    last_modified: str | None, settings: IngestSettings) -> tuple[Preview | None, str | None,
                                                                                  str | None]:
        base = settings.telegram_base_url.rstrip("/")
        url = f"{base}/s/{channel}" + (f"?before={before}" if before is not None else "")
        try:
            result = await fetch_feed(client, url, etag, last_modified, settings)
        except FeedFetchError as exc:
            raise _reason(exc, channel) from exc
        if result.body is None:
            return None, result.etag, result.last_modified
        landed = urlsplit(result.url).path.rstrip("/")
        if landed.lower() != f"/s/{channel}".lower():  # t.me sends a channel without a preview to its page
            raise _no_preview(url, channel, landed or "/")
        preview = parse_preview(result.body, channel)
        if not preview.listed:
            raise _no_preview(url, channel)
        return preview, result.etag, result.last_modified

    async def poll(self, client: HttpClient, handle: str, cursor: str | None, etag: str | None,
                   last_modified: str | None, settings: IngestSettings) -> KindPage:
        """The newest page; then, while every message on it is past the cursor (a first poll, or more new
        messages than a page), older pages with `?before=`: up to `telegram_backfill_messages` on a first poll,
        `max_entries_per_poll` later. Messages at or before the cursor come back as `seen` (edits). Only the
        newest page's failure fails the poll; an older page's ends the reading back."""
        last = int(cursor) if cursor and cursor.isdigit() else None
        limit = settings.telegram_backfill_messages if last is None else settings.max_entries_per_poll
        first, etag, last_modified = await self._page(client, handle, None, etag, last_modified, settings)
        if first is None:
            return KindPage(new=[], cursor=cursor, etag=etag, last_modified=last_modified, not_modified=True)
        found = {m.id: m for m in first.messages}
        requests = 1
        while found and len(found) < limit and (last is None or min(found) > last + 1) and requests < 100:
            requests += 1
            try:
                older, _, _ = await self._page(client, handle, min(found), None, None, settings)
            except FeedFetchError:
                break  # what the newest page gave is still news: keep it, read no further back this time
            fresh = [m for m in older.messages if m.id < min(found)] if older is not None else []
            if not fresh:
                break
            found.update((m.id, m) for m in fresh)
        ordered = [found[k] for k in sorted(found)]
        new = [m for m in ordered if last is None or m.id > last]
        if last is None:
            new = new[-max(limit, len(first.messages)):]  # the whole newest page, and back up to the limit
        seen = [m for m in ordered if last is not None and m.id <= last]
        newest = max([last or 0, *found])
        return KindPage(
            new=[to_entry(m) for m in new], seen=[to_entry(m) for m in seen],
            cursor=str(newest) if newest else cursor, etag=etag, last_modified=last_modified, requests=requests,
        )


KIND = TelegramKind()
