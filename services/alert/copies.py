"""Which report copies which (pure): forwards, reposts and syndicated copies are not independent sources.

A report's text (title and body, case- and accent-folded, links dropped) is cut into word shingles
(`shingle_words` words each) and summarised as a MinHash signature (datasketch): `num_perm` 32-bit values
whose share of equal positions estimates the Jaccard similarity of two reports' shingle sets. One pass over
at most `max_chars` characters, so a 1 MB post costs a thousand times a 1 kB one.

A report whose similarity to an earlier report of the same incident reaches `threshold` is a copy; its
origin is the earliest report of that text (the origin of the report it copies, or the newcomer itself when
it was published earlier: then the group's copies point to it). Corroboration counts the sources of
originals only (`independent_sources`): a wire story pushed under a second source id does not raise it.

A report that cites another by link is a copy of it whatever its words: a Telegram forward names the message
it forwards (`forward_of`, a t.me link), a relay quotes the wire story's URL (`citations`). Two forwards of
one original that is not among the reports are copies of the first of them. Links are compared canonical
(`canonical_url`: no scheme, `www.`, fragment, tracking parameters or trailing slash; t.me's `/s/` preview
path is the message's own address).
"""

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
from datasketch import MinHash

SEED = 1
"""MinHash permutations are drawn from this seed: signatures stored by one process compare with another's."""
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_BATCH = 4096
"""Shingles hashed at once: bounds the (batch x num_perm) matrix datasketch builds to a few MB."""
MAX_CITATIONS = 20
"""Links of one report kept to compare (its forward first): a post listing hundreds of links costs no more."""
_TRACKING = frozenset({"fbclid", "gclid", "igshid", "mc_cid", "mc_eid", "ref", "ref_src", "single"})
"""Query parameters that say who shared a link, not what it names (and any `utm_*`; t.me's `?single`)."""


@dataclass(frozen=True)
class CopyPolicy:
    threshold: float = 0.8
    """Estimated Jaccard similarity from which a report is a copy of another."""
    shingle_words: int = 3
    num_perm: int = 128
    max_chars: int = 1_000_000
    """Characters of title and text read; the rest of a longer post is not signed."""


def words(title: str, text: str, max_chars: int) -> list[str]:
    """The words of a report, case- and accent-folded, without links (a copy often adds its own)."""
    body = f"{title}\n{text}"[:max_chars]
    folded = unicodedata.normalize("NFKD", _URL.sub(" ", body).casefold())
    return _WORD.findall("".join(c for c in folded if not unicodedata.combining(c)))


def shingles(tokens: list[str], size: int) -> set[str]:
    """Every run of `size` consecutive words (one shingle of all of them when there are fewer)."""
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


@functools.cache
def _permutations(num_perm: int) -> tuple[Any, Any]:
    """MinHash's random permutations for `num_perm` and SEED, and their scheme: the same for every signature, so
    drawn once (each MinHash would draw them again)."""
    template = MinHash(num_perm=num_perm, seed=SEED)
    return template.permutations, template.scheme


def signature(title: str, text: str, policy: CopyPolicy) -> bytes | None:
    """The report's MinHash signature (`num_perm` little-endian uint32), or None when it has no words."""
    found = shingles(words(title, text, policy.max_chars), policy.shingle_words)
    if not found:
        return None
    permutations, scheme = _permutations(policy.num_perm)
    minhash = MinHash(num_perm=policy.num_perm, seed=SEED, permutations=permutations, scheme=scheme)
    items = [s.encode() for s in found]
    for start in range(0, len(items), _BATCH):
        minhash.update_batch(items[start:start + _BATCH])
    return np.asarray(minhash.hashvalues, dtype="<u4").tobytes()


def similarity(a: bytes | None, b: bytes | None) -> float:
    """Estimated Jaccard similarity of two signatures; 0.0 when either is missing or they are not comparable
    (signed with another `num_perm`)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return float(np.mean(np.frombuffer(a, dtype="<u4") == np.frombuffer(b, dtype="<u4")))


def canonical_url(url: str | None) -> str | None:
    """The address a link names, for comparison: `https://www.X.org/a/?utm_source=t#top` and `http://x.org/a`
    are one; t.me's `/s/CHANNEL/N` preview path is `CHANNEL/N`. None for what is not an http(s) link."""
    if not url or len(url) > 2000:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    path = parts.path.rstrip("/")
    if host == "telegram.me":
        host = "t.me"
    if host == "t.me" and path.startswith("/s/"):
        path = path[2:]
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if k.lower() not in _TRACKING and not k.lower().startswith("utm_")))
    return f"{host}{f':{port}' if port else ''}{path}{f'?{query}' if query else ''}"


def forward_of(forwarded_from: str | None) -> str | None:
    """What a forward names as its original, canonical: its link, else its author's name as `name:...`."""
    if not forwarded_from or not forwarded_from.strip():
        return None
    return canonical_url(forwarded_from) or f"name:{' '.join(forwarded_from.casefold().split())[:200]}"


def citations(text: str, max_chars: int) -> tuple[str, ...]:
    """The links a report's text cites, canonical, at most `MAX_CITATIONS`, read from the first `max_chars`."""
    found: list[str] = []
    for match in _URL.finditer(text[:max_chars]):
        if len(found) >= MAX_CITATIONS:
            break
        raw = match.group(0).rstrip(".,;:!?)]}»\"'")
        link = canonical_url(raw if raw[:4].lower() != "www." else f"https://{raw}")
        if link and link not in found:
            found.append(link)
    return tuple(found)


@dataclass(frozen=True)
class Report:
    """The copy-relevant part of one report of an incident."""

    event_id: str
    source_id: str
    at: datetime
    signature: bytes | None
    origin: str | None = None
    """The event id of its origin; None or its own id: an original."""
    url: str | None = None
    """Its own address, canonical."""
    forward_of: str | None = None
    """What it forwards or reposts (`forward_of`); None: not a forward."""
    cites: tuple[str, ...] = ()
    """The links in its text (`citations`)."""

    @property
    def root(self) -> str:
        return self.origin or self.event_id

    def cites_report(self, other: "Report") -> bool:
        """It names the other report's address (forwards it or links to it)."""
        return other.url is not None and (other.url == self.forward_of or other.url in self.cites)

    def same_forward(self, other: "Report") -> bool:
        """Both forward one message."""
        return self.forward_of is not None and self.forward_of == other.forward_of


@dataclass(frozen=True)
class Origin:
    """Where a new report comes from. `origin` is its own event id when it is an original; `copy_of` the most
    similar earlier report when it is a copy; `repoint` the reports whose origin becomes the new report
    (it was published before what they copy: the first word, delivered late)."""

    origin: str
    copy_of: str | None = None
    similarity: float | None = None
    repoint: dict[str, str] = field(default_factory=dict)
    via: str | None = None
    """How the copy was found: "forward" (it forwards or links to `copy_of`, or forwards what it forwards),
    "text" (near-duplicate words); None for an original."""
    vias: dict[str, str] = field(default_factory=dict)
    """How each repointed report that was an original is a copy of the new origin ("forward" or "text")."""


def _link(new: Report, other: Report) -> bool:
    return new.cites_report(other) or other.cites_report(new) or new.same_forward(other)


def find_origin(new: Report, reports: Iterable[Report], policy: CopyPolicy) -> Origin:
    """The origin of `new` among the incident's other `reports` (bounded: one incident, not the whole log).

    The origin of a group is its earliest report, except that a report citing another is never the origin of
    what it cites (a forward's clock may run ahead of its original's)."""
    others = [r for r in reports if r.event_id != new.event_id]
    linked_to = {r.event_id for r in others if _link(new, r)}
    matches = [(1.0 if r.event_id in linked_to else similarity(new.signature, r.signature), r.event_id in linked_to, r)
               for r in others]
    matches = [m for m in matches if m[1] or m[0] >= policy.threshold]
    if not matches:
        return Origin(new.event_id)
    best_similarity, linked, best = max(matches, key=lambda m: (m[1], m[0], -m[2].at.timestamp(), m[2].event_id))
    roots = {r.root for _, _, r in matches}
    by_id = {r.event_id: r for r in others}
    candidates = [by_id[root] for root in roots if root in by_id]
    if not any(new.cites_report(r) for _, _, r in matches) or not candidates:
        candidates.append(new)
    citing = {r.event_id for r in candidates if any(r.cites_report(o) for o in candidates if o is not r)}
    first = min(candidates, key=lambda r: (r.event_id in citing, r.at, r.event_id))
    repoint = {r.event_id: first.event_id for r in others
               if r.root in roots and r.root != first.event_id and r.event_id != first.event_id}
    vias = {r.event_id: "forward" if r.event_id in linked_to or _link(first, r) else "text"
            for r in others if r.event_id in repoint and r.root == r.event_id}
    if first is new:
        return Origin(new.event_id, None, None, repoint, None, vias)
    if linked:
        return Origin(first.event_id, best.event_id, None, repoint, "forward", vias)
    return Origin(first.event_id, best.event_id, round(best_similarity, 3), repoint, "text", vias)


def independent_sources(reports: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """The sources of originals, sorted, from (event id, source id, origin) of every report of an incident."""
    return sorted({source for event_id, source, origin in reports if origin in (None, event_id)})


def by_origin(reports: Iterable[tuple[str, str, str | None, float | None, str | None]]) -> list[dict[str, Any]]:
    """Reports grouped by origin, for people: from (event id, source id, origin id, similarity, via) in arrival
    order, one group per original (`origin`, its `source_id`) with its `reports` (the original first, then its
    copies, each with its `origin`, `similarity` and `via`: "text" or "forward")."""
    groups: dict[str, dict[str, Any]] = {}
    for event_id, source_id, origin, similar, via in reports:
        root = origin or event_id
        group = groups.setdefault(root, {"origin": root, "source_id": None, "reports": []})
        entry = {"event_id": event_id, "source_id": source_id, "origin": root, "similarity": similar,
                 "via": None if root == event_id else via}
        if root == event_id:
            group["source_id"] = source_id
            group["reports"].insert(0, entry)
        else:
            group["reports"].append(entry)
    return list(groups.values())


def corroboration_reason(source_ids: list[str], independent: list[str]) -> str:
    """E.g. "sources 3 (2 independent: 1 syndicated copy)": how many sources an incident has and how many of
    them only copy another's report."""
    copies = len(set(source_ids) - set(independent))
    sources = len(set(source_ids))
    if not copies:
        return f"sources {sources} ({len(independent)} independent)"
    return (f"sources {sources} ({len(independent)} independent: {copies} syndicated "
            f"{'copy' if copies == 1 else 'copies'})")
