"""The death toll a post states: digits or number words (English, French, Hausa, Arabic), never the wounded.

Returns None when the post gives no number or conflicting ones ("147 dead" vs "about sixty"):
an analyst would rather see no toll than the wrong one.
"""

import re
from dataclasses import dataclass

from services.classify.match import fold

_UNITS = {
    # English
    "one": 1,
    "a single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "a hundred": 100,
    "hundred": 100,
    # French
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "treize": 13,
    "quatorze": 14,
    "quinze": 15,
    "seize": 16,
    "dix sept": 17,
    "dix huit": 18,
    "dix neuf": 19,
    "vingt": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
    "soixante dix": 70,
    "quatre vingt": 80,
    "quatre vingts": 80,
    "quatre vingt dix": 90,
    "cent": 100,
    # approximate French nouns: "une trentaine de voyageurs"
    "une dizaine": 10,
    "une douzaine": 12,
    "une quinzaine": 15,
    "une vingtaine": 20,
    "une trentaine": 30,
    "une quarantaine": 40,
    "une cinquantaine": 50,
    "une soixantaine": 60,
    "une centaine": 100,
    # Hausa
    "daya": 1,
    "biyu": 2,
    "uku": 3,
    "hudu": 4,
    "biyar": 5,
    "shida": 6,
    "bakwai": 7,
    "takwas": 8,
    "tara": 9,
    "goma": 10,
    "ashirin": 20,
    "talatin": 30,
    "arba in": 40,
    "hamsin": 50,
    # Arabic (folded: alef variants unified, ta marbuta as ha)
    "احد عشر": 11,
    "اثنا عشر": 12,
    "ثلاثه": 3,
    "اربعه": 4,
    "خمسه": 5,
    "سته": 6,
    "سبعه": 7,
    "ثمانيه": 8,
    "تسعه": 9,
    "عشره": 10,
    "عشرين": 20,
    "ثلاثين": 30,
}
_TENS_EN = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_TENS_FR = {"vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60}
for _t, _tv in _TENS_EN.items():
    for _u, _uv in list(_UNITS.items())[1:10]:
        _UNITS[f"{_t} {_u}"] = _tv + _uv
for _t, _tv in _TENS_FR.items():
    for _u in ("deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"):
        _UNITS[f"{_t} {_u}"] = _tv + _UNITS[_u]
    _UNITS[f"{_t} et un"] = _tv + 1
for _u in ("onze", "douze", "treize", "quatorze", "quinze", "seize", "dix sept", "dix huit", "dix neuf", "un"):
    _UNITS[f"soixante {_u}" if _u != "un" else "soixante et onze"] = 60 + (_UNITS[_u] + 10 if _u != "un" else 11)

_NUM = r"(?:\d{1,4}|" + "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True)) + r")"
_HEDGE = r"(?:at least |au moins |akalla |about |some |environ |quelque |nearly |more than |plus de |over )?"
_KILLED = (
    r"(?:killed|dead|died|perished|were killed|have been killed|was killed|lost their lives|morts?|tues?|tuees?|"
    r"ont ete tue(?:e)?s|ont peri|ont trouve la mort|sun rasa rayukansu|suka mutu|sun mutu|hommes? tues?)"
)
_GAP = r"(?:\s(?!wounded\b|blesses?\b|injured\b|when\b|lorsque\b|after\b|apres\b|of\s+them\b)[^\s]+){0,7}?"
_AFTER = re.compile(
    rf"\b(?P<n>{_NUM})(?:\s+(?:de|d|of))?{_GAP}\s+(?:were |have been |ont ete |a ete |was )?{_KILLED}\b"
)
_BEFORE = re.compile(
    rf"\b(?:killing|killed|kill|tuant|tue|a tue|ont tue|an kashe|sun kashe|ya kashe|kashe|executed|execute|"
    rf"a perdu|lost|toll at|toll to|bilan de|fait etat de|faisant|left|binne|killing of|في)\s+{_HEDGE}"
    rf"(?:(?:mutane|farar hula|manoman shinkafa|people|persons|personnes)\s+{_HEDGE})?(?P<n>{_NUM})\b"
)
_NOT_DEATH = re.compile(
    r"^\s*(?:km|kilometres?|kilometers?|kilomitas?|ans|years|hours|heures|jours|days|%|h\b|de kilometres|metres)"
)


@dataclass(frozen=True)
class Toll:
    killed: int | None
    reason: str


def _value(token: str) -> int | None:
    token = " ".join(token.split())
    if token.isdigit():
        value = int(token)
        return None if 1900 <= value <= 2100 else value
    return _UNITS.get(token)


def _numbers(text: str) -> list[int]:
    found: list[int] = []
    for clause in re.split(r"[,;:!?()]|\.(?!\d)", text):
        found += _clause_numbers(clause)
    return found


def _clause_numbers(clause: str) -> list[int]:
    folded, _ = fold(clause)
    folded = " ".join(folded.split())
    found: list[int] = []
    for rx in (_AFTER, _BEFORE):
        for m in rx.finditer(folded):
            if _NOT_DEATH.match(folded[m.end("n") :]):
                continue
            # "X of them civilians", "dont cinq rangers": a part of the toll, not another toll.
            before = folded[max(0, m.start("n") - 8) : m.start("n")]
            if re.search(r"\b(dont|including|among them|parmi)\s*$", before):
                continue
            value = _value(m.group("n"))
            if m.group("n") in ("un", "une", "one") and len(m.group(0).split()) > 6:
                continue  # "une frappe aérienne de l'armée tue…": an article, not a count
            if value is not None and value > 0:
                found.append(value)
    return found


def death_toll(title: str, text: str) -> Toll:
    """The one toll the post states, else None with the reason (none stated, or conflicting numbers)."""
    in_text = sorted(set(_numbers(text)))
    in_title = sorted(set(_numbers(title)))
    if len(in_text) > 1:
        return Toll(None, f"conflicting tolls in text: {in_text}")
    if in_text and in_title and in_text != in_title:
        return Toll(None, f"title toll {in_title} differs from text toll {in_text[0]}")
    values = in_text or in_title
    if len(values) == 1:
        return Toll(values[0], f"stated toll {values[0]}")
    if values:
        return Toll(None, f"conflicting tolls in title: {values}")
    return Toll(None, "no toll stated")
