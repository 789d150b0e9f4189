"""A source's keep and block patterns (a feed reader's keeplist and blocklist, as Miniflux's per feed): which of
its new posts are published (pure).

Patterns are RE2 regular expressions (google-re2, the syntax Miniflux's rules use), matched case- and
accent-insensitively on a post's title and its text's first `max_chars` characters (not its URL: a site's
domain would match every post of the site, so `--keep sahel` would keep all of sahel-intelligence.com). RE2 runs in time
linear in the text whatever the pattern (no backtracking: `(a+)+$` costs what `a` costs), so a pattern an
operator types cannot stall ingest; what only backtracking can do (backreferences, lookaround) is refused.
"""

import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

from shared.errors import ReasonError
from shared.messages import PostMessage

MAX_PATTERN_CHARS = 300
MAX_PATTERNS = 20  # per list
TITLE_CHARS = 1_000  # as classify reads a title
_MAX_MEM = 1 << 20  # bytes for one compiled pattern; a pattern that needs more is refused as too large


class PatternError(ReasonError):
    """A keep or block pattern that cannot be used. `reason` names the pattern and what is wrong with it."""


class _Folded(dict[int, str]):
    """str.translate table: a character to itself without accents (NFKD, combining marks and Arabic harakat
    dropped, tatweel dropped), filled on first sight of each character."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = "" if ch == "\u0640" else "".join(
            c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
        )
        self[code] = folded
        return folded


_FOLD = _Folded()


def fold(text: str) -> str:
    """Text without accents, harakat or tatweel ("Sécurité" -> "Securite", "أمن" -> "امن"), so that a pattern
    written without them matches text written with them and the other way round. ASCII is left as is, so a
    pattern's syntax (escapes, classes) is unchanged by folding. Case is left to the matcher."""
    return text if text.isascii() else text.translate(_FOLD)


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a bad pattern is our PatternError, not a line on stderr
    options.max_mem = _MAX_MEM
    return options


def _compiled(pattern: str, which: str) -> Any:
    try:
        return re2.compile(fold(pattern), _options())
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = ""
        if "invalid escape" in why or "invalid perl operator" in why:
            hint = " (backreferences and lookaround are not supported: RE2 syntax)"
        raise PatternError(f"{which} pattern {pattern!r}: {why}{hint}") from None


def check_patterns(patterns: list[str] | tuple[str, ...], which: str) -> list[str]:
    """The patterns as they will be stored: stripped, empty ones and repeats dropped, each compiled once to
    refuse a bad one now rather than at the next poll. Raises PatternError naming the pattern and the fault."""
    kept: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern in kept:
            continue
        if len(pattern) > MAX_PATTERN_CHARS:
            raise PatternError(f"{which} pattern {pattern[:40]!r}… is {len(pattern)} characters; at most "
                               f"{MAX_PATTERN_CHARS} (use several patterns)")
        if "\n" in pattern or "\r" in pattern:
            raise PatternError(f"{which} pattern {pattern!r}: a pattern is one line")
        _compiled(pattern, which)
        kept.append(pattern)
    if len(kept) > MAX_PATTERNS:
        raise PatternError(f"{len(kept)} {which} patterns; at most {MAX_PATTERNS} (join alternatives with |)")
    return kept


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


@dataclass(frozen=True)
class SourceFilter:
    """A source's compiled patterns. `kept_out` says why a post is not published, or None if it is."""

    keep: tuple[tuple[str, Any], ...]
    block: tuple[tuple[str, Any], ...]

    def kept_out(self, title: str, text: str, max_chars: int) -> str | None:
        """None if the post is published: it matches no block pattern and, when there are keep patterns, at
        least one of them. Otherwise why not: "by block pattern 'football'" or "matching no keep pattern".
        Title and text are matched each on its own (`^` is the start of either); the text's first `max_chars`
        characters only, so a 1 MB post costs what its head costs."""
        fields = [f for f in (fold(_head(title, TITLE_CHARS)), fold(_head(text, max_chars))) if f]
        for pattern, regex in self.block:  # a block wins over a keep, as in Miniflux
            if any(regex.search(f) for f in fields):
                return f"by block pattern {pattern!r}"
        if self.keep and not any(regex.search(f) for _, regex in self.keep for f in fields):
            return "matching no keep pattern"
        return None


@lru_cache(maxsize=1024)
def compile_filter(keep: tuple[str, ...], block: tuple[str, ...]) -> SourceFilter | None:
    """The filter of a source's stored patterns, None if it has none (every post is published). Cached: a
    source's patterns are compiled once, not once per poll. Raises PatternError for a stored pattern that no
    longer compiles."""
    if not keep and not block:
        return None
    return SourceFilter(keep=tuple((p, _compiled(p, "keep")) for p in keep),
                        block=tuple((p, _compiled(p, "block")) for p in block))


def source_filter(keep: list[str] | None, block: list[str] | None) -> SourceFilter | None:
    """`compile_filter` for patterns as a source row holds them (a JSON list, or NULL)."""
    return compile_filter(tuple(keep or ()), tuple(block or ()))


@dataclass(frozen=True)
class Screened:
    """New posts split by a source's filter: those to publish, and those kept out with the reason."""

    kept: list[tuple[PostMessage, str]]
    kept_out: list[tuple[PostMessage, str, str]]  # (post, dedup key, reason)


def screen(posts: list[tuple[PostMessage, str]], filter_: SourceFilter | None, max_chars: int) -> Screened:
    """Splits (post, dedup key) pairs into published and kept out, in the given order."""
    if filter_ is None:
        return Screened(kept=list(posts), kept_out=[])
    kept: list[tuple[PostMessage, str]] = []
    kept_out: list[tuple[PostMessage, str, str]] = []
    for post, key in posts:
        reason = filter_.kept_out(post.title, post.text, max_chars)
        if reason is None:
            kept.append((post, key))
        else:
            kept_out.append((post, key, reason))
    return Screened(kept=kept, kept_out=kept_out)


def kept_out_note(reasons: list[str]) -> str:
    """What ops read in a source's health: "kept out 12 posts by block pattern 'football'", or with several
    reasons "kept out 3 posts: 2 by block pattern 'football', 1 matching no keep pattern"."""
    counts = Counter(reasons)
    total = len(reasons)
    noun = "post" if total == 1 else "posts"
    if len(counts) == 1:
        return f"kept out {total} {noun} {reasons[0]}"
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    return f"kept out {total} {noun}: {parts}"
