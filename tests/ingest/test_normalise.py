"""Dedup keys survive feeds without guids; a post's id is stable across polls."""

from datetime import UTC, datetime

import pytest

from services.ingest.normalise import canonical_link, dedup_key, dedup_keys, to_post
from services.ingest.parse import Entry, parse_feed
from shared.ids import post_id
from tests.ingest.conftest import feed_bytes

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        ("https://NG-Brief.example/a?id=88&utm_source=rss&utm_campaign=daily#comments",
         "https://ng-brief.example/a?id=88"),
        ("https://x.example:443/a?fbclid=abc", "https://x.example/a"),
        ("https://x.example/a?b=2&a=1", "https://x.example/a?b=2&a=1"),
    ],
    ids=["utm_* and fragment dropped, host lower-cased", "default port and fbclid dropped", "other params kept"],
)
def test_canonical_link(link: str, canonical: str) -> None:
    assert canonical_link(link) == canonical


def test_dedup_key_chain_guid_then_link_then_content() -> None:
    with_guid = Entry(guid="g-1", link="https://a.example/1", title="t", text="x")
    with_link = Entry(guid=None, link="https://a.example/1?utm_medium=feed", title="t", text="x")
    bare = Entry(guid=None, link=None, title="Curfew extended in Maiduguri", text="two weeks")
    assert dedup_key(with_guid) == "g-1"
    assert dedup_key(with_link) == "https://a.example/1"
    assert dedup_key(bare).startswith("sha256:")
    assert dedup_key(bare) == dedup_key(Entry(guid=None, link=None, title=bare.title, text=bare.text))
    assert dedup_key(bare) != dedup_key(Entry(guid=None, link=None, title=bare.title, text="three weeks"))


def test_feed_without_guids_gives_the_same_ids_on_every_poll() -> None:
    first = parse_feed(feed_bytes("no_guids.rss.xml"), "https://ng-brief.example/rss", {}).entries
    again = parse_feed(feed_bytes("no_guids.rss.xml"), "https://ng-brief.example/rss", {}).entries
    ids_first = [to_post(e, "ng-brief", NOW, k).post_id for e, k in zip(first, dedup_keys(first), strict=True)]
    ids_again = [to_post(e, "ng-brief", NOW, k).post_id for e, k in zip(again, dedup_keys(again), strict=True)]
    assert ids_first == ids_again and len(set(ids_first)) == 2
    assert ids_first[0] == post_id("ng-brief", "https://ng-brief.example/briefs/zamfara-attack?id=88")


def test_a_guid_repeated_in_one_feed_does_not_swallow_items() -> None:
    entries = [
        Entry(guid="https://site.example/", link="https://site.example/a", title="a", text="a"),
        Entry(guid="https://site.example/", link="https://site.example/b", title="b", text="b"),
        Entry(guid="unique", link="https://site.example/c", title="c", text="c"),
    ]
    keys = dedup_keys(entries)
    assert len(set(keys)) == 3
    assert keys[2] == "unique"


def test_to_post_carries_the_entry() -> None:
    entry = Entry(guid="g", link="https://a.example/1", title="Attaque à Ménaka", text="texte",
                  published_at=datetime(2026, 11, 23, 7, 15, tzinfo=UTC), lang="fr")
    post = to_post(entry, "veille-sahel", NOW)
    assert post.post_id == post_id("veille-sahel", "g")
    assert (post.source_id, post.url, post.guid, post.title, post.lang) == (
        "veille-sahel", "https://a.example/1", "g", "Attaque à Ménaka", "fr")
    assert post.fetched_at == NOW and post.published_at == entry.published_at
