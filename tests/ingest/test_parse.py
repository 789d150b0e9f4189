"""parse_feed on real bytes: RSS 2.0 (French and Arabic), Atom, JSON Feed 1.1, broken XML, HTML."""

from datetime import UTC, datetime

import pytest

from services.ingest.parse import FeedParseError, html_to_text, parse_feed
from tests.ingest.conftest import feed_bytes

URL = "https://feeds.example/path/feed"


def test_rss_french_and_arabic_items() -> None:
    feed = parse_feed(feed_bytes("sahel_fr_ar.rss.xml"), URL, {"Content-Type": "application/rss+xml; charset=utf-8"})
    assert feed.format == "rss20"
    assert [e.guid for e in feed.entries] == [
        "veille-sahel-20261123-0001", "veille-sahel-20261122-0007", "veille-sahel-20261121-0003",
    ]
    menaka, tillaberi, djibo = feed.entries
    assert menaka.title == "Ménaka : attaque contre un poste de l'armée revendiquée par l'EIGS"
    # HTML stripped, paragraphs kept apart by a space, accents intact
    assert menaka.text.startswith("Des hommes armés à moto ont attaqué dimanche soir un poste des FAMa")
    assert "Ménaka. L'État islamique au Sahel" in menaka.text
    assert "<" not in menaka.text
    assert menaka.published_at == datetime(2026, 11, 23, 7, 15, tzinfo=UTC)  # +0100 converted to UTC
    assert menaka.lang == "fr"
    assert tillaberi.lang == "ar"  # dc:language on the item beats the channel's <language>
    assert tillaberi.title == "هجوم على قرية قرب تيلابيري في النيجر"
    assert "قُتل سبعة مدنيين" in tillaberi.text and "تيلابيري. ولم" in tillaberi.text
    # content:encoded wins over a shorter description; scripts are not text; entities decoded
    assert djibo.title == "Djibo : le JNIM impose un blocus & coupe la route de Ouagadougou"
    assert "renforcé le blocus de Djibo." in djibo.text and "track()" not in djibo.text


def test_atom_relative_links_and_entry_language() -> None:
    feed = parse_feed(feed_bytes("iswap_borno.atom.xml"), URL, {"Content-Type": "application/atom+xml"})
    assert feed.format == "atom10"
    raid, diffa = feed.entries
    assert raid.title == "ISWAP fighters raid military base in Borno"  # type="html" title made plain
    assert raid.link == "https://feeds.example/reports/1412-iswap-raid-borno"  # resolved against the feed URL
    assert raid.published_at == datetime(2026, 11, 23, 4, 45, tzinfo=UTC)
    assert raid.text == ("Islamic State West Africa Province fighters attacked a base near Marte overnight. "
                         "Troops repelled the assault after two hours.")
    assert raid.lang == "en"
    assert diffa.lang == "fr"  # xml:lang on the entry
    assert diffa.published_at == datetime(2026, 11, 22, 16, 20, tzinfo=UTC)  # only <updated>: used as published


@pytest.mark.parametrize("content_type", ["application/feed+json", "application/json", "text/plain"],
                         ids=["by content type", "generic json", "sniffed from the version field"])
def test_json_feed(content_type: str) -> None:
    feed = parse_feed(feed_bytes("jnim_benin.feed.json"), URL, {"Content-Type": content_type})
    assert feed.format == "json11"
    benin, togo = feed.entries
    assert benin.guid == "https://gog-watch.example/2026/11/benin-park-w"
    assert benin.text == "Militants linked to JNIM ambushed a patrol near Park W. At least six soldiers were killed."
    assert benin.published_at == datetime(2026, 11, 23, 3, 30, tzinfo=UTC)
    assert benin.lang == "en"
    assert togo.guid == "4711"  # a numeric id (JSON Feed 1.0 habit) becomes a string
    assert togo.lang == "fr"  # item language (1.1) beats the feed's
    assert togo.text.startswith("Une attaque a visé un poste de gendarmerie")


def test_feed_without_guids_keeps_links_and_text() -> None:
    feed = parse_feed(feed_bytes("no_guids.rss.xml"), URL, {})
    assert [e.guid for e in feed.entries] == [None, None]
    assert feed.entries[0].link.startswith("https://NG-Brief.example/briefs/zamfara-attack")
    assert feed.entries[1].link is None and feed.entries[1].published_at is None


@pytest.mark.parametrize(
    ("name", "content_type", "reason"),
    [
        ("not_a_feed.html", "text/html; charset=utf-8", "feed returned HTML, not a feed"),
        ("not_a_feed.html", "application/rss+xml", "feed returned HTML, not a feed"),
        ("broken.xml", "application/xml", "not well-formed XML: not well-formed (invalid token) at line 4"),
    ],
    ids=["HTML page", "HTML served as RSS", "broken XML names the line"],
)
def test_unreadable_bodies_raise_with_reason(name: str, content_type: str, reason: str) -> None:
    with pytest.raises(FeedParseError) as err:
        parse_feed(feed_bytes(name), URL, {"Content-Type": content_type})
    assert err.value.reason.startswith(reason)


def test_bozo_feed_with_entries_is_accepted_with_a_warning() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
            b'<item><title>Attaque & embuscade</title><link>https://a.example/1</link></item></channel></rss>')
    feed = parse_feed(body, URL, {"Content-Type": "application/rss+xml"})
    assert [e.title for e in feed.entries] == ["Attaque & embuscade"]
    assert feed.warning and "not well-formed XML" in feed.warning


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"   ", "empty body"), (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
     (b'{"version": "https://jsonfeed.org/version/1.1"}', 'JSON Feed has no "items" list')],
    ids=["empty", "truncated JSON Feed", "JSON Feed without items"],
)
def test_other_unreadable_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError, match=reason):
        parse_feed(body, URL, {"Content-Type": "application/feed+json"})


def test_empty_valid_feed_is_not_an_error() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>quiet</title></channel></rss>'
    assert parse_feed(body, URL, {}).entries == []


def test_html_to_text_keeps_paragraphs_apart() -> None:
    assert html_to_text("<p>Un</p><p>deux&nbsp;<b>trois</b></p><style>p{}</style>") == "Un deux trois"
