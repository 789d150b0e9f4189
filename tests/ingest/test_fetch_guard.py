"""The SSRF guard on feed fetches: every redirect hop and every resolved address is checked, a refusal is a
non-retryable FeedFetchError whose reason ops read in the source's health. Real servers on 127.0.0.1/.2."""

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.ingest import store
from services.ingest.app import IngestService
from services.ingest.fetch import FeedFetchError, fetch_feed, make_client
from services.ingest.settings import IngestSettings
from shared.db import session_scope
from tests.ingest.conftest import feed_bytes
from tests.servers import FeedServer
from watchfloor.cli import main

FEED = feed_bytes("iswap_borno.atom.xml")
ONLY_127_0_0_1 = IngestSettings(allow_private_urls="127.0.0.1/32", fetch_timeout_seconds=2.0)


@pytest.fixture
def second_loopback() -> Iterator[str]:
    """A feed on 127.0.0.2, the address the guard refuses while only 127.0.0.1/32 is allowed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(FEED)))
            self.end_headers()
            self.wfile.write(FEED)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.2:{httpd.server_address[1]}/internal.xml"
    httpd.shutdown()
    httpd.server_close()


async def fetch(settings: IngestSettings, url: str):
    async with make_client(settings) as client:
        return await fetch_feed(client, url, None, None, settings)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("{internal}", "redirect to {internal} refused: 127.0.0.2 is a loopback address; "
                       "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.2/32 (or 1) to allow it"),
        ("http://169.254.169.254/latest/meta-data/",
         "redirect to http://169.254.169.254/latest/meta-data/ refused: 169.254.169.254 is a link-local "
         "address (cloud metadata)"),
        ("http://[::ffff:10.0.0.1]/", "(IPv4-mapped 10.0.0.1) is a private address"),
        ("file:///etc/passwd", "refused: the file: scheme is not allowed, only http and https"),
    ],
    ids=["to 127.0.0.2", "to cloud metadata", "to IPv4-mapped 10/8", "to file:"],
)
async def test_a_redirect_to_a_refused_address_is_not_followed(
    feed_server: FeedServer, second_loopback: str, target: str, reason: str
) -> None:
    start = feed_server.route("/rss", b"", status=302, headers={"Location": target.format(internal=second_loopback)})
    with pytest.raises(FeedFetchError) as err:
        await fetch(ONLY_127_0_0_1, start)
    assert reason.format(internal=second_loopback) in err.value.reason
    assert not err.value.retryable


@pytest.mark.parametrize("allow", ["1", "127.0.0.0/8"], ids=["allow 1", "allow 127/8"])
async def test_allowing_the_address_lets_the_redirect_through(
    feed_server: FeedServer, second_loopback: str, allow: str
) -> None:
    start = feed_server.route("/rss", b"", status=301, headers={"Location": second_loopback})
    result = await fetch(IngestSettings(allow_private_urls=allow), start)
    assert result.url == second_loopback and result.body == FEED


async def test_a_name_is_checked_on_the_address_it_resolves_to(feed_server: FeedServer) -> None:
    """`localhost` passes the URL check (it is a name); the guard refuses it where it is resolved, at connect."""
    url = feed_server.route("/rss", FEED).replace("127.0.0.1", "localhost")
    with pytest.raises(FeedFetchError) as err:
        await fetch(IngestSettings(allow_private_urls="", fetch_timeout_seconds=2.0), url)
    assert err.value.reason == ("refused: localhost resolves to 127.0.0.1, which is a loopback address; "
                                "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.1/32 (or 1) to allow it")
    assert not err.value.retryable
    assert feed_server.hits("/rss") == []
    assert (await fetch(ONLY_127_0_0_1, url)).body == FEED


async def test_source_health_shows_why_the_redirect_was_refused(
    service: IngestService, sessions, feed_server: FeedServer, second_loopback: str, db_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert service.settings.url_policy.allowed  # conftest: 127.0.0.1/32 only
    start = feed_server.route("/moved.xml", b"", status=307, headers={"Location": second_loopback})
    async with session_scope(sessions) as s:
        await store.add_source(s, start, name="moved")
    report = await service.poll_once("moved")
    expected = (f"redirect to {second_loopback} refused: 127.0.0.2 is a loopback address; "
                "set WATCHFLOOR_ALLOW_PRIVATE_URLS=127.0.0.2/32 (or 1) to allow it")
    assert report.error == expected

    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    listed = await asyncio.to_thread(CliRunner().invoke, main, ["source", "list", "--json"], catch_exceptions=False)
    [health] = [json.loads(line) for line in listed.output.splitlines()]
    assert (health["id"], health["status"], health["last_error"]) == ("moved", "failing", expected)
    assert health["posts_seen"] == 0
