"""fetch_feed against a real HTTP server: conditional GET, limits, and reasons a person can act on."""

import gzip
import socket
from collections.abc import AsyncIterator

import pytest

from services.ingest.fetch import FeedFetchError, HttpClient, fetch_feed, make_client
from services.ingest.settings import IngestSettings
from tests.ingest.conftest import feed_bytes
from tests.servers import FeedServer

SETTINGS = IngestSettings(fetch_timeout_seconds=0.5, max_body_bytes=4096, max_redirects=2)
ETAG = '"v1-abc"'
MODIFIED = "Mon, 23 Nov 2026 09:40:00 GMT"


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with make_client(SETTINGS) as http:
        yield http


async def fetch(client: HttpClient, url: str, etag: str | None = None, modified: str | None = None):
    return await fetch_feed(client, url, etag, modified, SETTINGS)


async def test_conditional_get_sends_both_validators_and_304_has_no_body(
    client: HttpClient, feed_server: FeedServer
) -> None:
    url = feed_server.route("/rss", feed_bytes("sahel_fr_ar.rss.xml"),
                            headers={"ETag": ETAG, "Last-Modified": MODIFIED})
    first = await fetch(client, url)
    assert first.status == 200 and first.body == feed_bytes("sahel_fr_ar.rss.xml")
    assert (first.etag, first.last_modified) == (ETAG, MODIFIED)
    again = await fetch(client, url, first.etag, first.last_modified)
    assert again.not_modified and again.body is None and again.status == 304
    sent = feed_server.hits("/rss")[1].headers
    assert sent["if-none-match"] == ETAG and sent["if-modified-since"] == MODIFIED
    assert "if-none-match" not in feed_server.hits("/rss")[0].headers
    assert sent["user-agent"].startswith("watchfloor/")


async def test_last_modified_alone_gives_304(client: HttpClient, feed_server: FeedServer) -> None:
    url = feed_server.route("/atom", feed_bytes("iswap_borno.atom.xml"), headers={"Last-Modified": MODIFIED})
    first = await fetch(client, url)
    assert first.etag is None
    assert (await fetch(client, url, None, first.last_modified)).not_modified


async def test_redirect_is_followed_and_final_url_reported(client: HttpClient, feed_server: FeedServer) -> None:
    new = feed_server.route("/new.xml", feed_bytes("iswap_borno.atom.xml"))
    old = feed_server.route("/old.xml", b"", status=301, headers={"Location": new})
    result = await fetch(client, old)
    assert result.url == new and result.body == feed_bytes("iswap_borno.atom.xml")


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retryable", "retry_after"),
    [
        (404, {}, "HTTP 404 Not Found", False, None),
        (410, {}, "HTTP 410 Gone", False, None),
        (500, {}, "HTTP 500 Internal Server Error", True, None),
        (429, {"Retry-After": "120"}, "rate limited, retry after 120 s", True, 120),
        (503, {"Retry-After": "3600"}, "HTTP 503 Service Unavailable, retry after 3600 s", True, 3600),
        (429, {}, "rate limited (HTTP 429)", True, None),
    ],
    ids=["404 permanent", "410 permanent", "500 transient", "429 honours Retry-After",
         "503 honours Retry-After (RFC 9110 10.2.3)", "429 without Retry-After"],
)
async def test_http_errors_have_reasons(
    client: HttpClient, feed_server: FeedServer, status: int, headers: dict, reason: str, retryable: bool,
    retry_after: float | None,
) -> None:
    url = feed_server.route("/x", b"no", status=status, headers=headers, content_type="text/plain")
    with pytest.raises(FeedFetchError) as err:
        await fetch(client, url)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert err.value.url == url


async def test_retry_after_as_http_date(client: HttpClient, feed_server: FeedServer) -> None:
    url = feed_server.route("/x", b"", status=429, headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    with pytest.raises(FeedFetchError) as err:
        await fetch(client, url)
    assert err.value.retry_after is not None and err.value.retry_after > 86400


async def test_body_over_the_cap_is_refused(client: HttpClient, feed_server: FeedServer) -> None:
    url = feed_server.route("/big", b"<rss>" + b"x" * 5000 + b"</rss>")
    with pytest.raises(FeedFetchError, match="body over 4096 bytes") as err:
        await fetch(client, url)
    assert not err.value.retryable


async def test_compressed_body_is_capped_after_decompression(client: HttpClient, feed_server: FeedServer) -> None:
    bomb = gzip.compress(b" " * 200_000)  # ~200 bytes on the wire, 200 kB inflated
    url = feed_server.route("/gz", bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FeedFetchError, match=r"^.*: body over 4096 bytes$"):
        await fetch(client, url)


async def test_slow_server_times_out(client: HttpClient, feed_server: FeedServer) -> None:
    url = feed_server.route("/slow", feed_bytes("sahel_fr_ar.rss.xml"), delay=1.5)
    with pytest.raises(FeedFetchError) as err:
        await fetch(client, url)
    assert err.value.reason == "timed out after 0.5 s" and err.value.retryable


async def test_connection_refused(client: HttpClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FeedFetchError) as err:
        await fetch(client, f"http://127.0.0.1:{port}/rss")
    assert err.value.reason == "connection refused" and err.value.retryable


async def test_redirect_loop_stops(client: HttpClient, feed_server: FeedServer) -> None:
    url = feed_server.route("/loop", b"", status=302, headers={"Location": feed_server.base_url + "/loop"})
    with pytest.raises(FeedFetchError) as err:
        await fetch(client, url)
    assert err.value.reason == "more than 2 redirects" and not err.value.retryable
