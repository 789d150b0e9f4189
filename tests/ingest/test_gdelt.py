"""GDELT DOC 2.0 article-list queries: parsing a real-shaped artlist, the seendate cursor, empty answers, and
the health reasons ops see; on a real HTTP server, real Redis and both databases."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.ingest.sources import AddressError, parse_address
from services.ingest.sources.gdelt import api_path, parse_articles
from tests.ingest.conftest import add_platform_source, due_now, posts_on_stream
from tests.servers import FeedServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gdelt"
JSON = "application/json; charset=utf-8"
QUERY = '"car bomb" Niamey'
PATH = api_path(QUERY, 50)


@pytest.fixture
def settings(db_url: str, redis_url: str, feed_server: FeedServer) -> IngestSettings:
    return IngestSettings(
        database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05, fetch_timeout_seconds=2.0,
        requeue_after_seconds=0.0, gdelt_base_url=feed_server.base_url, gdelt_max_records=50,
        host_spacing={"127.0.0.1": 0},
    )


def test_the_query_url_is_gdelts_artlist_newest_first() -> None:
    assert PATH == ("/api/v2/doc/doc?query=%22car%20bomb%22%20Niamey&mode=artlist&format=json&maxrecords=50"
                    "&sort=datedesc")


def test_parse_articles_reads_titles_times_languages_oldest_first() -> None:
    parsed = parse_articles((FIXTURES / "artlist.json").read_bytes())
    assert [seen for seen, _ in parsed] == ["20261204T081500Z", "20261204T104500Z", "20261204T104500Z"]
    rfi, *latest = (e for _, e in parsed)
    assert rfi.title == rfi.text == "Niger : trois civils tués par un engin explosif dans la région de Tillabéri"
    assert rfi.published_at == datetime(2026, 12, 4, 8, 15, tzinfo=UTC) and rfi.lang == "fr"
    assert rfi.guid == "gdelt:https://www.rfi.fr/fr/afrique/20261204-niger-tillab%C3%A9ri-engin-explosif"
    assert {e.lang for e in latest} == {"fr", "en"}


@pytest.mark.parametrize("body", [b"", b"  \n", b"{}", b'{"articles": []}'])
def test_an_empty_answer_is_no_articles(body: bytes) -> None:
    assert parse_articles(body) == []


@pytest.mark.parametrize(("written", "query", "source_id"), [
    ('gdelt:"car bomb" Niamey', '"car bomb" Niamey', "gdelt-car-bomb-niamey"),
    ("gdelt:'sahel  sourcecountry:niger'", "sahel sourcecountry:niger", "gdelt-sahel-sourcecountry-niger"),
], ids=["phrase", "shell quotes and an operator"])
def test_gdelt_addresses(written: str, query: str, source_id: str) -> None:
    address = parse_address(written)
    assert address is not None and (address.kind, address.handle, address.source_id) == ("gdelt", query, source_id)
    assert address.name == f"gdelt:{query}"


@pytest.mark.parametrize(("written", "problem"), [
    ("gdelt:", "the query is empty"), ('gdelt:"car bomb Niamey', "a quoted phrase is not closed"),
    ("gdelt:(niger OR mali", "its parentheses do not match"), ("gdelt:is ad", "a keyword of 3 letters"),
    ("gdelt:" + "sahel " * 60, "over 250 characters"),
], ids=["empty", "open quote", "parentheses", "short keywords", "too long"])
def test_a_query_gdelt_would_refuse_is_refused(written: str, problem: str) -> None:
    with pytest.raises(AddressError, match=problem):
        parse_address(written)


async def test_a_query_is_read_then_only_newer_articles_are_published(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, redis_url: str,
) -> None:
    doc = json.loads((FIXTURES / "artlist.json").read_bytes())
    feed_server.route(PATH, json.dumps({"articles": doc["articles"][1:]}), content_type=JSON)
    source_id = await add_platform_source(sessions, f"gdelt:{QUERY}")

    [report] = await service.drain()
    assert (report.new, report.error) == (2, None)
    assert (await due_now(sessions, source_id)).cursor == "20261204T104500Z"

    # one more article seen in the same 15-minute update, and the older one again: only the new one is published
    feed_server.route(PATH, json.dumps(doc), content_type=JSON)
    [report] = await service.drain()
    assert (report.new, report.error) == (1, None)
    assert (await due_now(sessions, source_id)).cursor == "20261204T104500Z"
    feed_server.route(PATH, b"{}", content_type=JSON)  # GDELT's "no articles"
    [report] = await service.drain()
    assert (report.new, report.error) == (0, None)

    on_stream = await posts_on_stream(redis_url)
    assert sorted(m["url"] for m in on_stream) == sorted(a["url"] for a in doc["articles"])  # each once


@pytest.mark.parametrize(("status", "body", "reason"), [
    (200, b"The specified phrase is too short.", "GDELT refused the query: The specified phrase is too short."),
    (429, b"Please limit requests to one every 5 seconds", "GDELT rate limited the query '\"car bomb\" Niamey'"
     " (HTTP 429)"),
], ids=["refused query", "rate limited"])
async def test_a_query_gdelt_will_not_answer_gets_a_health_reason(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, status: int,
    body: bytes, reason: str,
) -> None:
    feed_server.route(PATH, body, status=status, content_type="text/html; charset=utf-8")
    source_id = await add_platform_source(sessions, f"gdelt:{QUERY}")
    [report] = await service.drain()
    assert report.error is not None and report.error.startswith(reason), report.error
    assert (await due_now(sessions, source_id)).last_error == report.error


def test_source_add_takes_a_gdelt_query_once(db_url: str) -> None:
    from click.testing import CliRunner

    from watchfloor.cli import main

    env = {"WATCHFLOOR_DATABASE_URL": db_url}
    added = CliRunner().invoke(main, ["source", "add", 'gdelt:"car bomb" Niamey'], env=env)
    assert added.exit_code == 0, added.output
    assert 'added source gdelt-car-bomb-niamey gdelt gdelt:"car bomb" Niamey' in added.output
    twice = CliRunner().invoke(main, ["source", "add", 'gdelt:"Car Bomb" niamey'], env=env)
    assert twice.exit_code == 1 and "already polled as source 'gdelt-car-bomb-niamey'" in twice.output
    bad = CliRunner().invoke(main, ["source", "add", "gdelt:ab"], env=env)
    assert bad.exit_code != 0 and "is not a GDELT query" in bad.output
