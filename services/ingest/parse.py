"""Feed bytes to entries: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed 1.x by hand (pure).

feedparser only ever sees bytes and the response headers, so it never fetches anything itself (it has no
timeout). A `bozo` feed that still yields entries is accepted with a warning; a body that is HTML, or XML so
broken that no entry comes out, raises `FeedParseError` with a reason ops can act on.
"""

import calendar
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser

from shared.errors import ReasonError
from shared.language import language


class FeedParseError(ReasonError):
    """The body is not a feed we can read. `reason` is shown to ops as-is."""


@dataclass(frozen=True)
class Entry:
    """One feed item, as text a classifier can read. `published_at` is aware UTC or None."""

    guid: str | None
    link: str | None
    title: str
    text: str
    published_at: datetime | None = None
    lang: str | None = None
    forwarded_from: str | None = None  # a platform post that forwards another: the original's link or name


@dataclass(frozen=True)
class ParsedFeed:
    entries: list[Entry]
    format: str  # rss20, atom10, json11, ...
    warning: str | None = None  # feed was not well-formed but still readable
    title: str = ""
    lang: str | None = None


# -- plain text ---------------------------------------------------------------------------------------------

_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "section", "article", "header", "footer", "figcaption", "hr", "dd", "dt",
}
_SKIP = {"script", "style", "noscript", "template", "head"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


_SPACES = re.compile(r"\s+")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment: tags and scripts dropped, entities decoded, blocks become spaces."""
    if "<" not in markup and "&" not in markup:
        return _SPACES.sub(" ", markup).strip()
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return _SPACES.sub(" ", "".join(extractor.parts)).strip()


def _plain(value: str, content_type: str | None) -> str:
    if content_type and "html" not in content_type and "xml" not in content_type:
        return _SPACES.sub(" ", value).strip()
    return html_to_text(value)


# -- sniffing -----------------------------------------------------------------------------------------------

_JSONFEED = re.compile(rb'"version"\s*:\s*"https?://jsonfeed\.org/version/1')
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def looks_like_html(body: bytes) -> bool:
    return bool(_HTML_START.match(body[:2048]))


def _is_json_feed(body: bytes, content_type: str) -> bool:
    if "feed+json" in content_type:
        return True
    head = body[:4096]
    return bool(_JSONFEED.search(head)) or ("json" in content_type and head.lstrip()[:1] == b"{")


# -- RSS / Atom ---------------------------------------------------------------------------------------------

def _when(parsed: Any) -> datetime | None:
    # feedparser's *_parsed is a struct_time already converted to UTC.
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _text_of(entry: Any) -> str:
    best = ""
    for content in entry.get("content") or []:
        text = _plain(content.get("value") or "", content.get("type"))
        if len(text) > len(best):
            best = text
    summary = entry.get("summary_detail") or {}
    summary_text = _plain(entry.get("summary") or "", summary.get("type"))
    return best if len(best) >= len(summary_text) else summary_text


def _entry_lang(entry: Any, feed_lang: str | None) -> str | None:
    candidates = [
        entry.get("language"),
        *[c.get("language") for c in entry.get("content") or []],
        (entry.get("summary_detail") or {}).get("language"),
        (entry.get("title_detail") or {}).get("language"),
    ]
    for tag in candidates:
        lang = language(tag)
        if lang:
            return lang
    return feed_lang


def _xml_reason(exc: BaseException | None) -> str:
    if exc is None:
        return "not an RSS or Atom feed (no entries found)"
    get_line = getattr(exc, "getLineNumber", None)
    get_message = getattr(exc, "getMessage", None)
    if callable(get_line) and callable(get_message):
        return f"not well-formed XML: {get_message()} at line {get_line()}"
    return f"not a readable feed: {type(exc).__name__}: {exc}"


_XML_ENCODING = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*\sencoding\s*=", re.I)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def undeclared_encoding(body: bytes, content_type: str) -> str | None:
    """The charset charset-normalizer guesses for a body that declares none and is not UTF-8, else None.

    A declared encoding stays authoritative: a charset in Content-Type, a BOM or an XML encoding declaration
    means the body is left to feedparser as it is. Only a body that declares nothing and fails to decode as
    UTF-8 (the XML default) is guessed: the legacy Windows/ISO code pages feeds still come in."""
    if "charset=" in content_type or body.startswith(_BOMS) or _XML_ENCODING.match(body[:1024]):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    return best.encoding if best is not None else None


def _parse_xml(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    response_headers = {k.lower(): v for k, v in headers.items()}
    guessed = undeclared_encoding(body, response_headers.get("content-type", "").lower())
    if guessed is not None:  # re-encoded as UTF-8 and said so, so feedparser does not read it as UTF-8/ASCII
        body = body.decode(guessed, errors="replace").encode("utf-8")
        media = response_headers.get("content-type", "").split(";")[0].strip() or "application/xml"
        response_headers["content-type"] = f"{media}; charset=utf-8"
    response_headers["content-location"] = url  # base for relative links; feedparser fetches nothing
    try:
        parsed = feedparser.parse(body, response_headers=response_headers, sanitize_html=True)
    except Exception as exc:  # feedparser raises on a few hostile inputs despite bozo (issue #599)
        raise FeedParseError(f"feed parser crashed: {type(exc).__name__}: {exc}") from exc
    feed_lang = language(parsed.feed.get("language"))
    entries: list[Entry] = []
    for item in parsed.entries:
        title = _plain(item.get("title") or "", (item.get("title_detail") or {}).get("type"))
        text = _text_of(item)
        guid = (item.get("id") or "").strip() or None
        link = (item.get("link") or "").strip() or None
        if not (title or text or guid or link):
            continue  # what the loose parser salvages from a broken tag, not an item
        entries.append(Entry(
            guid=guid, link=link, title=title, text=text,
            published_at=_when(item.get("published_parsed") or item.get("updated_parsed")),
            lang=_entry_lang(item, feed_lang),
        ))
    version = parsed.get("version") or ""
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    broken = exc is not None and hasattr(exc, "getLineNumber")  # SAX: not well-formed, as opposed to
    # CharacterEncodingOverride or NonXMLContentType, which say nothing about whether the feed is readable
    if not entries and (not version or broken):
        raise FeedParseError(_xml_reason(exc if broken or not version else None))
    warning = None
    if exc is not None:
        warning = _xml_reason(exc) if hasattr(exc, "getLineNumber") else f"{type(exc).__name__}: {exc}"
    if guessed is not None:
        warning = f"no declared encoding and not UTF-8: read as {guessed} (best guess)" + (
            f"; {warning}" if warning else "")
    return ParsedFeed(entries=entries, format=version or "unknown", warning=warning,
                      title=html_to_text(parsed.feed.get("title") or ""), lang=feed_lang)


# -- JSON Feed (https://jsonfeed.org/version/1.1) -----------------------------------------------------------

def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as exc:
        raise FeedParseError(f"JSON Feed is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise FeedParseError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/1"):
        raise FeedParseError('JSON but not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1")')
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedParseError('JSON Feed has no "items" list')
    base = doc.get("feed_url") if isinstance(doc.get("feed_url"), str) else url
    feed_lang = language(doc.get("language"))
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        raw_id = item.get("id")
        guid = str(raw_id).strip() if isinstance(raw_id, str | int) and str(raw_id).strip() else None
        link = item.get("url") or item.get("external_url")
        link = urljoin(base or url, link) if isinstance(link, str) and link.strip() else None
        title = html_to_text(item.get("title") or "") if isinstance(item.get("title"), str) else ""
        if isinstance(item.get("content_html"), str) and item["content_html"].strip():
            text = html_to_text(item["content_html"])
        elif isinstance(item.get("content_text"), str):
            text = _SPACES.sub(" ", item["content_text"]).strip()
        else:
            text = html_to_text(item.get("summary") or "") if isinstance(item.get("summary"), str) else ""
        if not (title or text or guid or link):
            continue
        entries.append(Entry(
            guid=guid, link=link, title=title, text=text,
            published_at=_iso(item.get("date_published")) or _iso(item.get("date_modified")),
            lang=language(item.get("language")) or feed_lang,
        ))
    version = str(doc["version"]).rsplit("/", 1)[-1].replace(".", "")
    title = doc.get("title") if isinstance(doc.get("title"), str) else ""
    return ParsedFeed(entries=entries, format=f"json{version}", title=html.unescape(title), lang=feed_lang)


# -- entry point --------------------------------------------------------------------------------------------

def parse_feed(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    """Entries of an RSS, Atom or JSON Feed body, in feed order. Raises `FeedParseError` if it is not a feed.

    An empty but valid feed gives no entries and no error: a quiet source is not a broken one.
    """
    content_type = _header(headers, "content-type").lower()
    if not body.strip():
        raise FeedParseError("empty body")
    if _is_json_feed(body, content_type):
        return _parse_json_feed(body, url)
    if looks_like_html(body):
        raise FeedParseError("feed returned HTML, not a feed (is the URL a web page? look for its RSS link)")
    try:
        return _parse_xml(body, url, headers)
    except FeedParseError:
        if "html" in content_type:
            raise FeedParseError(
                f"feed returned HTML ({content_type}), not a feed (is the URL a web page? look for its RSS link)"
            ) from None
        raise
