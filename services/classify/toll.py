"""The death toll a post states: digits or number words (English, French, Hausa, Arabic), never the wounded.

Returns None when the post gives no number or conflicting ones ("147 dead" vs "about sixty"):
an analyst would rather see no toll than the wrong one.
"""

import re
from bisect import bisect_left
from dataclasses import dataclass

from services.classify.match import squash

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
_TENS_EN = {w: _UNITS[w] for w in ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")}
_TENS_FR = {"vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60}
for _t, _tv in _TENS_EN.items():
    for _u, _uv in ((u, _UNITS[u]) for u in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")):
        _UNITS[f"{_t} {_u}"] = _tv + _uv
for _t, _tv in _TENS_FR.items():
    for _u in ("deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"):
        _UNITS[f"{_t} {_u}"] = _tv + _UNITS[_u]
    _UNITS[f"{_t} et un"] = _tv + 1
# French 70-99: soixante-dix, soixante et onze, soixante-douze ... quatre-vingt-un ... quatre-vingt-dix-neuf.
_TEENS_FR = ("dix", "onze", "douze", "treize", "quatorze", "quinze", "seize", "dix sept", "dix huit", "dix neuf")
for _i, _u in enumerate(_TEENS_FR):
    _UNITS["soixante et onze" if _u == "onze" else f"soixante {_u}"] = 70 + _i
    _UNITS[f"quatre vingt {_u}"] = 90 + _i
for _u in ("un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"):
    _UNITS[f"quatre vingt {_u}"] = 80 + _UNITS[_u]
_UNITS["six"] = 6
_UNITS["dix"] = 10

_NUM = r"(?:\d{1,4}|" + "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True)) + r")"
_HEDGE = (
    r"(?:at least |au moins |akalla |about |some |environ |quelque |nearly |more than |plus de |over |"
    r"fiye da |sama da |kimanin )?"
)
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
    rf"a perdu|lost|toll at|toll to|bilan de|fait etat de|faisant|left|binne|killing of|في|مقتل|قتل|قتلوا|وقتلوا|مصرع|"
    rf"dead at|losses at|toll of|bilan a|alourdi a|alourdit a|passe a|est passe a|qui ont fait|ont fait|"
    rf"a fait)\s+{_HEDGE}"
    rf"(?:(?:mutane|farar hula|manoman shinkafa|people|persons|personnes)\s+{_HEDGE})?(?P<n>{_NUM})\b"
)
_NOT_DEATH = re.compile(
    r"^\s*(?:km|kilometres?|kilometers?|kilomitas?|ans|years|hours|heures|jours|days|%|h\b|de kilometres|metres|"
    r"january|february|march|april|may|june|july|august|september|october|november|december|janvier|fevrier|mars|"
    r"avril|mai|juin|juillet|aout|septembre|octobre|novembre|decembre)\b"
)
# Hausa puts the victims' noun between the verb and the count: "sun kashe dalibai akalla 47".
_HAUSA = re.compile(rf"\bkashe\s+(?:[a-z]+\s+){{0,2}}?{_HEDGE}(?P<n>{_NUM})\b")
# "raised the toll ... to 89", "le bilan ... s'alourdit a 53", "the death toll rose to 86".
_TOLL_TO = re.compile(
    rf"\b(?:toll|bilan|nombre de morts|number of (?:dead|people killed|civilians killed))\b[^.]{{0,90}}?"
    rf"\b(?:to|a|at|est de|stands at|has risen to|had risen to|rose to)\s+{_HEDGE}(?P<n>{_NUM})\b"
)
# A number given as the earlier figure of a revised toll: "up from 25", "contre 15 annonces", "un premier bilan de 20".
_OLDER_BEFORE = re.compile(
    r"(?:up from|from an? (?:earlier|initial|previous|first)|earlier toll|initial toll|previous toll|contre|"
    r"initialement|d abord|premier bilan|precedent bilan|a l origine|initially|previously|first put|had first|"
    r"earlier|an earlier)\b[^.]{0,40}$"
)
_OLDER_AFTER = re.compile(
    r"^\s*(?:[a-z]+\s+){0,4}?(?:first|initially|earlier|d abord|dans un premier temps|au depart|initialement)\b"
)


_PART = re.compile(
    r",\s*(?:among them|including|of whom|dont|parmi eux|parmi lesquels|parmi elles)\s+[^,.;:()]{1,60},", re.I
)


@dataclass(frozen=True)
class Toll:
    """`evidence`: (field, start, end, text) of the phrase that states the toll, when there is one."""

    killed: int | None
    reason: str
    evidence: tuple[str, int, int, str] | None = None


def _value(token: str) -> int | None:
    token = " ".join(token.split())
    if token.isdigit():
        value = int(token)
        return None if 1900 <= value <= 2100 else value
    return _UNITS.get(token)


def _numbers(text: str, field: str) -> list[tuple[int, tuple[str, int, int, str]]]:
    """Every toll stated in `text`, clause by clause, with the span of the phrase that states it."""
    found: list[tuple[int, tuple[str, int, int, str]]] = []
    # "74 people, among them 46 soldiers, were killed": the part between commas is blanked (same length, so the
    # offsets hold) and the count meets its verb in one clause.
    original, text = text, _PART.sub(lambda m: " " * len(m.group(0)), text)
    # Every pattern needs a death or toll word: one pass finds them, and only clauses holding one are read.
    lowered = text.lower()  # a case-folded copy is searched 7x faster than with re.I; rare letters change length
    triggers = [m.start() for m in (_TRIGGER if len(lowered) == len(text) else _TRIGGER_I).finditer(
        lowered if len(lowered) == len(text) else text
    )]
    if not triggers:
        return found
    start = 0
    for sep in [*_SEPARATOR.finditer(text), None]:
        end = sep.start() if sep else len(text)
        k = bisect_left(triggers, start)
        if k < len(triggers) and triggers[k] < end:
            found += [
                (value, (field, start + a, start + b, original[start + a : start + b]))
                for value, a, b in _clause_numbers(text[start:end])
            ]
        start = sep.end() if sep else len(text)
    return found


_SEPARATOR = re.compile(r"[,;:!?()]|\.(?!\d)")


_ANY_NUMBER = re.compile(rf"\b(?:{_NUM})\b")


# Every pattern above needs one of these words (a death verb, a toll word, or a verb _BEFORE counts after): a
# clause without any, most of a post, is skipped before it is folded.
# (searched in the lowercased text, in one pass over it).
_TRIGGER = re.compile(
    r"kill|dead|died|perish|lost|mort|tu[eéèê]|tuant|p[eéè]ri|mutu|rasa|kashe|x[eé]cut|perdu|toll|bilan|fait|faisant|"
    r"alourd|left|binne|pass|number of|loss|في|فى|قتل|مصرع"
)
_TRIGGER_I = re.compile(_TRIGGER.pattern, re.I)


def _clause_numbers(clause: str) -> list[tuple[int, int, int]]:
    found: list[tuple[int, int, int]] = []
    folded, index = squash(clause)
    if not _ANY_NUMBER.search(folded):
        return found  # no count in the clause: none of the patterns below can match
    for rx in (_AFTER, _BEFORE, _HAUSA, _TOLL_TO):
        for m in rx.finditer(folded):
            after = folded[m.end("n") : m.end("n") + 80]  # what the patterns below read after the number
            if _NOT_DEATH.match(after):
                continue
            # _OLDER_BEFORE reaches at most ~70 characters back: a bounded window keeps a long clause linear
            if _OLDER_BEFORE.search(folded[max(0, m.start("n") - 80) : m.start("n")]) or _OLDER_AFTER.match(after):
                continue  # the earlier figure of a revised toll
            # "X of them civilians", "dont cinq rangers": a part of the toll, not another toll.
            before = folded[max(0, m.start("n") - 8) : m.start("n")]
            if re.search(r"\b(dont|including|among them|parmi)\s*$", before):
                continue
            value = _value(m.group("n"))
            if m.group("n") in ("un", "une", "one") and (
                len(m.group(0).split()) > 6
                or re.search(r"\d", folded[m.end("n") : m.end()])
                or re.match(r"\W*\d", folded[m.end() : m.end() + 20])
            ):
                continue  # "une frappe aérienne de l'armée tue…", "un kamikaze tue 15": an article, not a count
            if value is not None and value > 0:
                found.append((value, index[m.start()], index[m.end() - 1] + 1))
    return found


def death_toll(title: str, text: str) -> Toll:
    """The one toll the post states, else None with the reason (none stated, or conflicting numbers)."""
    text_hits, title_hits = _numbers(text, "text"), _numbers(title, "title")
    in_text = sorted({v for v, _ in text_hits})
    in_title = sorted({v for v, _ in title_hits})
    if len(in_text) > 1:
        return Toll(None, f"conflicting tolls in text: {in_text}")
    if in_text and in_title and in_text != in_title:
        return Toll(None, f"title toll {in_title} differs from text toll {in_text[0]}")
    values = in_text or in_title
    if len(values) == 1:
        span = (text_hits or title_hits)[0][1]
        return Toll(values[0], f"stated toll {values[0]}", span)
    if values:
        return Toll(None, f"conflicting tolls in title: {values}")
    return Toll(None, "no toll stated")
