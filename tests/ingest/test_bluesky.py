"""Bluesky accounts through the public AppView: parsing a real-shaped author feed (posts, a repost), the
"indexedAt|uri" cursor, and the health reasons ops see; on a real HTTP server, real Redis and both databases."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.ingest.sources import AddressError, parse_address
from services.ingest.sources.bluesky import parse_feed
from shared.db import session_scope
from shared.models import Post
from tests.ingest.conftest import add_platform_source, due_now, posts_on_stream
from tests.servers import FeedServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bluesky"
JSON = "application/json; charset=utf-8"
FEED = "/xrpc/app.bsky.feed.getAuthorFeed?actor=sahelwatch.bsky.social&limit=20"
BOMB = "2026-12-04T10:14:52.117Z|at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lcoufwpf4c2k"


@pytest.fixture
def settings(db_url: str, redis_url: str, feed_server: FeedServer) -> IngestSettings:
    return IngestSettings(
        database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05, fetch_timeout_seconds=2.0,
        requeue_after_seconds=0.0, bluesky_base_url=feed_server.base_url, bluesky_backfill_posts=20,
    )


def test_parse_feed_reads_posts_and_a_repost_oldest_first() -> None:
    parsed = parse_feed((FIXTURES / "author_feed.json").read_bytes())
    assert [order.split("|")[0] for order, _ in parsed] == [  # the repost by when it was reposted; no empty post
        "2026-12-04T07:45:01.002Z", "2026-12-04T09:30:00.000Z", "2026-12-04T10:14:52.117Z"]
    maradi, repost, bomb = (e for _, e in parsed)
    assert repost.forwarded_from == "https://bsky.app/profile/wireniger.bsky.social/post/3lcotzxq2mk2y"
    assert repost.link == repost.forwarded_from and repost.lang == "fr"
    assert repost.published_at == datetime(2026, 12, 4, 8, 2, 10, tzinfo=UTC)  # the reposted post's time
    assert bomb.text == "Car bomb near Niamey airport at dawn; IS Sahel claims it in a statement on Amaq."
    assert bomb.link == "https://bsky.app/profile/sahelwatch.bsky.social/post/3lcoufwpf4c2k"
    assert bomb.guid == "bluesky:at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lcoufwpf4c2k"
    assert bomb.forwarded_from is None and maradi.forwarded_from is None
    assert parse_feed(b'{"feed": []}') == []


@pytest.mark.parametrize(("written", "handle"), [
    ("bluesky:sahelwatch.bsky.social", "sahelwatch.bsky.social"),
    ("bluesky:@SahelWatch.bsky.social", "sahelwatch.bsky.social"),
    ("https://bsky.app/profile/sahelwatch.bsky.social", "sahelwatch.bsky.social"),
    ("https://bsky.app/profile/sahelwatch.bsky.social/post/3lcoufwpf4c2k", "sahelwatch.bsky.social"),
    ("bluesky:did:plc:q6gjnaw2blty4crticxkmujt", "did:plc:q6gjnaw2blty4crticxkmujt"),
], ids=["handle", "@ and upper case", "profile URL", "post URL", "DID"])
def test_bluesky_addresses(written: str, handle: str) -> None:
    address = parse_address(written)
    assert address is not None and (address.kind, address.handle) == ("bluesky", handle)
    assert address.url == f"https://bsky.app/profile/{handle}"


@pytest.mark.parametrize("written", ["bluesky:sahel watch", "bluesky:sahelwatch", "bluesky:", "bluesky:-x-.social"])
def test_a_malformed_bluesky_handle_is_refused(written: str) -> None:
    with pytest.raises(AddressError, match=r"bluesky:sahelwatch\.bsky\.social"):
        parse_address(written)


async def test_an_account_is_read_then_only_newer_posts_are_published(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
) -> None:
    doc = json.loads((FIXTURES / "author_feed.json").read_bytes())
    feed_server.route(FEED, json.dumps({"feed": doc["feed"][1:], "cursor": "x"}), content_type=JSON)
    source_id = await add_platform_source(sessions, "bluesky:sahelwatch.bsky.social")

    [report] = await service.drain()
    assert (report.new, report.error) == (2, None)
    reposted = "2026-12-04T09:30:00.000Z|at://did:plc:x4ruq7ut4bbyvvz2p3l2prr5/app.bsky.feed.post/3lcotzxq2mk2y"
    assert (await due_now(sessions, source_id)).cursor == reposted

    feed_server.route(FEED, json.dumps(doc), content_type=JSON)  # the whole page again, one post newer
    [report] = await service.drain()
    assert (report.new, report.error) == (1, None)
    assert (await due_now(sessions, source_id)).cursor == BOMB
    [report] = await service.drain()  # nothing new: nothing published
    assert (report.new, report.error) == (0, None)

    on_stream = await posts_on_stream(redis_url)
    assert len(on_stream) == 3
    assert on_stream[-1]["url"] == "https://bsky.app/profile/sahelwatch.bsky.social/post/3lcoufwpf4c2k"
    async with session_scope(sessions) as s:
        repost = (await s.execute(sa.select(Post).where(Post.forwarded_from.is_not(None)))).scalar_one()
    assert repost.forwarded_from == "https://bsky.app/profile/wireniger.bsky.social/post/3lcotzxq2mk2y"


@pytest.mark.parametrize(("status", "body", "reason"), [
    (400, (FIXTURES / "profile_not_found.json").read_bytes(),
     "Bluesky has no readable account gone.bsky.social (HTTP 400, Profile not found): deleted, deactivated"),
    (429, b'{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}',
     "Bluesky rate limited reading gone.bsky.social (HTTP 429)"),
    (200, b"<html><body>Welcome</body></html>", "not Bluesky's AppView: the answer is not JSON"),
], ids=["profile not found", "rate limited", "not an AppView"])
async def test_an_account_the_appview_will_not_show_gets_a_health_reason(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, status: int,
    body: bytes, reason: str,
) -> None:
    feed_server.route("/xrpc/app.bsky.feed.getAuthorFeed?actor=gone.bsky.social&limit=20", body, status=status,
                      content_type=JSON)
    source_id = await add_platform_source(sessions, "bluesky:gone.bsky.social")
    [report] = await service.drain()
    assert report.error is not None and report.error.startswith(reason), report.error
    assert (await due_now(sessions, source_id)).last_error == report.error


def test_source_add_takes_a_bluesky_handle_once(db_url: str) -> None:
    from click.testing import CliRunner

    from watchfloor.cli import main

    env = {"WATCHFLOOR_DATABASE_URL": db_url}
    added = CliRunner().invoke(main, ["source", "add", "https://bsky.app/profile/sahelwatch.bsky.social"], env=env)
    assert added.exit_code == 0, added.output
    assert "added source bluesky-sahelwatch.bsky.social bluesky @sahelwatch.bsky.social" in added.output
    twice = CliRunner().invoke(main, ["source", "add", "bluesky:SahelWatch.bsky.social"], env=env)
    assert twice.exit_code == 1 and "already polled as source 'bluesky-sahelwatch.bsky.social'" in twice.output
    bad = CliRunner().invoke(main, ["source", "add", "bluesky:sahel watch"], env=env)
    assert bad.exit_code != 0 and "is not a Bluesky address" in bad.output
    listed = CliRunner().invoke(main, ["source", "list", "--json"], env=env)
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert (row["kind"], row["status"], row["url"]) == ("bluesky", "pending",
                                                        "https://bsky.app/profile/sahelwatch.bsky.social")
