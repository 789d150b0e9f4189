"""OPML 2.0 subscription lists in and out, and feed discovery from a site's HTML page (pure, no I/O).

OPML is read with the stdlib's expat and no DTD at all: a document type declaration or an entity declaration
is refused outright (no billion laughs, no external entities), whatever expat's own limits would allow.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urljoin
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from shared.errors import ReasonError

WF_NS = "https://github.com/watchfloor/opml"  # our attributes: wf:id, wf:interval, wf:lang, wf:keep, wf:block
_WF = WF_NS + " "


class OpmlError(ReasonError):
    """The file is not an OPML list we can read. `reason` is shown as-is."""


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    name: str | None
    folder: str  # "World/Sahel" for nested outlines, "" at the top
    interval: int | None = None
    source_id: str | None = None
    lang: str | None = None
    keep: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)


def _patterns(value: str | None, which: str, url: str) -> list[str]:
    """wf:keep / wf:block: a JSON array of pattern strings (a pattern may hold any character, `|` and `,`
    included)."""
    if not value:
        return []
    try:
        patterns = json.loads(value)
    except ValueError:
        patterns = None
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise OpmlError(f"outline {url}: wf:{which} must be a JSON array of strings, e.g. [\"sahel\", \"niger\"]")
    return patterns


def _refuse_dtd(*_: object) -> None:
    raise OpmlError("the OPML declares a DTD or entities; refused (entity expansion is never done)")


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """Every outline with an xmlUrl, in document order, nested folders flattened into `folder`."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    feeds: list[OpmlFeed] = []
    folders: list[str] = []
    root: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if not root:
            root.append(tag)
        if tag != "outline":
            return
        url = (attrs.get("xmlUrl") or "").strip()
        label = (attrs.get("text") or attrs.get("title") or "").strip()
        if url:
            interval = attrs.get(_WF + "interval", "").strip()
            feeds.append(OpmlFeed(url=url, name=label or None, folder="/".join(f for f in folders if f),
                                  interval=int(interval) if interval.isdigit() else None,
                                  source_id=attrs.get(_WF + "id") or None,
                                  lang=(attrs.get(_WF + "lang") or "").strip() or None,
                                  keep=_patterns(attrs.get(_WF + "keep"), "keep", url),
                                  block=_patterns(attrs.get(_WF + "block"), "block", url)))
        folders.append("" if url else label)

    def end(tag: str) -> None:
        if tag == "outline":
            folders.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise OpmlError(f"not well-formed XML: {expat.ErrorString(exc.code)} at line {exc.lineno}") from None
    if root != ["opml"]:
        raise OpmlError(f"not an OPML file (the root element is <{root[0] if root else ''}>, not <opml>)")
    return feeds


@dataclass(frozen=True)
class FeedSource:
    source_id: str
    name: str
    url: str
    interval: int
    lang: str | None = None
    keep: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)


def write_opml(sources: list[FeedSource], title: str = "watchfloor feed sources") -> str:
    """OPML 2.0: one `type="rss"` outline per feed, with wf:id and wf:interval (seconds between polls), and
    wf:lang, wf:keep and wf:block (JSON arrays) when set. Other readers ignore attributes in our namespace."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<opml version="2.0" xmlns:wf={quoteattr(WF_NS)}>',
        f"  <head><title>{_text(title)}</title></head>",
        "  <body>",
    ]
    for s in sources:
        extra = f" wf:lang={quoteattr(s.lang)}" if s.lang else ""
        for which, patterns in (("keep", s.keep), ("block", s.block)):
            if patterns:
                extra += f" wf:{which}={_attr(json.dumps(patterns, ensure_ascii=False))}"
        lines.append(f'    <outline type="rss" text={quoteattr(s.name)} title={quoteattr(s.name)} '
                     f"xmlUrl={quoteattr(s.url)} wf:id={quoteattr(s.source_id)} wf:interval=\"{s.interval}\"{extra}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _attr(value: str) -> str:
    """An attribute value that reads back exactly: tabs and newlines escaped too (XML would turn them into
    spaces)."""
    return quoteattr(value, {"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- discovery ----------------------------------------------------------------------------------------------

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")


@dataclass(frozen=True)
class Alternate:
    url: str
    type: str
    title: str


def discover_feeds(html: bytes | str, page_url: str) -> list[Alternate]:
    """`<link rel="alternate" type="…rss+xml|atom+xml|feed+json">` of a page, hrefs resolved against the
    page (and its `<base href>`), in page order, each URL once."""
    from selectolax.lexbor import LexborHTMLParser

    text = html.decode("utf-8", errors="replace") if isinstance(html, bytes) else html
    tree = LexborHTMLParser(text)
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None and (base_node.attributes.get("href") or "").strip():
        base = urljoin(page_url, (base_node.attributes.get("href") or "").strip())
    found: list[Alternate] = []
    seen: set[str] = set()
    for node in tree.css("link[rel][href]"):
        rels = (node.attributes.get("rel") or "").lower().split()
        kind = (node.attributes.get("type") or "").lower().split(";")[0].strip()
        href = (node.attributes.get("href") or "").strip()
        if "alternate" not in rels or kind not in FEED_TYPES or not href:
            continue
        url = urljoin(base, href)
        if url in seen:
            continue
        seen.add(url)
        found.append(Alternate(url=url, type=kind, title=(node.attributes.get("title") or "").strip()))
    return found
