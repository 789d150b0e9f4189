"""Place names as posts really spell them: vowels dropped or added ("Tilabery" for Tillabéri, "Guidan Roumdi"
for Guidan Roumdji) and Arabic script ("بوغاندي" for Bogandé) that no gazetteer lists.

Both sides are reduced to a consonant skeleton (vowels, h, w and y dropped; letters that transliterations
confuse merged: p/b, v/f, c/q/k, ch/sh/s, j/dj/d, tch/ts), so "Dogondoutchi" and "دوغوندوتشي" are both
"dgndts". A name is looked up this way only where the post says it is a place (a settlement noun, a place
preposition, a dateline) and the automaton found nothing there; a skeleton of two consonants must also be
the only one of its kind in a country the post names. Pure; the index is built once per gazetteer.
"""

import re
from functools import lru_cache

from unidecode import unidecode

from shared.gazetteer import Gazetteer, Place

_LATIN = (
    ("tch", "ts"), ("tsh", "ts"), ("sch", "s"), ("ch", "s"), ("sh", "s"), ("dj", "d"), ("gh", "g"), ("kh", "k"),
    ("ph", "f"), ("th", "t"), ("dh", "d"), ("qu", "k"), ("gu", "g"), ("c", "k"), ("q", "k"), ("p", "b"),
    ("v", "f"), ("x", "ks"), ("j", "d"),
)
_ARABIC = str.maketrans({
    "ب": "b", "پ": "b", "ت": "t", "ث": "t", "ج": "d", "چ": "s", "خ": "k", "د": "d", "ذ": "d", "ر": "r", "ز": "z",
    "س": "s", "ش": "s", "ص": "s", "ض": "d", "ط": "t", "ظ": "z", "غ": "g", "ف": "f", "ڤ": "f", "ق": "k", "ك": "k",
    "گ": "g", "ل": "l", "م": "m", "ن": "n",
})
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff]")
_LATIN_LETTER = re.compile(r"[A-Za-zÀ-ÿ]")

# Where a post says the next word is a place. Arabic: a settlement noun (with its clitic preposition) or قرب;
# Latin: a settlement noun, a place preposition, or the post's opening dateline.
_AR_NOUN = r"[وبل]?(?:ال)?(?:بلدة|مدينة|قرية|منطقة|ولاية|مقاطعة|محافظة|ريف)"
_AR_FRAME = re.compile(
    rf"(?:^|\s)(?:(?:قرب|بقرب)\s+(?:{_AR_NOUN}\s+)?|{_AR_NOUN}\s+)"
    r"(?!(?:" + _AR_NOUN + r")\s)([\u0621-\u064a\u0651]+(?:\s+[\u0621-\u064a\u0651]+)?)"
)
_LATIN_NAME = r"([A-ZÀ-Ý][^\W\d_][\w'’-]*(?:[ -][A-ZÀ-Ý][^\W\d_][\w'’-]*)?)"
_LATIN_FRAME = re.compile(
    r"\b(?:in|at|near|outside|of|à|a|de|du|près de|pres de|garin|kauyen|kusa da|village|town|localité|"
    r"ville|commune|département|department|region|région)\s+" + _LATIN_NAME
    + r"|^\W*" + _LATIN_NAME + r"\s*[:—–]"  # the opening dateline: "Tilabery:", "DAMATURU —"
)


@lru_cache(maxsize=65536)
def skeleton(name: str) -> str:
    """The consonants a name is written with, in any script, after a mark for how it begins: `_` a vowel
    (Abala, أبالا), `w` ou/w (Ouallam, ولام), `y` (Yola, يولا); so Akinima and Kanamma stay apart."""
    # A doubled Latin letter is one consonant (Tillabéri); one repeated across a vowel is two (Karimama, not Karma),
    # as Arabic writes it (تيننكو, Ténenkou: the short vowel between is not written).
    if _ARABIC_LETTER.search(name):
        word = name.strip()
        head = "_" if word[:1] in "اأإآع" else "w" if word[:1] == "و" else "y" if word[:1] == "ي" else ""
        s = "".join(ch for ch in word.translate(_ARABIC) if "a" <= ch <= "z")
    else:
        s = re.sub(r"(.)\1+", r"\1", re.sub(r"[^a-z]", "", unidecode(name).lower()))
        head = "w" if s.startswith(("ou", "w")) else "y" if s.startswith("y") else "_" if s[:1] in "aeiou" else ""
        for old, new in _LATIN:
            s = s.replace(old, new)
        s = re.sub(r"[aeiouyhw]", "", s)
    return head + s


def skeleton_index(gazetteer: Gazetteer) -> dict[str, tuple[Place, ...]]:
    """Skeleton -> the gazetteer's places of that skeleton (Latin names and aliases), most populous first."""
    return gazetteer.derived("classify.skeleton_index", _build_skeleton_index)


def _build_skeleton_index(gazetteer: Gazetteer) -> dict[str, tuple[Place, ...]]:
    index: dict[str, list[Place]] = {}
    for name, places in gazetteer.names():
        if _ARABIC_LETTER.search(name) or len(name) < 3:
            continue
        key = skeleton(name)
        if len(key.lstrip("_wy")) < 2:
            continue
        bucket = index.setdefault(key, [])
        bucket.extend(p for p in places if p not in bucket)
    # a place whose own name has the skeleton before one that has it only through an alternate name
    return {
        k: tuple(sorted(v, key=lambda p, k=k: (skeleton(p.name) != k, p.is_area, -p.population)))
        for k, v in index.items()
    }


def framed_names(body: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every name the post puts in a place frame: a pair of words first, then the first
    word alone ("مدينة سيغو وسط": "سيغو وسط", then "سيغو")."""
    found = []
    arabic = _ARABIC_LETTER.search(body) is not None
    latin = not arabic or _LATIN_LETTER.search(body) is not None
    for rx in (_AR_FRAME,) * arabic + (_LATIN_FRAME,) * latin:  # a frame in a script the post does not use: skip
        for m in rx.finditer(body):
            group = next(i for i in range(1, (m.lastindex or 0) + 1) if m.group(i))
            name, start = m.group(group), m.start(group)
            found.append((start, start + len(name), name))
            first = re.split(r"[ -]", name, maxsplit=1)[0]
            if first != name:
                found.append((start, start + len(first), first))
    return found


def lookup(name: str, gazetteer: Gazetteer, countries: set[str]) -> tuple[Place, ...]:
    """Places the name may be a spelling of, in the countries given; () when the skeleton is too short to say.
    A Latin spelling must also start with the place name's letter (drift is in the middle of words)."""
    key = skeleton(name)
    latin = not _ARABIC_LETTER.search(name)
    places = tuple(
        p
        for p in skeleton_index(gazetteer).get(key, ())
        if p.country in countries and (not latin or unidecode(p.name)[:1].lower() == unidecode(name)[:1].lower())
    )
    own = tuple(p for p in places if skeleton(p.name) == key)
    places = own or places  # a place of that name before one that has it only as an alternate name
    if len(key.lstrip("_wy")) >= 3:
        return places
    towns = {p.name for p in places if not p.is_area}
    return places if len(key.lstrip("_wy")) == 2 and len(towns) == 1 else ()
