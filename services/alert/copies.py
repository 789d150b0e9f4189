"""Which report copies which (pure): forwards, reposts and syndicated copies are not independent sources.

A report's text (title and body, case- and accent-folded, links dropped) is cut into word shingles
(`shingle_words` words each) and summarised as a MinHash signature (datasketch): `num_perm` 32-bit values
whose share of equal positions estimates the Jaccard similarity of two reports' shingle sets. One pass over
at most `max_chars` characters, so a 1 MB post costs a thousand times a 1 kB one.

A report whose similarity to an earlier report of the same incident reaches `threshold` is a copy; its
origin is the earliest report of that text (the origin of the report it copies, or the newcomer itself when
it was published earlier: then the group's copies point to it). Corroboration counts the sources of
originals only (`independent_sources`): a wire story pushed under a second source id does not raise it.
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from datasketch import MinHash

SEED = 1
"""MinHash permutations are drawn from this seed: signatures stored by one process compare with another's."""
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_BATCH = 4096
"""Shingles hashed at once: bounds the (batch x num_perm) matrix datasketch builds to a few MB."""


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


def signature(title: str, text: str, policy: CopyPolicy) -> bytes | None:
    """The report's MinHash signature (`num_perm` little-endian uint32), or None when it has no words."""
    found = shingles(words(title, text, policy.max_chars), policy.shingle_words)
    if not found:
        return None
    minhash = MinHash(num_perm=policy.num_perm, seed=SEED)
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


@dataclass(frozen=True)
class Report:
    """The copy-relevant part of one report of an incident."""

    event_id: str
    source_id: str
    at: datetime
    signature: bytes | None
    origin: str | None = None
    """The event id of its origin; None or its own id: an original."""

    @property
    def root(self) -> str:
        return self.origin or self.event_id


@dataclass(frozen=True)
class Origin:
    """Where a new report comes from. `origin` is its own event id when it is an original; `copy_of` the most
    similar earlier report when it is a copy; `repoint` the reports whose origin becomes the new report
    (it was published before what they copy: the first word, delivered late)."""

    origin: str
    copy_of: str | None = None
    similarity: float | None = None
    repoint: dict[str, str] = field(default_factory=dict)


def find_origin(new: Report, reports: Iterable[Report], policy: CopyPolicy) -> Origin:
    """The origin of `new` among the incident's other `reports` (bounded: one incident, not the whole log)."""
    others = [r for r in reports if r.event_id != new.event_id]
    matches = [(s, r) for r in others if (s := similarity(new.signature, r.signature)) >= policy.threshold]
    if not matches:
        return Origin(new.event_id)
    best_similarity, best = max(matches, key=lambda m: (m[0], -m[1].at.timestamp(), m[1].event_id))
    roots = {r.root for _, r in matches}
    by_id = {r.event_id: r for r in others}
    first = min([by_id[root] for root in roots if root in by_id] + [new], key=lambda r: (r.at, r.event_id))
    repoint = {r.event_id: first.event_id for r in others
               if r.root in roots and r.root != first.event_id and r.event_id != first.event_id}
    if first is new:
        return Origin(new.event_id, None, None, repoint)
    return Origin(first.event_id, best.event_id, round(best_similarity, 3), repoint)


def independent_sources(reports: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """The sources of originals, sorted, from (event id, source id, origin) of every report of an incident."""
    return sorted({source for event_id, source, origin in reports if origin in (None, event_id)})


def by_origin(reports: Iterable[tuple[str, str, str | None, float | None]]) -> list[dict[str, Any]]:
    """Reports grouped by origin, for people: from (event id, source id, origin id, similarity) in arrival
    order, one group per original (`origin`, its `source_id`) with its `reports` (the original first, then its
    copies, each with its `origin` and `similarity`)."""
    groups: dict[str, dict[str, Any]] = {}
    for event_id, source_id, origin, similar in reports:
        root = origin or event_id
        group = groups.setdefault(root, {"origin": root, "source_id": None, "reports": []})
        entry = {"event_id": event_id, "source_id": source_id, "origin": root, "similarity": similar}
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
