"""A feed reader's source management: OPML import and export, feed discovery from a site's page, and
charset detection for feeds that declare no encoding, through the CLI on both databases and real local
HTTP servers."""

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.ingest.fetch import fetch_feed, make_client
from services.ingest.opml import OpmlError, parse_opml
from services.ingest.parse import parse_feed
from services.ingest.settings import IngestSettings
from shared.db import make_engine, migrate
from tests.servers import FeedServer
from watchfloor.cli import main

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{title}</title>
<item><guid>{title}-1</guid><title>Attack near Tera</title><description>Gunmen attacked a post.</description></item>
</channel></rss>"""


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI on a migrated database; the SSRF guard is on for every address but the test server's."""
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("WATCHFLOOR_REDIS_URL", raising=False)
    monkeypatch.setenv("WATCHFLOOR_ALLOW_PRIVATE_URLS", "127.0.0.1/32")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def listed(wf) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, wf("source", "list", "--json").output.splitlines())}


# -- OPML ---------------------------------------------------------------------------------------------------

def test_import_adds_skips_the_duplicate_and_refuses_a_private_address_then_export_round_trips(
        wf, feed_server: FeedServer, tmp_path: Path) -> None:
    sahel = feed_server.route("/sahel.xml", RSS.format(title="Sahel"))
    wires = feed_server.route("/wires.xml", RSS.format(title="Wires"))
    assert wf("source", "add", wires, "--name", "wires", "--as-is").exit_code == 0
    opml = tmp_path / "feeds.opml"
    opml.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>desk</title></head><body>
  <outline text="Africa"><outline text="Sahel">
    <outline type="rss" text="Sahel &amp; Lake Chad" xmlUrl="{sahel}" htmlUrl="https://example.org/"/>
  </outline></outline>
  <outline type="rss" title="The wires" xmlUrl="{wires}"/>
  <outline type="rss" text="Inside" xmlUrl="http://10.0.0.1/feed"/>
</body></opml>""", encoding="utf-8")

    result = wf("source", "import", str(opml))
    assert result.exit_code == 1, result.output  # one refused: the status says so, after every line
    lines = result.output.splitlines()
    assert any(line.startswith("added") and sahel in line and "folder Africa/Sahel" in line for line in lines)
    assert any(line.startswith("skipped") and wires in line and "'wires'" in line for line in lines)
    assert any(line.startswith("refused") and "10.0.0.1 is a private address" in line for line in lines)
    assert "1 added, 1 skipped, 1 refused of 3 feeds" in result.output
    sources = listed(wf)
    assert set(sources) == {"wires", "sahel-lake-chad"}
    assert sources["sahel-lake-chad"]["url"] == sahel

    # export: OPML 2.0 with id and interval; read back, it names the same feeds
    assert wf("source", "edit", "wires", "--interval", "900").exit_code == 0
    out = tmp_path / "export.opml"
    assert wf("source", "export", "--output", str(out)).exit_code == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>') and '<opml version="2.0"' in text
    back = {f.source_id: f for f in parse_opml(out.read_bytes())}
    assert {k: (f.url, f.name, f.interval) for k, f in back.items()} == {
        "sahel-lake-chad": (sahel, "Sahel & Lake Chad", 300), "wires": (wires, "wires", 900)}
    assert wf("source", "export").output == text  # standard output carries the same document

    # imported again: everything is already there; removed and re-imported elsewhere: the same sources
    again = wf("source", "import", str(out))
    assert again.exit_code == 0 and "0 added, 2 skipped, 0 refused" in again.output


def test_export_imported_into_an_empty_database_restores_ids_names_and_intervals(
        wf, feed_server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = feed_server.route("/one.xml", RSS.format(title="One"))
    two = feed_server.route("/two.xml", RSS.format(title="Two"))
    assert wf("source", "add", one, "--name", "Niamey desk", "--interval", "600", "--as-is").exit_code == 0
    assert wf("source", "add", two, "--name", "two", "--as-is").exit_code == 0
    out = tmp_path / "export.opml"
    assert wf("source", "export", "-o", str(out)).exit_code == 0
    before = listed(wf)

    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    asyncio.run(_migrated(other))
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", other)
    result = wf("source", "import", str(out))
    assert result.exit_code == 0 and "2 added" in result.output
    after = listed(wf)
    assert {k: (v["url"], v["interval_seconds"]) for k, v in after.items()} == {
        k: (v["url"], v["interval_seconds"]) for k, v in before.items()}


async def _migrated(url: str) -> None:
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<opml version="2.0"><body><outline text="&lol9;" xmlUrl="http://127.0.0.1:9/&lol9;"/></body></opml>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&xxe;" xmlUrl="http://127.0.0.1:9/feed"/></body></opml>"""


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL], ids=["billion laughs", "external entity"])
def test_an_opml_with_entities_is_refused_and_nothing_is_added(wf, tmp_path: Path, hostile: bytes) -> None:
    path = tmp_path / "hostile.opml"
    path.write_bytes(hostile)
    result = wf("source", "import", str(path))
    assert result.exit_code == 1
    assert "declares a DTD or entities; refused" in result.output
    assert wf("source", "list", "--json").output.strip() == ""


def test_opml_that_is_not_opml_says_so() -> None:
    with pytest.raises(OpmlError, match="root element is <rss>"):
        parse_opml(RSS.format(title="x").encode())
    with pytest.raises(OpmlError, match="not well-formed XML"):
        parse_opml(b"<opml><body><outline></body></opml>")


# -- discovery ----------------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>Sahel Monitor</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/json" href="/wp-json/">
<link rel="alternate" type="application/rss+xml" title="Sahel Monitor RSS" href="feed.xml">
<link rel="alternate" type="application/atom+xml" title="Sahel Monitor Atom" href="{base}/site/atom.xml">
</head><body><p>News from the Sahel.</p></body></html>"""


def test_add_on_a_site_page_picks_its_first_feed_and_lists_the_other(wf, feed_server: FeedServer) -> None:
    feed = feed_server.route("/site/feed.xml", RSS.format(title="Sahel Monitor"))
    page = feed_server.route("/site/", PAGE.format(base=feed_server.base_url), content_type="text/html; charset=utf-8")
    result = wf("source", "add", page, "--name", "monitor")
    assert result.exit_code == 0, result.output
    assert f"{page} is a web page; its feed {feed} was picked" in result.output  # relative href resolved
    assert f"also offered: {feed_server.base_url}/site/atom.xml (application/atom+xml)" in result.output
    assert "wp-json" not in result.output  # a REST API link is not a feed
    assert listed(wf)["monitor"]["url"] == feed


def test_add_on_a_page_without_feeds_is_refused_and_a_feed_url_is_added_as_given(
        wf, feed_server: FeedServer) -> None:
    page = feed_server.route("/plain/", "<!doctype html><html><head></head><body>hi</body></html>",
                             content_type="text/html")
    result = wf("source", "add", page)
    assert result.exit_code == 1 and "no <link rel=\"alternate\">" in result.output
    feed = feed_server.route("/feed.xml", RSS.format(title="x"))
    result = wf("source", "add", feed, "--name", "direct")
    assert result.exit_code == 0 and "picked" not in result.output
    assert listed(wf)["direct"]["url"] == feed
    misserved = feed_server.route("/rss.php", RSS.format(title="y"), content_type="text/html")  # RSS as HTML
    result = wf("source", "add", misserved, "--name", "misserved")
    assert result.exit_code == 0 and listed(wf)["misserved"]["url"] == misserved


def test_discovered_feed_at_a_refused_address_is_refused(wf, feed_server: FeedServer) -> None:
    page = feed_server.route("/evil/", '<html><head><link rel="alternate" type="application/rss+xml" '
                             'href="http://169.254.169.254/latest/meta-data/"></head></html>', content_type="text/html")
    result = wf("source", "add", page)
    assert result.exit_code == 1 and "169.254.169.254 is a link-local address" in result.output
    assert wf("source", "list", "--json").output.strip() == ""


# -- charset detection --------------------------------------------------------------------------------------

FRENCH = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Le Sahel</title><language>fr</language>
<item><guid>fr-1</guid><title>Attaque à Téra : l'armée nigérienne répond</title>
<description>Des hommes armés ont attaqué un poste de sécurité près de Téra, à l'ouest du Niger ; l'état-major
évoque « une riposte vigoureuse » et des blessés évacués vers Niamey.</description></item>
</channel></rss>"""

ARABIC = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>الساحل اليوم</title><language>ar</language>
<item><guid>ar-1</guid><title>هجوم مسلح على موقع عسكري قرب تيرا في غرب النيجر</title>
<description>أعلنت السلطات في نيامي أن مسلحين هاجموا موقعا للجيش قرب مدينة تيرا، وأسفر الهجوم عن سقوط
عدد من الجرحى الذين نقلوا إلى المستشفى.</description></item>
</channel></rss>"""

SETTINGS = IngestSettings(allow_private_urls="127.0.0.1/32")


@pytest.mark.parametrize(("text", "codec", "title"), [
    (FRENCH, "windows-1252", "Attaque à Téra : l'armée nigérienne répond"),
    (ARABIC, "windows-1256", "هجوم مسلح على موقع عسكري قرب تيرا في غرب النيجر"),
], ids=["french windows-1252", "arabic windows-1256"])
async def test_a_feed_with_no_declared_encoding_is_read_in_its_guessed_charset(
        feed_server: FeedServer, text: str, codec: str, title: str) -> None:
    url = feed_server.route("/legacy.xml", text.encode(codec), content_type="application/rss+xml")
    async with make_client(SETTINGS) as client:
        got = await fetch_feed(client, url, None, None, SETTINGS)
    parsed = parse_feed(got.body or b"", got.url, got.headers)
    assert parsed.entries[0].title == title
    assert "\ufffd" not in parsed.entries[0].text and "Ã" not in parsed.entries[0].text
    assert parsed.title == text.split("<title>")[1].split("</title>")[0]
    assert parsed.warning is not None and "no declared encoding" in parsed.warning


def test_a_declared_encoding_stays_authoritative() -> None:
    body = FRENCH.encode("windows-1252")
    declared = parse_feed(body, "http://x/", {"Content-Type": "application/rss+xml; charset=iso-8859-15"})
    assert declared.entries[0].title == "Attaque à Téra : l'armée nigérienne répond"
    assert declared.warning is None or "no declared encoding" not in declared.warning
    in_xml = FRENCH.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="iso-8859-1"?>')
    assert parse_feed(in_xml.encode("latin-1"), "http://x/", {}).entries[0].title.startswith("Attaque à Téra")
    # declared as KOI8-R (wrongly): the declaration wins, no guess
    wrong = parse_feed(body, "http://x/", {"Content-Type": "application/rss+xml; charset=koi8-r"})
    assert wrong.entries[0].title != "Attaque à Téra : l'armée nigérienne répond"
    utf8 = parse_feed(FRENCH.encode("utf-8"), "http://x/", {"Content-Type": "application/rss+xml"})
    assert utf8.entries[0].title == "Attaque à Téra : l'armée nigérienne répond" and utf8.warning is None


async def test_the_poller_stores_legacy_encoded_posts_as_their_text(
        service, sessions, feed_server: FeedServer, wf) -> None:
    import sqlalchemy as sa

    from shared.models import Post

    fr = feed_server.route("/fr.xml", FRENCH.encode("windows-1252"), content_type="application/rss+xml")
    ar = feed_server.route("/ar.xml", ARABIC.encode("windows-1256"), content_type="text/xml")
    for url, name in ((fr, "veille-fr"), (ar, "veille-ar")):
        assert (await asyncio.to_thread(wf, "source", "add", url, "--name", name, "--as-is")).exit_code == 0
    reports = await service.drain()
    assert sorted((r.source_id, r.new, r.error) for r in reports) == [("veille-ar", 1, None), ("veille-fr", 1, None)]
    async with sessions() as session:
        titles = dict((await session.execute(sa.select(Post.source_id, Post.title))).all())
    assert titles == {"veille-fr": "Attaque à Téra : l'armée nigérienne répond",
                      "veille-ar": "هجوم مسلح على موقع عسكري قرب تيرا في غرب النيجر"}
