"""Alias tables (English, French, Hausa, Arabic script) compiled into ONE Aho-Corasick matcher.

Text and aliases are folded the same way (accents, case and punctuation do not count; Arabic letter
variants unified), so "l'EIGS", "Etat islamique au Grand Sahara" and "ÉTAT ISLAMIQUE…" all hit. Hits
must sit on word boundaries; short all-caps acronyms (EIS, FAN, MSA) must also match case exactly.
Cost grows with the text, not with the number of names.
"""

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import NamedTuple

import ahocorasick
from unidecode import unidecode

from services.classify import aliases


class Hit(NamedTuple):
    """One alias found in one field. `kind`: actor | tactic | cue | place; `value`: a code, or None to suppress.
    A named tuple, not a frozen dataclass: tens of them are made per post, and a tuple is built in C."""

    kind: str
    value: str | None
    field: str
    start: int
    end: int
    text: str
    weight: float = 1.0


_ARABIC = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ـ": ""})


_ASCII_FOLD = str.maketrans({chr(i): (chr(i).lower() if chr(i).isalnum() else " ") for i in range(128)})


def _piece(ch: str) -> str:
    """What one character folds to."""
    if ch.isascii():
        piece = ch.lower() if ch.isalnum() else " "
    else:
        cat = unicodedata.category(ch)
        if cat.startswith("M"):
            piece = ""  # combining accents, Arabic harakat
        elif cat.startswith("L") and ord(ch) < 0x0370:
            piece = re.sub(r"[^a-z0-9]", " ", unidecode(ch).lower() or " ")
        elif cat.startswith("L") or cat.startswith("N"):
            piece = ch.translate(_ARABIC).casefold()
        else:
            piece = " "
    return piece


# Every character seen so far -> what it folds to, as a str.translate table (grows to the alphabet in use).
_TABLE: dict[int, str] = {i: (chr(i).lower() if chr(i).isalnum() else " ") for i in range(128)}
_WIDE: set[str] = set()  # characters that fold to zero or several characters (accents alone, ligatures)


@lru_cache(maxsize=512)
def fold(text: str) -> tuple[str, Sequence[int]]:
    """Folded text and, for each folded char, its index in `text` (so hits map back to real offsets).
    Cached: the same title and body are folded by several passes of one classification. One C-level pass
    (str.translate) unless the text holds a character that folds to other than one character."""
    if text.isascii():
        return text.translate(_ASCII_FOLD), range(len(text))
    chars = set(text)
    for ch in chars:
        if ord(ch) not in _TABLE:
            piece = _piece(ch)
            _TABLE[ord(ch)] = piece
            if len(piece) != 1:
                _WIDE.add(ch)
    folded = text.translate(_TABLE)
    if not (chars & _WIDE):
        return folded, range(len(text))
    index = tuple(i for i, ch in enumerate(text) for _ in _TABLE[ord(ch)])
    return folded, index


def fold_alias(alias: str) -> str:
    folded, _ = fold(alias)
    return " ".join(folded.split())


_SPACE_RUN = re.compile(r" {2,}")  # a literal prefix: the engine skips to each "  " (an alternation with ^ +
# would be tried at every character); a single leading space is added by hand (`_space_runs`)


def _space_runs(folded: str) -> list[tuple[int, int]]:
    """(start, end) of what `^ +| {2,}` finds: the leading spaces, and every later run of two or more."""
    runs = [m.span() for m in _SPACE_RUN.finditer(folded)]
    if folded.startswith(" ") and not folded.startswith("  "):
        runs.insert(0, (0, 1))
    return runs


class _SquashedIndex(Sequence[int]):
    """For each character of a squashed text, its index in the original: kept as the runs of kept characters
    (built in the number of space runs, not of characters) and looked up by bisection, since a post's hits ask
    for a handful of positions."""

    def __init__(self, starts: list[int], bases: list[int], base: Sequence[int], length: int) -> None:
        self._starts, self._bases, self._base, self._len = starts, bases, base, length

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):  # type: ignore[override]  # positions only: no caller slices it
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        k = bisect_right(self._starts, i) - 1
        return self._base[self._bases[k] + i - self._starts[k]]


@lru_cache(maxsize=64)
def squash(text: str) -> tuple[str, Sequence[int]]:
    """Folded text with runs of spaces collapsed, so "al - Qaeda" and "al-Qaeda" fold alike."""
    folded, index = fold(text)
    if "  " not in folded and not folded.startswith(" "):
        return folded, index
    # keep a character unless it is a space after a space (or at the start)
    parts: list[str] = []
    starts: list[int] = []  # where each kept run starts in the squashed text
    bases: list[int] = []  # and in the folded one
    pos = out = 0
    for run_start, run_end in _space_runs(folded):
        keep_to = run_start + (1 if run_start else 0)
        starts.append(out)
        bases.append(pos)
        parts.append(folded[pos:keep_to])
        out += keep_to - pos
        pos = run_end
    starts.append(out)
    bases.append(pos)
    parts.append(folded[pos:])
    out += len(folded) - pos
    return "".join(parts), _SquashedIndex(starts, bases, index, out)


# A "sentence" is looked for at most this far either side: a post with no full stop costs the same per hit.
SENTENCE_REACH = 400


def sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    """Start and end of the sentence around `pos` (". ", "; " or a line break), at most SENTENCE_REACH away."""
    lo, hi = max(0, pos - SENTENCE_REACH), min(len(text), pos + SENTENCE_REACH)
    start = max(text.rfind(". ", lo, pos), text.rfind("; ", lo, pos), text.rfind("\n", lo, pos))
    end_candidates = [i for i in (text.find(". ", pos, hi), text.find("; ", pos, hi)) if i != -1]
    return (start + 1 if start >= 0 else lo), (min(end_candidates) if end_candidates else hi)


# Arabic writes conjunctions, prepositions and the article onto the word ("وللجيش", "بسيارة") and case or
# pronoun endings after it ("كمينا", "عناصرها"): a hit may sit inside such a word, never inside any other.
# (not ك "like": it makes كمينا, an ambush, into ك + مينا, Minna)
_AR_PREFIXES = {"و", "ب", "ل", "ف", "ال", "وال", "بال", "لل", "فال", "وب", "ول", "وف", "فب", "ولل"}
_AR_VERB_PREFIXES = {"ي", "ت", "ن", "وي", "وت", "فت", "في", "سي", "ست", "وسي"}
_AR_SUFFIXES = {"ا", "ه", "ها", "هم", "هما", "ات", "ين", "ون", "ي", "يا", "ان", "وا", "نا"}


def _is_arabic(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff"


def _arabic_clitic(folded: str, start: int, length: int = 0, payload: list | None = None) -> bool:
    """Is what sticks to the front of an Arabic alias a clitic (و, ب, ال…)? Or, before an attack verb of four
    letters or more, the prefix of its present tense (يهاجمون "they attack", تستهدف, سيقتحمون)."""
    if not _is_arabic(folded[start]):
        return False
    i = start
    while i > 0 and folded[i - 1].isalnum():
        i -= 1
    prefix = folded[i:start]
    if prefix in _AR_PREFIXES:
        return True
    return prefix in _AR_VERB_PREFIXES and length >= 4 and any(p[0] == "tactic" for p in payload or ())


def _arabic_suffix(folded: str, end: int) -> bool:
    if not _is_arabic(folded[end]):
        return False
    j = end + 1
    while j < len(folded) and folded[j].isalnum():
        j += 1
    return folded[end + 1 : j] in _AR_SUFFIXES


def _case_prefix(alias: str) -> str:
    """What the original text must start with: all of a short all-caps alias ("FAN" the army, not "fan"),
    or its leading acronym word ("UN camp", not French "un camp"); else nothing."""
    if alias.isupper() and len(alias) <= 5 and alias.isascii():
        return alias
    first = alias.split(" ", 1)[0]
    if " " in alias and first.isupper() and len(first) <= 3 and first.isalpha() and first.isascii():
        return first + " "
    return ""


class Matcher:
    """One automaton over every alias; `scan` returns the leftmost-longest, non-overlapping hits."""

    def __init__(self, entries: list[tuple[str, str, str | None, float]]) -> None:
        self._auto = ahocorasick.Automaton()
        table: dict[str, list[tuple[str, str | None, str, bool, float]]] = {}
        for kind, alias, value, weight in entries:
            key = fold_alias(alias)
            if len(key) < 2:
                continue
            table.setdefault(key, []).append((kind, value, alias, _case_prefix(alias), weight))
        for key, payload in table.items():
            self._auto.add_word(key, (len(key), payload))
        self._auto.make_automaton()
        self.size = len(table)
        self._recent: dict[str, tuple[list[tuple[int, int, list]], Sequence[int]]] = {}
        self._scans: dict[tuple[str, str, tuple[str, ...] | None], list[Hit]] = {}

    def _candidates(self, text: str) -> tuple[list[tuple[int, int, list]], Sequence[int]]:
        """Every alias on word boundaries in `text`, sorted leftmost-longest, with the fold index. One pass of
        the automaton per text: the scans of one post for actors, tactics and cues share it."""
        cached = self._recent.get(text)
        if cached is not None:
            return cached
        folded, index = squash(text)
        found: list[tuple[int, int, list]] = []
        for end, (length, payload) in self._auto.iter(folded):
            start = end - length + 1
            if start > 0 and folded[start - 1].isalnum() and not _arabic_clitic(folded, start, length, payload):
                continue
            if end + 1 < len(folded) and folded[end + 1].isalnum() and not _arabic_suffix(folded, end):
                continue
            found.append((start, end, payload))
        found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
        if len(self._recent) >= 8:
            self._recent.clear()
        self._recent[text] = (found, index)
        return found, index

    def scan(self, text: str, field: str, kinds: tuple[str, ...] | None = None) -> list[Hit]:
        """Hits of the given kinds, leftmost-longest. The passes of one post (labels, status, roundups) ask for the
        same scans: the last few are kept (Hits are frozen; the list is a copy)."""
        key = (text, field, kinds)
        done = self._scans.get(key)
        if done is None:
            done = self._scan(text, field, kinds)
            if len(self._scans) >= 16:
                self._scans.clear()
            self._scans[key] = done
        return list(done)

    def _scan(self, text: str, field: str, kinds: tuple[str, ...] | None) -> list[Hit]:
        found, index = self._candidates(text)
        # Leftmost-longest per call: a longer alias ("Chadian soldiers") hides the shorter one inside it ("soldiers").
        hits: list[Hit] = []
        taken_until = -1
        for start, end, payload in found:
            if start <= taken_until:
                continue
            wanted = payload if kinds is None else [p for p in payload if p[0] in kinds]
            if not wanted:
                continue  # most candidates are of another kind: no need to map them back to the text
            o_start, o_end = index[start], index[end] + 1
            original = text[o_start:o_end]
            usable = [p for p in wanted if original.startswith(p[3])]
            if not usable:
                continue
            taken_until = end
            for kind, value, _alias, _case, weight in usable:
                hits.append(Hit(kind, value, field, o_start, o_end, original, weight))
        return hits


@cache
def label_matcher() -> Matcher:
    """Actors, tactic cues, context cues (claims, denials, non-events…) and report-status cues in one automaton:
    one pass over a text serves every scan of it."""
    entries: list[tuple[str, str, str | None, float]] = []
    for code, names in aliases.ACTORS.items():
        entries += [("actor", name, code, 1.0) for name in names]
    entries += [("actor", name, None, 1.0) for name in aliases.ACTOR_SUPPRESSORS]
    entries += [("actor", name, "IS_GENERIC", 1.0) for name in aliases.GENERIC_IS]
    entries += [("army", name, country, 1.0) for name, country in aliases.GENERIC_ARMY.items()]
    for code, names in aliases.TACTICS.items():
        entries += [("tactic", name, code, 1.0) for name in names]
    entries += [("tactic", name, None, 1.0) for name in aliases.TACTIC_SUPPRESSORS]
    for cue, names in aliases.CUES.items():
        entries += [("cue", name, cue, 1.0) for name in names]
    for cue_class, names in aliases.STATUS_CUES.items():
        entries += [("status", name, cue_class, 1.0) for name in names]
    # "الجيش المالي" is written "للجيش المالي" after the preposition li- (the article's alef drops).
    entries += [(k, "لل" + a[2:], v, w) for k, a, v, w in entries if a.startswith("ال") and len(a) > 4]
    return Matcher(entries)
