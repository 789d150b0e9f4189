"""Mastodon accounts and hashtags through an instance's public API: parsing real-shaped statuses, the
`min_id` cursor, and the health reasons ops see; on a real HTTP server, real Redis and both databases."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.ingest.sources import AddressError, parse_address
from services.ingest.sources.mastodon import parse_statuses
from shared.db import session_scope
from shared.models import Post
from tests.ingest.conftest import add_platform_source, due_now, posts_on_stream
from tests.servers import FeedServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mastodon"
JSON = "application/json; charset=utf-8"
ACCOUNT = "109348251146378431"
STATUSES = f"/api/v1/accounts/{ACCOUNT}/statuses"


@pytest.fixture
def settings(db_url: str, redis_url: str, feed_server: FeedServer) -> IngestSettings:
    return IngestSettings(
        database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05, fetch_timeout_seconds=2.0,
        requeue_after_seconds=0.0, mastodon_base_url=feed_server.base_url, mastodon_backfill_statuses=20,
    )


def test_parse_statuses_reads_text_warnings_alt_text_boosts_oldest_first() -> None:
    parsed = parse_statuses((FIXTURES / "statuses.json").read_bytes())
    assert [sid for sid, _ in parsed] == ["113568000000000100", "113569000000000200", "113570000000000300"]
    cw, boost, newest = (e for _, e in parsed)
    assert cw.text == "Graphic: casualties\nThree civilians killed by an IED on the Téra road."
    assert boost.forwarded_from == "https://social.example.ne/@wireniger/88" and boost.lang == "fr"
    assert boost.published_at == datetime(2026, 11, 30, 9, 40, tzinfo=UTC)  # the boosted post's time
    assert newest.text.startswith("Car bomb near #Niamey airport at dawn; IS Sahel claims it.")
    assert "Smoke rising over an army post" in newest.text  # a picture's description
    assert newest.guid == "mastodon:https://mastodon.social/users/sahelwatch/statuses/113570000000000300"
    assert newest.link == "https://mastodon.social/@sahelwatch/113570000000000300"


@pytest.mark.parametrize(("written", "handle", "source_id"), [
    ("mastodon:@sahelwatch@mastodon.social", "@sahelwatch@mastodon.social", "mastodon-sahelwatch-mastodon.social"),
    ("mastodon:sahelwatch@Mastodon.Social", "@sahelwatch@mastodon.social", "mastodon-sahelwatch-mastodon.social"),
    ("mastodon:#Niamey@mastodon.social", "#Niamey@mastodon.social", "mastodon-tag-niamey-mastodon.social"),
], ids=["account", "no @ and upper-case host", "hashtag"])
def test_mastodon_addresses(written: str, handle: str, source_id: str) -> None:
    address = parse_address(written)
    assert address is not None and (address.kind, address.handle, address.source_id) == ("mastodon", handle,
                                                                                          source_id)


def test_a_malformed_mastodon_address_is_refused() -> None:
    with pytest.raises(AddressError, match="mastodon:@user@instance"):
        parse_address("mastodon:sahel watch")


async def test_an_account_is_read_then_followed_with_min_id(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
) -> None:
    statuses = json.loads((FIXTURES / "statuses.json").read_bytes())
    feed_server.route("/api/v1/accounts/lookup?acct=sahelwatch", (FIXTURES / "account_lookup.json").read_bytes(),
                      content_type=JSON)
    feed_server.route(f"{STATUSES}?limit=20", json.dumps(statuses[1:]), content_type=JSON)
    source_id = await add_platform_source(sessions, "mastodon:@sahelwatch@mastodon.social")

    [report] = await service.drain()
    assert (report.new, report.error) == (2, None)
    assert (await due_now(sessions, source_id)).cursor == f"{ACCOUNT}:113569000000000200"

    feed_server.route(f"{STATUSES}?limit=40&min_id=113569000000000200", json.dumps(statuses[:1]), content_type=JSON)
    [report] = await service.drain()
    assert (report.new, report.error) == (1, None)
    assert len(feed_server.hits("/api/v1/accounts/lookup?acct=sahelwatch")) == 1  # the account id is kept
    on_stream = await posts_on_stream(redis_url)
    assert [m["url"] for m in on_stream][-1] == "https://mastodon.social/@sahelwatch/113570000000000300"
    assert len(on_stream) == 3
    async with session_scope(sessions) as s:
        boost = (await s.execute(sa.select(Post).where(Post.forwarded_from.is_not(None)))).scalar_one()
    assert boost.forwarded_from == "https://social.example.ne/@wireniger/88"


async def test_a_hashtag_timeline_is_read(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    feed_server.route("/api/v1/timelines/tag/Niamey?limit=20", (FIXTURES / "statuses.json").read_bytes(),
                      content_type=JSON)
    source_id = await add_platform_source(sessions, "mastodon:#Niamey@mastodon.social")
    [report] = await service.drain()
    assert (report.new, report.error) == (3, None)
    assert (await due_now(sessions, source_id)).cursor == "113570000000000300"


@pytest.mark.parametrize(("status", "reason"), [
    (404, "mastodon.social has no @gone (HTTP 404): deleted, moved or misspelled"),
    (410, "mastodon.social has no @gone (HTTP 410): suspended or deleted"),
    (401, "mastodon.social requires sign-in to read @gone (HTTP 401)"),
    (429, "mastodon.social rate limited reading @gone (HTTP 429)"),
], ids=["unknown account", "suspended", "sign-in required", "rate limited"])
async def test_an_account_the_instance_will_not_show_gets_a_health_reason(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, status: int,
    reason: str,
) -> None:
    feed_server.route("/api/v1/accounts/lookup?acct=gone", b'{"error":"Record not found"}', status=status,
                      content_type=JSON)
    source_id = await add_platform_source(sessions, "mastodon:@gone@mastodon.social")
    [report] = await service.drain()
    assert report.error is not None and report.error.startswith(reason), report.error
    assert (await due_now(sessions, source_id)).last_error == report.error


async def test_an_address_that_is_not_mastodon_says_so(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
) -> None:
    feed_server.route("/api/v1/timelines/tag/sahel?limit=20", b"<html><body>Welcome</body></html>",
                      content_type="text/html")
    await add_platform_source(sessions, "mastodon:#sahel@mastodon.social")
    [report] = await service.drain()
    assert report.error == "not Mastodon's API: the answer is not JSON (is the instance a Mastodon server?)"


def test_source_add_takes_a_mastodon_account_once(db_url: str) -> None:
    from click.testing import CliRunner

    from watchfloor.cli import main

    env = {"WATCHFLOOR_DATABASE_URL": db_url}
    added = CliRunner().invoke(main, ["source", "add", "mastodon:@sahelwatch@mastodon.social"], env=env)
    assert added.exit_code == 0, added.output
    assert "added source mastodon-sahelwatch-mastodon.social mastodon @sahelwatch@mastodon.social" in added.output
    twice = CliRunner().invoke(main, ["source", "add", "mastodon:@SahelWatch@mastodon.social"], env=env)
    assert twice.exit_code == 1 and "already polled as source 'mastodon-sahelwatch-mastodon.social'" in twice.output
    listed = CliRunner().invoke(main, ["source", "list", "--json"], env=env)
    row = json.loads(listed.output.splitlines()[0])
    assert (row["kind"], row["status"], row["url"]) == ("mastodon", "pending", "https://mastodon.social/@sahelwatch")
