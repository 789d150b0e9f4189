"""GDELT DOC 2.0 article-list queries: the world's news, matched by a query, no key.

    gdelt:"QUERY"   GET {base}/api/v2/doc/doc?query=QUERY&mode=artlist&format=json&maxrecords=N&sort=datedesc

Each article is a post whose text is its title (GDELT gives no body). The cursor is the newest `seendate`
(20261204T101500Z); a later poll keeps articles seen at or after it (GDELT stamps many in one 15-minute update,
so one seen at the cursor's own time may arrive a poll later; the store drops the ones it has). An empty answer
or `{}` is no articles, not an error. What GDELT answers, as ops should read it:

    200 text       the query was refused (too short a keyword, a bad operator): its message is the reason
    429            rate limited (GDELT asks for one request every 5 s): retried after Retry-After or backoff
"""

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from services.ingest.fetch import FeedFetchError, HttpClient
from services.ingest.parse import Entry, FeedParseError
from services.ingest.settings import IngestSettings
from services.ingest.sources.kind import KindPage, get, retrying, reworded
from shared.language import language

PUBLIC = "https://api.gdeltproject.org"
# GDELT's `language` and `sourcelang` are English names; the few a Sahel desk reads, as ISO 639-1
_LANGUAGES = {"english": "en", "french": "fr", "arabic": "ar", "hausa": "ha", "spanish": "es", "portuguese": "pt"}


def query_of(text: str) -> str | None:
    """The query from `gdelt:QUERY`, or None if `text` is not a GDELT address. Raises ValueError if it is one but
    not a query GDELT would take."""
    written = text.strip()
    if not written.lower().startswith("gdelt:"):
        return None
    query = " ".join(written[len("gdelt:"):].split())
    if len(query) >= 2 and query.startswith("'") and query.endswith("'"):
        query = query[1:-1].strip()
    problem = None
    if not query:
        problem = "the query is empty"
    elif len(query) > 250:
        problem = "the query is over 250 characters"
    elif query.count('"') % 2:
        problem = "a quoted phrase is not closed"
    elif query.count("(") != query.count(")"):
        problem = "its parentheses do not match"
    elif all(len(word.strip('"()-')) < 3 for word in query.split() if ":" not in word):
        problem = "GDELT needs a keyword of 3 letters or more"
    if problem:
        raise ValueError(f"{written!r} is not a GDELT query: {problem}; write gdelt:\"QUERY\" as GDELT's DOC API"
                         " takes it, e.g. gdelt:'\"car bomb\" Niamey' or gdelt:'sahel sourcecountry:niger'")
    return query


def api_path(query: str, records: int) -> str:
    params = {"query": query, "mode": "artlist", "format": "json", "maxrecords": records, "sort": "datedesc"}
    return "/api/v2/doc/doc?" + urlencode(params, quote_via=quote)


def public_url(query: str) -> str:
    return PUBLIC + "/api/v2/doc/doc?" + urlencode({"query": query, "mode": "artlist"}, quote_via=quote)


# -- articles (pure) ----------------------------------------------------------------------------------------

def seen_at(value: Any) -> datetime | None:
    """GDELT's seendate ("20261204T101500Z") as aware UTC."""
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if isinstance(value, str) else None
    except ValueError:
        return None


def article_entry(article: dict[str, Any]) -> Entry | None:
    url, title = article.get("url"), article.get("title")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(title, str) \
            or not title.strip():
        return None
    lang = article.get("language")
    lang = _LANGUAGES.get(lang.lower(), language(lang)) if isinstance(lang, str) else None
    return Entry(guid=f"gdelt:{url}", link=url, title=title.strip(), text=title.strip(),
                 published_at=seen_at(article.get("seendate")), lang=lang if lang and len(lang) == 2 else None)


def parse_articles(body: bytes | None) -> list[tuple[str, Entry]]:
    """(seendate, entry) for each readable article, oldest first; [] for an empty answer or `{}`. Raises
    FeedParseError with GDELT's own message when it refused the query (it answers 200 with plain text)."""
    text = (body or b"").decode("utf-8", "replace").strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        raise FeedParseError(f"GDELT refused the query: {' '.join(text.split())[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("articles", []), list):
        raise FeedParseError("not GDELT's DOC API: expected {\"articles\": [...]}")
    found = []
    for article in doc.get("articles", []):
        if isinstance(article, dict) and seen_at(article.get("seendate")) is not None \
                and (entry := article_entry(article)) is not None:
            found.append((article["seendate"], entry))
    return sorted(found, key=lambda pair: pair[0])


# -- polling ------------------------------------------------------------------------------------------------

def _reason(exc: FeedFetchError, query: str) -> FeedFetchError:
    if exc.status == 429:
        return reworded(exc, f"GDELT rate limited the query {query!r} (HTTP 429){retrying(exc)}; GDELT asks for"
                        " one request every 5 s: poll fewer queries or less often")
    return exc


class GdeltKind:
    name = "gdelt"

    def address(self, text: str) -> tuple[str, str] | None:
        query = query_of(text)
        return None if query is None else (query, public_url(query))

    def label(self, query: str) -> str:
        return f"gdelt:{query}"

    def host_url(self, handle: str, settings: IngestSettings) -> str:
        return settings.gdelt_base_url

    async def poll(self, client: HttpClient, handle: str, cursor: str | None, etag: str | None,
                   last_modified: str | None, settings: IngestSettings) -> KindPage:
        """The articles seen at or after the cursor, newest `gdelt_max_records` of them."""
        url = settings.gdelt_base_url.rstrip("/") + api_path(handle, settings.gdelt_max_records)
        result = await get(client, url, etag, last_modified, settings, lambda exc: _reason(exc, handle))
        if result.body is None:
            return KindPage(new=[], cursor=cursor, etag=result.etag, last_modified=result.last_modified,
                            not_modified=True)
        articles = [(s, e) for s, e in parse_articles(result.body) if not cursor or s >= cursor]
        newest = max([cursor or "", *(s for s, _ in articles)]) or None
        return KindPage(new=[e for _, e in articles], cursor=newest, etag=result.etag,
                        last_modified=result.last_modified)


KIND = GdeltKind()
