"""Telegram channels through t.me's preview: parsing real-shaped pages, the first poll reading back, the
cursor, edits, and the health reasons ops see; on a real HTTP server, real Redis and both databases."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.ingest.sources import AddressError, parse_address
from services.ingest.sources.telegram import channel_of, parse_preview
from shared.db import session_scope
from shared.models import Post, Source
from tests.ingest.conftest import add_platform_source, due_now, posts_on_stream
from tests.servers import FeedServer
from tests.telegram_preview import Msg, preview_page

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"


# -- parsing (pure) -----------------------------------------------------------------------------------------

def test_parse_preview_reads_text_captions_dates_forwards_links_and_edits() -> None:
    preview = parse_preview((FIXTURES / "sahel_relay.html").read_bytes(), "sahel_relay")
    assert preview.listed
    by_id = {m.id: m for m in preview.messages}
    assert sorted(by_id) == [101, 102, 103, 105]  # 104 is a sticker: nothing to read
    assert by_id[101].text.startswith("Tillabéri : les marchés de Téra rouverts")
    assert "\n" in by_id[101].text  # <br> is a line break, not glued words
    assert by_id[101].links == ("https://example.org/tera-marches",)
    assert by_id[101].published_at == datetime(2026, 11, 30, 7, 12, 44, tzinfo=UTC)
    assert by_id[102].forwarded_from == "https://t.me/wire_niger/5521"
    assert "deux soldats tués" in by_id[102].text  # a photo's caption
    assert by_id[103].text.startswith("Video: smoke over Téra")  # a video's caption, not the quoted reply
    assert "rouverts\n" not in by_id[103].text and by_id[103].edited
    assert not by_id[101].edited
    assert "Car bomb near Niamey airport" in by_id[105].text  # the link preview's title
    assert by_id[105].links == ("https://example.org/niamey-vbied",)


def test_a_page_without_a_message_list_is_no_preview() -> None:
    preview = parse_preview((FIXTURES / "no_preview.html").read_bytes(), "closed_channel")
    assert preview.messages == [] and not preview.listed


@pytest.mark.parametrize(("written", "channel"), [
    ("telegram:sahel_relay", "sahel_relay"), ("telegram:@Sahel_Relay", "Sahel_Relay"),
    ("https://t.me/sahel_relay", "sahel_relay"), ("https://t.me/s/sahel_relay", "sahel_relay"),
    ("t.me/sahel_relay/105", "sahel_relay"), ("https://example.org/rss", None),
], ids=["scheme", "at and case", "channel link", "preview link", "message link", "a feed"])
def test_channel_addresses(written: str, channel: str | None) -> None:
    assert channel_of(written) == channel


@pytest.mark.parametrize("written", ["telegram:bad name!", "telegram:ab", "https://t.me/s/"],
                         ids=["spaces and punctuation", "too short", "no name"])
def test_a_malformed_channel_is_refused_with_how_to_write_it(written: str) -> None:
    with pytest.raises(AddressError) as exc:
        parse_address(written)
    assert "telegram:" in exc.value.reason or "t.me/NAME" in exc.value.reason


def test_source_add_refuses_a_bad_channel_name(db_url: str) -> None:
    from watchfloor.cli import main

    result = CliRunner().invoke(main, ["source", "add", "telegram:bad name!"],
                                env={"WATCHFLOOR_DATABASE_URL": db_url})
    assert result.exit_code == 1
    assert "is not a Telegram channel" in result.output and "letters, digits or underscores" in result.output


# -- polling ------------------------------------------------------------------------------------------------

@pytest.fixture
def tg_settings(db_url: str, redis_url: str, feed_server: FeedServer) -> IngestSettings:
    return IngestSettings(
        database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05, fetch_timeout_seconds=2.0,
        requeue_after_seconds=0.0, telegram_base_url=feed_server.base_url, telegram_backfill_messages=5,
    )


@pytest.fixture
async def tg_service(tg_settings: IngestSettings, redis_url: str, sessions: async_sessionmaker[AsyncSession]):
    import redis.asyncio

    from shared.consumer import make_broker

    broker = make_broker(redis_url)
    client = redis.asyncio.Redis.from_url(redis_url)
    svc = IngestService(tg_settings, broker, client, sessions)
    async with broker:
        await broker.start()
        yield svc
        await svc.stop()
    await client.aclose()


async def posts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Post]:
    async with session_scope(sessions) as s:
        return {p.guid: p for p in (await s.execute(sa.select(Post))).scalars()}


async def source(sessions: async_sessionmaker[AsyncSession], source_id: str) -> Source:
    async with session_scope(sessions) as s:
        found = await s.get(Source, source_id)
    assert found is not None
    return found


def msgs(*ids: int) -> list[Msg]:
    return [Msg(i, f"message {i} from the relay", T0 + timedelta(minutes=i)) for i in ids]


async def test_first_poll_reads_back_then_only_new_messages_are_published(
    tg_service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
    redis_url: str,
) -> None:
    feed_server.route("/s/relay_ne", preview_page("relay_ne", msgs(8, 9, 10)), content_type=HTML)
    feed_server.route("/s/relay_ne?before=8", preview_page("relay_ne", msgs(5, 6, 7)), content_type=HTML)
    feed_server.route("/s/relay_ne?before=5", preview_page("relay_ne", msgs(2, 3, 4)), content_type=HTML)
    source_id = await add_platform_source(sessions, "https://t.me/s/relay_ne")
    assert source_id == "telegram-relay_ne"

    [report] = await tg_service.drain()
    assert (report.new, report.error) == (5, None)  # telegram_backfill_messages=5: the newest five
    assert len(feed_server.hits("/s/relay_ne?before=5")) == 0  # two pages held five: no third request
    stored = await posts(sessions)
    assert sorted(stored) == sorted(f"telegram:relay_ne/{i}" for i in (6, 7, 8, 9, 10))
    post = stored["telegram:relay_ne/10"]
    assert post.url == "https://t.me/relay_ne/10"
    assert post.published_at == T0 + timedelta(minutes=10)
    assert (await source(sessions, source_id)).cursor == "10"

    # A new message: only it is published; the older ones on the page are not posts again.
    feed_server.route("/s/relay_ne", preview_page("relay_ne", msgs(9, 10, 11)), content_type=HTML)
    await due_now(sessions, source_id)
    [report] = await tg_service.drain()
    assert (report.new, report.edited, report.error) == (1, 0, None)
    on_stream = await posts_on_stream(redis_url)
    assert [m["guid"] for m in on_stream].count("telegram:relay_ne/11") == 1
    assert len(on_stream) == 6
    assert (await source(sessions, source_id)).cursor == "11"


async def test_an_edited_message_updates_its_post_and_republishes_it(
    tg_service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
    redis_url: str,
) -> None:
    first = msgs(20, 21)
    feed_server.route("/s/relay_ml", preview_page("relay_ml", first), content_type=HTML)
    feed_server.route("/s/relay_ml?before=20", preview_page("relay_ml", []), content_type=HTML)
    source_id = await add_platform_source(sessions, "telegram:relay_ml")
    await tg_service.drain()
    before = (await posts(sessions))["telegram:relay_ml/20"]

    edited = [Msg(20, "Correction: 12 killed near Ménaka, not 2", first[0].at, edited=True), first[1]]
    feed_server.route("/s/relay_ml", preview_page("relay_ml", edited), content_type=HTML)
    await due_now(sessions, source_id)
    [report] = await tg_service.drain()
    assert (report.new, report.edited) == (0, 1)
    after = await posts(sessions)
    assert len(after) == 2  # updated in place, never a second post
    assert after["telegram:relay_ml/20"].id == before.id
    assert after["telegram:relay_ml/20"].text == "Correction: 12 killed near Ménaka, not 2"
    on_stream = [m for m in await posts_on_stream(redis_url) if m["guid"] == "telegram:relay_ml/20"]
    assert [m["text"] for m in on_stream] == ["message 20 from the relay", "Correction: 12 killed near Ménaka, not 2"]
    assert {m["post_id"] for m in on_stream} == {before.id}

    # Polled again unchanged: nothing more goes out.
    await due_now(sessions, source_id)
    [report] = await tg_service.drain()
    assert (report.new, report.edited) == (0, 0)
    assert len(await posts_on_stream(redis_url)) == 3


@pytest.mark.parametrize(("route", "reason"), [
    (dict(body=b"", status=302, headers={"Location": "/closed_ch"}), "t.me shows no public preview for @closed_ch"),
    (dict(body=(FIXTURES / "no_preview.html").read_bytes(), content_type=HTML),
     "t.me shows no public preview for @closed_ch"),
    (dict(body=b"not found", status=404, content_type="text/plain"), "t.me has no channel @closed_ch (HTTP 404)"),
    (dict(body=b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "120"}),
     "t.me rate limited the preview of @closed_ch (HTTP 429), retrying after 120 s"),
], ids=["redirected to the channel page", "a page with no messages", "deleted channel", "rate limited"])
async def test_a_channel_t_me_will_not_show_gets_a_health_reason(
    tg_service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer,
    route: dict, reason: str,
) -> None:
    feed_server.route("/closed_ch", (FIXTURES / "no_preview.html").read_bytes(), content_type=HTML)
    route = dict(route)  # the same parameters serve both databases
    body = route.pop("body")
    feed_server.route("/s/closed_ch", body, **route)
    source_id = await add_platform_source(sessions, "telegram:closed_ch")
    started = datetime.now(UTC)
    [report] = await tg_service.drain()
    assert report.error is not None and report.error.startswith(reason), report.error
    health = await source(sessions, source_id)
    assert health.last_error == report.error and health.consecutive_failures == 1
    assert health.cursor is None and not await posts(sessions)
    if "429" in reason:
        assert health.next_poll_at is not None and health.next_poll_at >= started + timedelta(seconds=119)


async def test_a_channel_has_no_url_to_edit(sessions: async_sessionmaker[AsyncSession]) -> None:
    source_id = await add_platform_source(sessions, "telegram:relay_ne")
    with pytest.raises(store.SourceError, match="is a telegram source: its address is not a URL to change"):
        async with session_scope(sessions) as s:
            await store.edit_source(s, source_id, actor="ops", now=datetime.now(UTC), url="https://t.me/s/other")
    with pytest.raises(store.SourceError, match="already polled as source 'telegram-relay_ne'"):
        await add_platform_source(sessions, "https://t.me/Relay_NE")
