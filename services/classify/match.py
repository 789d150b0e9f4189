"""Alias tables (English, French, Hausa, Arabic script) compiled into ONE Aho-Corasick matcher.

Text and aliases are folded the same way (accents, case and punctuation do not count; Arabic letter
variants unified), so "l'EIGS", "Etat islamique au Grand Sahara" and "ÉTAT ISLAMIQUE…" all hit. Hits
must sit on word boundaries; short all-caps acronyms (EIS, FAN, MSA) must also match case exactly.
Cost grows with the text, not with the number of names.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import ahocorasick
from unidecode import unidecode

from services.classify import aliases


@dataclass(frozen=True)
class Hit:
    """One alias found in one field. `kind`: actor | tactic | cue | place; `value`: a code, or None to suppress."""

    kind: str
    value: str | None
    field: str
    start: int
    end: int
    text: str
    weight: float = 1.0


_ARABIC = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ـ": ""})


_ASCII_FOLD = str.maketrans({chr(i): (chr(i).lower() if chr(i).isalnum() else " ") for i in range(128)})


@lru_cache(maxsize=8192)
def fold(text: str) -> tuple[str, tuple[int, ...]]:
    """Folded text and, for each folded char, its index in `text` (so hits map back to real offsets).
    Cached: the same title and body are folded by several passes of one classification."""
    if text.isascii():
        return text.translate(_ASCII_FOLD), tuple(range(len(text)))
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            piece = ch.lower() if ch.isalnum() else " "
        else:
            cat = unicodedata.category(ch)
            if cat.startswith("M"):
                continue  # combining accents, Arabic harakat
            if cat.startswith("L") and ord(ch) < 0x0370:
                piece = unidecode(ch).lower() or " "
                piece = re.sub(r"[^a-z0-9]", " ", piece)
            elif cat.startswith("L") or cat.startswith("N"):
                piece = ch.translate(_ARABIC).casefold()
            else:
                piece = " "
        for c in piece:
            out.append(c)
            index.append(i)
    return "".join(out), tuple(index)


def fold_alias(alias: str) -> str:
    folded, _ = fold(alias)
    return " ".join(folded.split())


@lru_cache(maxsize=4096)
def _squashed(text: str) -> tuple[str, tuple[int, ...]]:
    """Folded text with runs of spaces collapsed, so "al - Qaeda" and "al-Qaeda" fold alike."""
    folded, index = fold(text)
    out: list[str] = []
    idx: list[int] = []
    prev_space = True
    for c, i in zip(folded, index, strict=True):
        if c == " ":
            if prev_space:
                continue
            prev_space = True
        else:
            prev_space = False
        out.append(c)
        idx.append(i)
    return "".join(out), tuple(idx)


class Matcher:
    """One automaton over every alias; `scan` returns the leftmost-longest, non-overlapping hits."""

    def __init__(self, entries: list[tuple[str, str, str | None, float]]) -> None:
        self._auto = ahocorasick.Automaton()
        table: dict[str, list[tuple[str, str | None, str, bool, float]]] = {}
        for kind, alias, value, weight in entries:
            key = fold_alias(alias)
            if len(key) < 2:
                continue
            case_exact = alias.isupper() and len(alias) <= 5 and alias.isascii()
            table.setdefault(key, []).append((kind, value, alias, case_exact, weight))
        for key, payload in table.items():
            self._auto.add_word(key, (len(key), payload))
        self._auto.make_automaton()
        self.size = len(table)

    def scan(self, text: str, field: str, kinds: tuple[str, ...] | None = None) -> list[Hit]:
        folded, index = _squashed(text)
        found: list[tuple[int, int, list]] = []
        for end, (length, payload) in self._auto.iter(folded):
            start = end - length + 1
            if start > 0 and folded[start - 1].isalnum():
                continue
            if end + 1 < len(folded) and folded[end + 1].isalnum():
                continue
            found.append((start, end, payload))
        # Leftmost-longest: a longer alias ("Chadian soldiers") hides the shorter one inside it ("soldiers").
        found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
        hits: list[Hit] = []
        taken_until = -1
        for start, end, payload in found:
            if start <= taken_until:
                continue
            o_start, o_end = index[start], index[end] + 1
            original = text[o_start:o_end]
            usable = [p for p in payload if (kinds is None or p[0] in kinds) and (not p[3] or original == p[2])]
            if not usable:
                continue
            taken_until = end
            for kind, value, _alias, _case, weight in usable:
                hits.append(Hit(kind, value, field, o_start, o_end, original, weight))
        return hits


@cache
def label_matcher() -> Matcher:
    """Actors, tactic cues and context cues (claims, denials, non-events…) in one automaton."""
    entries: list[tuple[str, str, str | None, float]] = []
    for code, names in aliases.ACTORS.items():
        entries += [("actor", name, code, 1.0) for name in names]
    entries += [("actor", name, None, 1.0) for name in aliases.ACTOR_SUPPRESSORS]
    entries += [("actor", name, "IS_GENERIC", 1.0) for name in aliases.GENERIC_IS]
    entries += [("army", name, country, 1.0) for name, country in aliases.GENERIC_ARMY.items()]
    for code, names in aliases.TACTICS.items():
        entries += [("tactic", name, code, 1.0) for name in names]
    for cue, names in aliases.CUES.items():
        entries += [("cue", name, cue, 1.0) for name in names]
    return Matcher(entries)
