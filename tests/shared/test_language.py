"""The language of posts that arrive without one: real feed bytes in four languages, none declared."""

from datetime import UTC, datetime
from pathlib import Path

from services.ingest.normalise import to_post
from services.ingest.parse import parse_feed
from shared.language import detect_language

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


def test_each_entry_of_an_undeclared_feed_gets_its_own_language() -> None:
    feed = parse_feed((FEEDS / "mixed_undeclared.rss.xml").read_bytes(), "https://relay.example/rss", {})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    langs = [to_post(entry, "relay", now).lang for entry in feed.entries]
    assert langs == ["ha", "fr", "ar", "en", None]  # the last is a bare time: no guess


def test_a_declared_language_is_kept() -> None:
    feed = parse_feed((FEEDS / "sahel_fr_ar.rss.xml").read_bytes(), "https://example.org/rss", {})
    posts = [to_post(entry, "s", datetime(2026, 12, 1, tzinfo=UTC)) for entry in feed.entries]
    assert all(e.lang for e in feed.entries)
    assert [p.lang for p in posts] == [e.lang for e in feed.entries]


def test_short_or_ambiguous_text_gives_no_guess() -> None:
    assert detect_language("", "") is None
    assert detect_language("Diffa : 5 morts", "") is None  # the model reads it as Italian: no guess beats that
    assert detect_language("", "Sojojin Najeriya sun kashe 'yan ta'adda 20 a garin Bama da ke jihar Borno") == "ha"


def test_invalid_text_gives_a_language_or_none_never_an_error() -> None:
    text = "Gunmen attacked \ud800 an army post near Ouallam on Sunday, killing four soldiers"
    assert detect_language(text, "") == "en"
    assert detect_language("\ud800" * 50, "") is None
