"""Fetching a feed over HTTP: the only httpx user in ingest.

One conditional GET (If-None-Match / If-Modified-Since) with a whole-fetch timeout, a redirect limit and a
body cap. Redirects are followed here, hop by hop, so each target is checked by the SSRF guard before it is
requested; the client's transport checks the resolved address again at connect (shared/urlguard.py).
Every way it can go wrong becomes one `FeedFetchError` whose `reason` is shown to ops as-is:

    FeedFetchError(url, reason, retryable, retry_after)
      retryable=True    timeouts, connection errors, HTTP 5xx, 408, 429 (Retry-After honoured on 429/503)
      retryable=False   HTTP 4xx, too many redirects, body over the cap, not an http(s) URL,
                        an address the SSRF guard refuses ("redirect to http://127.0.0.2/ refused: …")
"""

import asyncio
import contextlib
import errno
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

from services.ingest.settings import IngestSettings
from shared.errors import ReasonError
from shared.retry_after import retry_after_seconds
from shared.urlguard import GuardedTransport, UrlPolicy, UrlRefused, check_address, check_url_syntax, literal_ip, shown


class FeedFetchError(ReasonError):
    """The source could not be fetched. `reason` is shown to ops as-is; `retryable` drives backoff."""

    def __init__(self, url: str, reason: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        Exception.__init__(self, f"{url}: {reason}")
        self.url, self.reason, self.retryable, self.retry_after = url, reason, retryable, retry_after
        self.status = status  # the HTTP status that caused it, if any: a platform adapter words its own reason


@dataclass(frozen=True)
class FetchResult:
    """A fetched feed; `body` is None when the server answered 304 Not Modified."""

    url: str
    status: int
    body: bytes | None
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None
    elapsed_ms: float

    @property
    def not_modified(self) -> bool:
        return self.body is None


HttpClient = httpx.AsyncClient
"""The client type other ingest modules hold without importing httpx themselves."""


def make_client(settings: IngestSettings) -> HttpClient:
    """One client per poller: connection reuse across polls of the same host. Redirects are followed by
    `fetch_feed`, hop by hop; every connection goes through the SSRF guard."""
    return httpx.AsyncClient(
        transport=GuardedTransport(settings.url_policy),
        follow_redirects=False,
        timeout=httpx.Timeout(settings.fetch_timeout_seconds),
        headers={
            "User-Agent": settings.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
            "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5",
        },
    )


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def _status_error(url: str, response: httpx.Response) -> FeedFetchError:
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason_phrase or "error"
    label = f"HTTP {status} {phrase}"
    if status in (429, 503):
        delay = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
        if status == 429:
            reason = f"rate limited, retry after {delay:.0f} s" if delay is not None else "rate limited (HTTP 429)"
        else:
            reason = f"{label}, retry after {delay:.0f} s" if delay is not None else label
        return FeedFetchError(url, reason, retryable=True, retry_after=delay, status=status)
    return FeedFetchError(url, label, retryable=status >= 500 or status == 408, status=status)


def _errnos(exc: BaseException) -> set[int]:
    found: set[int] = set()
    seen: BaseException | None = exc
    while seen is not None and len(found) < 10:
        if isinstance(seen, OSError) and seen.errno is not None:
            found.add(seen.errno)
        for inner in getattr(seen, "exceptions", ()):  # anyio: "All connection attempts failed"
            found |= _errnos(inner)
        seen = seen.__cause__ or seen.__context__
    return found


def _connect_reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered or errno.ECONNREFUSED in _errnos(exc):
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return f"could not resolve host {urlsplit(str(exc.request.url)).hostname}"
    if "ssl" in lowered or "certificate" in lowered:
        return f"TLS error: {text}"
    return f"could not connect: {text}"


def _check_hop(url: str, policy: UrlPolicy) -> None:
    """The URL-level guard for one hop: http(s), and a literal IP host must be allowed (a name is checked
    where it is resolved, at connect)."""
    host, _port = check_url_syntax(url)
    ip = literal_ip(host)
    if ip is not None:
        check_address(ip, policy)


async def _send_following(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                          settings: IngestSettings) -> httpx.Response:
    """The streamed response at the end of the redirects, each hop checked by the guard before it is sent.
    The caller closes it."""
    request = client.build_request("GET", url, headers=headers)
    policy = settings.url_policy
    for hop in range(settings.max_redirects + 1):
        target = str(request.url)
        try:
            _check_hop(target, policy)
            response = await client.send(request, stream=True)
        except UrlRefused as exc:
            where = f"redirect to {shown(target)} " if hop else ""
            raise FeedFetchError(url, f"{where}{exc.reason}", retryable=False) from exc
        if response.next_request is None:
            return response
        await response.aclose()
        request = response.next_request
    raise FeedFetchError(url, f"more than {settings.max_redirects} redirects", retryable=False)


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str], settings: IngestSettings,
               started: float) -> FetchResult:
    async with contextlib.aclosing(await _send_following(client, url, headers, settings)) as response:
        if response.status_code == 304:
            return FetchResult(
                url=str(response.url), status=304, body=None, headers=dict(response.headers),
                etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"),
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )
        if not 200 <= response.status_code < 300:
            raise _status_error(url, response)
        cap = settings.max_body_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FeedFetchError(url, f"body over {_mib(cap)} ({_mib(int(declared))} declared)", retryable=False)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb hits the cap too
            size += len(chunk)
            if size > cap:
                raise FeedFetchError(url, f"body over {_mib(cap)}", retryable=False)
            chunks.append(chunk)
        return FetchResult(
            url=str(response.url), status=response.status_code, body=b"".join(chunks),
            headers=dict(response.headers), etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )


async def fetch_feed(
    client: httpx.AsyncClient, url: str, etag: str | None, last_modified: str | None, settings: IngestSettings
) -> FetchResult:
    """Fetches `url` once. Returns the body, or `not_modified` on 304; raises `FeedFetchError` otherwise.

    Both validators are sent when known (RFC 9110 §13.1.3: a server that knows ETags uses If-None-Match
    and ignores If-Modified-Since); the whole fetch, redirects and body included, has one deadline.
    """
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = time.perf_counter()
    timeout = settings.fetch_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await _get(client, url, headers, settings, started)
    except TimeoutError as exc:
        raise FeedFetchError(url, f"timed out after {_seconds(timeout)}", retryable=True) from exc
    except httpx.TimeoutException as exc:
        raise FeedFetchError(url, f"timed out after {_seconds(timeout)}", retryable=True) from exc
    except httpx.TooManyRedirects as exc:
        raise FeedFetchError(url, f"more than {settings.max_redirects} redirects", retryable=False) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FeedFetchError(url, f"not a fetchable http(s) URL: {exc}", retryable=False) from exc
    except httpx.ConnectError as exc:
        raise FeedFetchError(url, _connect_reason(exc), retryable=True) from exc
    except httpx.TransportError as exc:
        raise FeedFetchError(url, f"connection failed: {type(exc).__name__}: {exc}", retryable=True) from exc
