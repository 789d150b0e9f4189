"""Where the activity happened: gazetteer names found in the post, scored by context, or abstention.

Signals (each recorded in `reason`): a locative or target cue before the name ("attack on X", "à X"),
an announcement cue ("officials in Niamey said" is not the place), the title, the kind of place
(a village or a base beats a region), co-mentioned countries and places (Gao ML vs Gao BF),
relative phrases ("40 km north of Tahoua" = a point 40 km north, precision 2). Below a minimum
score the answer is None: no place rather than a guess.
"""

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick

from services.classify import spelling
from services.classify.aliases import lexicon_rows
from services.classify.match import Matcher, fold, fold_alias
from services.classify.toll import _UNITS
from shared.disk_cache import cached_pickle, default_cache_dir, digest, versions
from shared.gazetteer import Gazetteer, Place, normalise


def _place_words() -> tuple[dict[str, str], frozenset[str]]:
    """Country names and demonyms (-> ISO code), and stop words, from lexicon/places.csv. Names are folded as the
    post is (التشادية is matched as التشاديه); an Arabic demonym written with the article (البنيني) is also
    matched without it and in its feminine and plural forms (بنينيين, البنينية), except Mali's, whose forms are
    everyday words (المالية, "financial")."""
    rows = lexicon_rows("places.csv")
    countries: dict[str, str] = {}
    for r in (r for r in rows if r["kind"] == "country"):
        name = fold_alias(r["name"])
        countries[name] = r["value"]
        if r["lang"] == "ar" and name.startswith("ال") and name.endswith("ي") and r["value"] != "ML":
            stem = name[2:]
            for form in (stem, stem + "ه", stem + "ين", stem + "ون"):
                countries.setdefault(form, r["value"])
                countries.setdefault("ال" + form, r["value"])
    return countries, frozenset(r["name"] for r in rows if r["kind"] == "stop")


# Names and demonyms that point at a country; words the gazetteer knows as places but a post uses otherwise
# (Nigerian states and similar admin names in context point at a country without being the place).
COUNTRIES, _STOP = _place_words()
_STOP_BONES = frozenset(spelling.skeleton(w) for w in _STOP | set(COUNTRIES)) - {""}
SAHEL = {"ML", "NE", "BF", "NG", "BJ", "TD"}
COMMON_ZIPF = 4.0
_CAPITALS = {"Niamey", "Bamako", "Ouagadougou", "Abuja", "N'Djamena", "Lomé", "Porto-Novo", "Cotonou", "Nouakchott"}

_DIRS = {
    "north": 0,
    "nord": 0,
    "north east": 45,
    "nord est": 45,
    "east": 90,
    "est": 90,
    "south east": 135,
    "sud est": 135,
    "south": 180,
    "sud": 180,
    "south west": 225,
    "sud ouest": 225,
    "west": 270,
    "ouest": 270,
    "north west": 315,
    "nord ouest": 315,
    "شمال": 0,
    "شمال شرق": 45,
    "شرق": 90,
    "جنوب شرق": 135,
    "جنوب": 180,
    "جنوب غرب": 225,
    "غرب": 270,
    "شمال غرب": 315,
}
_NUMWORD = "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True))
_REL = re.compile(
    rf"(?:(?P<n>\d{{1,4}}|{_NUMWORD})\s*(?:km|kilometres?|kilometers?|kilomitas?|de kilometres|kilometres)\s+"
    rf"(?:(?:au|a l|to the)\s+)?(?P<dir>(?:north|south|nord|sud)(?: (?:east|west|est|ouest))?|east|west|est|ouest)?"
    rf"\s*(?:of|de|du|d|from|daga)\s*)$"
)
# "على بعد نحو 30 كيلومترا شمال مدينة دوسو": Arabic puts the direction before the place, as English does.
_REL_AR = re.compile(
    r"(?P<n>\d{1,4})\s*(?:كيلومترا|كيلومترات|كيلومتر|كلم|كم)\s+(?:الي\s+)?"
    r"(?P<dir>شمال شرق|شمال غرب|جنوب شرق|جنوب غرب|شمال|جنوب|شرق|غرب)(?:ي)?\s*(?:مدينه|بلده|قريه)?\s*$"
)
# One \b before a group of words, not one per word: the regex engine then skips positions by the first letter
# (an eighth of the time of the same alternatives each behind its own \b).
_NEAR = re.compile(
    r"(?:\b(?:near|pres de|pres d|proche de|proches d|outside|outskirts of|around|autour d|"
    r"autour de|kusa da)|قرب|بالقرب من)\s*"
    r"(?:the town of|the village of|la ville de|du village de|مدينه|بلده|قريه)?\s*$"
)
_LOCATIVE = re.compile(
    r"(?:\b(?:in|at|on|into|a|au|aux|de|d|du|sur|vers|from|garin|kauyen|kasuwar|binne|"
    r"camp of|camp de|camp d|village of|village de|town of|ville de|market village of|islands? of)|"
    r"في بلده|بلده|ببلده|في|في مدينه|مدينه|بمدينه|قريه|بقريه|بمنطقه)(?:\s+(?:the|la|le|les|l))?\s*$"
)
_TARGET = re.compile(
    r"(attack|attaque|attacked|attaque|stormed|raid|raided|overran|overrun|struck|hit|hits|bombed|strikes|frappes|"
    r"camp|base|poste|position|village|town|ville|market|marche|kasuwar|ambush|embuscade|kidnapped|abducted|"
    r"enleve|killed|tues|massacre|tuerie|blocus|siege|assiegee|seize|hari|afka|kashe)\b[^.]{0,40}$"
)
_ANNOUNCE = re.compile(
    r"(said|announced|statement|communique|television|message|enregistre|publie|officials|responsables|"
    r"autorites|depuis|based in|governor|gouverneur|annonce|a indique|procureur|rapporte|judges|court|"
    r"travelled to|reclame)\b[^.]{0,30}$"
)
_ANNOUNCE_AFTER = re.compile(r"^\s*(said|says|a annonce|ont annonce|a indique|officials said|authorities said)\b")
_AREA_BEFORE = re.compile(
    r"(region de|region du|la region de|region of|province du|province de|province of|etat de|state of|jihar|"
    r"ولايه|الولايه|بولايه|zone of|zone de|area of|northern|southern|eastern|western|north eastern|north western|"
    r"nord de|sud de|est de|ouest de)\s*$"
)
# What follows a dateline's place: "Sokoto:", "كوتونو -", "DAMATURU —", "NIAMEY, 4 mai (AFP) -"
_DATELINE_AFTER = re.compile(r"\s*(?:,[^.\n:]{0,40}?)?\s*(?:\([A-Za-z]+\)\s*)?[:—–-](?!\w)")
# Where people or troops went after the attack: the evacuation, burial or retreat town is not where it happened.
_DESTINATION = re.compile(
    r"\b(?:evacuated to|taken to|rushed to|brought to|transported to|airlifted to|buried in|burial in|"
    r"for burial in|fled to|withdrew to|retreated to|fell back to|pulled back to|evacues? vers|evacuees? vers|"
    r"evacues? a|evacuees? a|transportes? a|transferes? a|inhumes? a|conduits? a|se replier vers|replies? vers|"
    r"repli vers|fui vers|fuyant vers|refugies? a|an kai su|an binne)\b(?:\s+(?:the|la|le|l))?\s*$"
)
# "Boundoré (prov. du Yagha) attaquée ce matin", "Kaya was attacked": the place itself is what was attacked.
_ATTACKED_AFTER = re.compile(
    r"^(?:\s*\([^)]{0,40}\))?\s*(?:attaquee?s?|was attacked|came under attack|a ete attaquee?|ont ete attaques)\b"
)
_AR_SETTLEMENT_BEFORE = re.compile(r"(?:بلدة|مدينة|قرية)\s+$")
_AR_AREA_BEFORE = re.compile(r"(?:منطقه|بمنطقه|المنطقه)\s*$")
_AREA_AFTER = re.compile(r"^\s*(region|state|province|forest)\b")
# Second-level units (LGA, cercle, département, commune) are small: their seat is a fair point, precision 3.
_ADMIN2_BEFORE = re.compile(
    r"(karamar hukumar|cercle de|cercle d|departement de|departement d|commune de|commune d|prefecture de|"
    r"local government area of|lga of)\s*$"
)
_ADMIN2_AFTER = re.compile(r"^\s*(lga|local government|department|departement|district)\b")
_VICINITY_AFTER = re.compile(r"^\s*(area|axis|outskirts|environs)\b")


# Frames that name a settlement: the name they carry is a place even when no gazetteer knows it.
_NAME = r"([A-ZÀ-Ý][\w'’-]+(?:[ -][A-ZÀ-Ý][\w'’-]+)?)"
_SETTLEMENT = re.compile(
    rf"\b(?:village|town|hamlet|locality|community|settlement|villages?\s+de|localité\s+de|hameau\s+de|"
    rf"bourgade\s+de|kauyen|kauye|garin|ƙauyen)\s+(?:of\s+|d['’]\s*)?{_NAME}"
    rf"|\b(?:village|localité|hameau)\s+d['’]{_NAME}"
    rf"|\b{_NAME}\s+(?:village|community|hamlet)\b"
    rf"|(?:قرية|بلدة|قريه|بلده)\s+([^\s،,.؛]+)"
)
# Every frame above holds one of these words: when a post has none, the frames (costly at each capital) are skipped.
_SETTLEMENT_WORD = re.compile(r"village|town|hamlet|locality|community|settlement|localité|hameau|bourgade|kauye|garin|"
                              r"ƙauye|قرية|بلدة|قريه|بلده")
# What ties an unknown settlement to a known place after it: "Kandagou in the Tillabéri region", "dans la
# commune de Tessit", "a karamar hukumar X"; not "near X" or "20 km from X" (those locate it themselves).
_CONTAINER = re.compile(
    r"^[^.;]{0,60}?(?:\b(?:in|within|dans|en|a cikin|cikin|da ke|dake)\b|في)[^.;]{0,40}$", re.I
)
_LOCATES = re.compile(r"\b(?:near|outside|km|kilom|pr[eè]s|kusa|non loin)", re.I)


@dataclass(frozen=True)
class Mention:
    name: str
    field: str
    start: int
    end: int
    places: tuple[Place, ...]
    guessed: bool = False  # matched by its consonants only (spelling.py), not by a spelling the gazetteer has


@dataclass(frozen=True)
class Unresolved:
    """A place the post names ("the village of Kandagou") that no gazetteer knows, with what contains it."""

    name: str
    field: str
    start: int
    end: int
    admin1: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Resolution:
    """The chosen place, or place None with the reason for abstaining; `unresolved`: a named place the gazetteer
    does not know (kept for officers to add, whether or not a nearby known place stands in for it)."""

    place: Place | None
    name: str = ""
    lat: float = 0.0
    lon: float = 0.0
    precision: int = 1
    confidence: float = 0.0
    reason: str = ""
    mention: Mention | None = None
    unresolved: Unresolved | None = None


def place_matcher(gazetteer: Gazetteer) -> Matcher:
    """One automaton over the gazetteer's names, built once per gazetteer (and cached on disk with it, warm.py)."""
    return gazetteer.derived("classify.place_matcher", _build_place_matcher)


def _build_place_matcher(gazetteer: Gazetteer) -> Matcher:
    entries: list[tuple[str, str, str | None, float]] = []
    for name, _places in gazetteer.names():
        if len(name) < 3 or not (name[0].isupper() or any(ch.isupper() for ch in name) or not name.isascii()):
            continue
        if not all(
            ch.isascii() or "\u00c0" <= ch <= "\u024f" or "\u0600" <= ch <= "\u06ff" or ch in "’ʼ" for ch in name
        ):
            continue
        key = " ".join(fold(name)[0].split())
        if key in _STOP or key in COUNTRIES:
            continue
        entries.append(("place", name, name, 1.0))
        joined = re.sub(r"[\s\-'’]+", "", name)
        if joined != name and len(joined) > 4:
            entries.append(("place", joined, name, 1.0))  # "Banibangou" for "Bani Bangou"
    return Matcher(entries)


def _offset(lat: float, lon: float, km: float, bearing_deg: float) -> tuple[float, float]:
    r = 6371.0
    b = math.radians(bearing_deg)
    la1, lo1 = math.radians(lat), math.radians(lon)
    la2 = math.asin(math.sin(la1) * math.cos(km / r) + math.cos(la1) * math.sin(km / r) * math.cos(b))
    lo2 = lo1 + math.atan2(
        math.sin(b) * math.sin(km / r) * math.cos(la1), math.cos(km / r) - math.sin(la1) * math.sin(la2)
    )
    return math.degrees(la2), math.degrees(lo2)


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


_NIGER_RIVER = re.compile(r"niger river|fleuve niger|river niger|niger delta")


@lru_cache(maxsize=1)
def _country_automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for word in COUNTRIES:
        auto.add_word(word, len(word))
    auto.make_automaton()
    return auto


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what the regular expression \w is


def _country_words(folded: str) -> list[str]:
    r"""The country names and demonyms in `folded` as whole words, leftmost first and the longest at one place
    ("burkina faso", not "burkina"), never overlapping: what an alternation of them, longest first, between
    (?<!\w) and (?!\w), finds with finditer, in one pass of an automaton instead of some 150 tries a character."""
    found = []
    for end, length in _country_automaton().iter(folded):
        start = end - length + 1
        whole = (start == 0 or not _is_word(folded[start - 1])) and (
            end + 1 == len(folded) or not _is_word(folded[end + 1])
        )
        if whole:
            found.append((start, end + 1))
    found.sort(key=lambda f: (f[0], -f[1]))
    words, taken_until = [], 0
    for start, end in found:
        if start >= taken_until:
            words.append(folded[start:end])
            taken_until = end
    return words


@lru_cache(maxsize=2048)
def context_countries(title: str, text: str) -> dict[str, int]:
    """ISO codes of countries the post names (by name or demonym), with counts. Niger the river does not count."""
    folded = " ".join(fold(f"{title} . {text}")[0].split())
    counts: dict[str, int] = {}
    for word in _country_words(folded):
        code = COUNTRIES[word]
        counts[code] = counts.get(code, 0) + 1
    rivers = len(_NIGER_RIVER.findall(folded))
    if rivers and counts.get("NE"):
        counts["NE"] -= rivers
        if counts["NE"] <= 0:
            del counts["NE"]
    return counts


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """Every word at or above COMMON_ZIPF in English, French or Arabic (about 20,000; Arabic ones folded as the
    matcher folds them), from wordfreq's lists: read once and kept on disk, since loading the lists themselves
    costs a quarter of a second per process."""

    def build() -> frozenset[str]:
        from wordfreq import iter_wordlist, zipf_frequency  # a slow import: only when there is no cache

        words: set[str] = set()
        for lang in ("en", "fr", "ar"):
            for word in iter_wordlist(lang):  # most frequent first
                if zipf_frequency(word, lang) < COMMON_ZIPF:
                    break
                words.add(word if lang != "ar" else fold_alias(word))
        return frozenset(words)

    key = digest([versions("wordfreq"), str(COMMON_ZIPF), "en,fr,ar"])
    return cached_pickle(default_cache_dir() / f"common-words-{key}.pickle", build)


@lru_cache(maxsize=4096)
def is_common_word(name: str) -> bool:
    """Is this name also an everyday word in English, French or Arabic ("Save", "Say", "Dan"; الحدود "the border",
    كانو "they were")? Such a name is taken as a place only with place context. wordfreq's Zipf scale: 4 is a word
    seen once in 10,000."""
    word = name.lower()
    if " " in word:
        return False
    if word.isalpha():
        return word in _common_words()
    from wordfreq import zipf_frequency  # a word with an apostrophe or a hyphen: wordfreq's own tokenizer decides

    return max(zipf_frequency(word, "en"), zipf_frequency(word, "fr")) >= COMMON_ZIPF


def _folded_slice(body: str, start: int, end: int) -> str:
    """fold(body[start:end]), cut from the fold of the whole body (folded once per post) when folding keeps one
    character for one, as it does for most posts."""
    folded, index = fold(body)
    if isinstance(index, range):
        return folded[start:end]
    return fold(body[start:end])[0]


def _word_around(body: str, start: int, end: int) -> str:
    """The whole word a hit sits in: an Arabic name may carry clitics the matcher allowed (ب, ال, ـا)."""
    while start > 0 and body[start - 1].isalnum():
        start -= 1
    while end < len(body) and body[end].isalnum():
        end += 1
    return body[start:end]


def _place_context(body: str, start: int, place_countries: set[str], countries: dict[str, int]) -> bool:
    """A name reads as a place: a place preposition before it, its country named in the post, or a capital
    letter that is not merely the sentence's (or a Title Case headline's) first."""
    left = " ".join(fold(body[max(0, start - 30) : start])[0].split())
    if _LOCATIVE.search(left) or _NEAR.search(left) or place_countries & set(countries):
        return True
    before = body[max(0, start - 3) : start].strip()
    title_case = sum(w[:1].isupper() for w in body.split()) > len(body.split()) / 2
    return bool(before) and before[-1] not in ".!?:\n\"'“" and body[start].isupper() and not title_case


def find_mentions(title: str, text: str, gazetteer: Gazetteer, blocked: list[tuple[str, int, int]]) -> list[Mention]:
    """Gazetteer names in the post; places outside the Sahel core count only if the post names their country;
    a name that is also an everyday word ("Save") only with place context. Cached for the post being classified
    (its main event and its roundup parts ask for the same)."""
    return list(_find_mentions(title, text, gazetteer, tuple(blocked)))


@lru_cache(maxsize=8)
def _find_mentions(
    title: str, text: str, gazetteer: Gazetteer, blocked: tuple[tuple[str, int, int], ...]
) -> tuple[Mention, ...]:
    matcher = place_matcher(gazetteer)
    countries = context_countries(title, text)
    mentions: list[Mention] = []
    seen: set[tuple[str, int]] = set()
    for field, body in (("title", title), ("text", text)):
        # Hits and blocked spans both come in text order: one merge pass, not a scan of every span per hit.
        spans = sorted((s, e) for f, s, e in blocked if f == field)
        k = 0
        for hit in matcher.scan(body, field):
            while k < len(spans) and spans[k][1] <= hit.start:
                k += 1
            if any(s < hit.end for s, _e in spans[k : k + 4]):
                continue
            first = hit.text[:1]
            if first.isalpha() and ord(first) < 0x0250 and not first.isupper() and (hit.value or "")[:1].isupper():
                continue
            if (field, hit.start) in seen:
                continue
            seen.add((field, hit.start))
            places = tuple(
                p for p in gazetteer.find(hit.value or hit.text) if p.country in countries or p.country in SAHEL
            )
            word = _word_around(body, hit.start, hit.end) if places else hit.text
            if word != hit.text and is_common_word(fold_alias(word)):
                continue  # Kano in كانوا ("they were"): the whole word, clitics and all, is an everyday one
            if (
                places
                and is_common_word(fold_alias(hit.text))
                and not _place_context(body, hit.start, {p.country for p in places}, countries)
            ):
                continue
            if places:
                mentions.append(Mention(hit.text, field, hit.start, hit.end, places))
        mentions += _drifted(body, field, gazetteer, countries, mentions, spans)
    mentions.sort(key=lambda m: (m.field != "title", m.start))
    return tuple(mentions)


def _drifted(
    body: str, field: str, gazetteer: Gazetteer, countries: dict[str, int], found: list[Mention],
    blocked: list[tuple[int, int]],
) -> list[Mention]:
    """Framed names the automaton did not find, matched by their consonants (spelling.py)."""
    out: list[Mention] = []
    # characters already named or blocked: a set, so each framed name is checked in its own length
    covered = {i for s, e in [(m.start, m.end) for m in found if m.field == field] + blocked for i in range(s, e)}
    # the countries the post names, else those of the places it names, else the Sahel core
    where = set(countries) or {m.places[0].country for m in found} or {"ML", "NE", "BF", "NG", "BJ"}
    for start, end, name in spelling.framed_names(body):
        if any(i in covered for i in range(start, end)):
            continue
        key, bones = fold_alias(name), spelling.skeleton(name)
        # an everyday word is no place name ("قرب الحدود", near the border), unless a settlement noun says it is
        common = is_common_word(key) and not _AR_SETTLEMENT_BEFORE.search(body[max(0, start - 12) : start])
        if key in _STOP or key in COUNTRIES or bones in _STOP_BONES or common:
            continue
        # a spelling the gazetteer knows up to accents and transliteration (بوغندي for Bogandé's بوغاندي), in the
        # countries in play (أبالا is also Pala, Chad: not known *here*); else one of the same consonants
        known = tuple(p for p in gazetteer.find(name) if p.country in where)
        places = known or spelling.lookup(name, gazetteer, where if len(bones.lstrip("_wy")) >= 3 else set(countries))
        if places:
            out.append(Mention(name, field, start, end, places, guessed=not known))
            covered.update(range(start, end))
    return out


def find_unresolved(title: str, text: str, gazetteer: Gazetteer, mentions: list[Mention]) -> Unresolved | None:
    """The first settlement the post names in a settlement frame that the gazetteer does not know, with the
    known place right after it that contains it ("Kandagou in the Tillabéri region"), if any."""
    for field, body in (("title", title), ("text", text)):
        here = [k for k in mentions if k.field == field]  # in text order
        starts = [k.start for k in here]
        for m in _SETTLEMENT.finditer(body) if _SETTLEMENT_WORD.search(body) else ():
            group = next(i for i in range(1, (m.lastindex or 0) + 1) if m.group(i))
            name = m.group(group).strip("'’-")
            start, end = m.start(group), m.start(group) + len(name)
            bones = spelling.skeleton(name)
            if len(name) < 3 or gazetteer.find(name) or fold_alias(name) in _STOP or fold_alias(name) in COUNTRIES:
                continue
            if any(stop.startswith(bones) for stop in _STOP_BONES):
                continue  # a piece of a stop phrase ("سابون" of Sabon Gari, "the neighbourhood")
            i = bisect_right(starts, start)
            if i and here[i - 1].start <= start < here[i - 1].end:
                continue  # known by another spelling
            container = next(
                (
                    k
                    for k in here[i : i + 4]
                    if 0 <= k.start - end <= 100
                    and _CONTAINER.match(between := body[end : k.start])
                    and not _LOCATES.search(between)
                ),
                None,
            )
            region = container.places[0] if container else None
            return Unresolved(
                name, field, start, end,
                admin1=(region.admin1 or region.name) if region else None,
                country=region.country if region else None,
            )
    return None


def resolve_place(
    title: str, text: str, *, gazetteer: Gazetteer, blocked: list[tuple[str, int, int]] | None = None
) -> Resolution:
    """The place of the reported activity, with a reason for every decision; None place = abstain. A settlement
    no gazetteer knows is reported as `unresolved` rather than replaced by the region or town that contains it."""
    gaz = gazetteer
    mentions = find_mentions(title, text, gaz, blocked or [])
    unresolved = find_unresolved(title, text, gaz, mentions)
    if not mentions:
        if unresolved is not None:
            return Resolution(None, reason=f"unresolved: {unresolved.name} is in no gazetteer", unresolved=unresolved)
        return Resolution(None, reason="no gazetteer place named")
    countries = context_countries(title, text)
    # First pass: the most plausible place per mention (country context, supplement, population).
    chosen: list[tuple[Mention, Place]] = []
    # Places named without ambiguity anchor the others (Mordecai's "anchor" idea): Gao near Bourem is Gao, Mali.
    # Distinct anchors and one choice per distinct name: a long post repeats its few places many times.
    anchors = list({m.places[0].id: m.places[0] for m in mentions if len({p.country for p in m.places}) == 1}.values())
    choice: dict[tuple[Place, ...], Place] = {}
    # the regions the post names ("a jihar Sokoto", "région de Tahoua"): a town of one of them is the likelier homonym
    regions = {c.name for m in mentions for c in m.places if c.kind in ("region", "province")}
    for m in mentions:
        if m.places not in choice:
            # anchors that are not candidates of this name themselves (compared by id: a set, not a tuple scan)
            ids = {p.id for p in m.places}
            others = [a for a in anchors if a.id not in ids] if len(m.places) > 1 else []
            called = normalise(m.name)

            several = len(m.places) > 1 and not any(c.is_area for c in m.places)  # homonym towns, not a state

            def cand_score(
                p: Place, called: str = called, others: list[Place] = others, several: bool = several
            ) -> float:
                s = 2.0 * (p.country in countries) + (1.5 if p.id.startswith("wf:") and not p.is_area else 0.0)
                s += math.log10(p.population + 10) / 3 + (0.5 if p.country in ("ML", "NE", "BF", "NG") else 0.0)
                # a name that is a town and its region is the town, unless its context says region (below)
                s += 0.0 if p.is_area else 0.4
                # a place called so beats one that has the name only as an alternate ("Kebbi" the state,
                # not Kebbe the town whose GeoNames alternates include "Kebbi")
                s += 0.6 if normalise(p.name) == called else 0.0
                if any(km_between((a.lat, a.lon), (p.lat, p.lon)) < 300 for a in others):
                    s += 1.5
                if several and not p.is_area and p.admin1 in regions:
                    s += 1.2  # Illela in "karamar hukumar Illela a jihar Sokoto" is Sokoto's, not Tahoua's Illéla
                return s

            choice[m.places] = max(m.places, key=cand_score)
        chosen.append((m, choice[m.places]))
    # Second pass: score each mention as the place of the activity.
    scored: list[tuple[float, Mention, Place, int, tuple[float, float] | None, list[str]]] = []
    for i, (m, p) in enumerate(chosen):
        body = title if m.field == "title" else text
        left = " ".join(_folded_slice(body, max(0, m.start - 70), m.start).split())
        right = " ".join(_folded_slice(body, m.end, m.end + 40).split())
        why: list[str] = []
        score, precision, point = 1.0, 1, None
        if m.field == "title":
            score += 1.0
            why.append("in title")
        if m.start <= 3 and not body[: m.start].strip(" #") and _DATELINE_AFTER.match(body, m.end):
            score -= 1.0  # a dateline ("Sokoto: …", "كوتونو - …") names where the report is filed from
            why.append("dateline")
        elif m.start and body[m.start - 1] == "#" and not _LOCATIVE.search(left[-30:]):
            score -= 1.5  # a hashtag tags the topic (#Diffa #Niger); "the post outside #Mandouri" says where
            why.append("hashtag")
        # the cue patterns end at the name and are shorter than 30 characters: search only that tail
        tail = left[-30:]
        if _LOCATIVE.search(tail):
            score += 1.5
            why.append("locative cue")
        if _TARGET.search(left[-50:]):
            score += 1.0
            why.append("attack/target cue")
        # "officials in Niamey said"; not "…attacked Kaya, officials said" (a comma: the sentence's attribution)
        announced_after = _ANNOUNCE_AFTER.search(right) and not body[m.end : m.end + 2].lstrip(" ").startswith(",")
        if _ANNOUNCE.search(left[-45:]) or announced_after:
            score -= 3.5
            why.append("announcement place")
        if _DESTINATION.search(left[-45:]):
            score -= 2.5  # where the wounded were taken, the dead buried, the troops fell back to: not the place
            why.append("destination")
        if _ATTACKED_AFTER.match(right):
            score += 1.0
            why.append("attacked")
        window = left[-60:]  # an offset names its unit: skip both patterns (the costliest here) when it does not
        rel = (_REL.search(window) if "km" in window or "kilom" in window else None) or (
            _REL_AR.search(window) if "كم" in window or "كلم" in window or "كيلو" in window else None
        )
        near = _NEAR.search(left[-30:])
        # "منطقة X" is "the X area": the region when X is one (بمنطقة دوسو), else a locality (منطقة شيناغودار)
        region_word = _AR_AREA_BEFORE.search(tail) and any(c.kind in ("region", "province") for c in m.places)
        area = not rel and (
            bool(_AREA_BEFORE.search(tail) or _AREA_AFTER.search(right) or region_word)
            or p.kind in ("region", "province")
        )
        admin2 = not rel and not area and bool(_ADMIN2_BEFORE.search(tail) or _ADMIN2_AFTER.search(right))
        if area:
            regions = [c for c in m.places if c.kind in ("region", "province") and c.country == p.country]
            if regions:
                p = regions[0]
            score -= 1.5
            precision = 3
            why.append("area")
        elif admin2:
            score -= 0.5
            precision = 3
            why.append("district seat")
        elif _VICINITY_AFTER.search(right):
            precision = 2
            why.append(f"{p.name} area")
        elif p.id.startswith("wf:") and p.kind not in ("area", "park", "forest"):
            score += 1.0
            why.append(f"curated {p.kind}")
        if p.name in _CAPITALS or p.population > 900_000:
            score -= 0.5
        if p.country in countries:
            score += 0.3
        if rel or near:
            # Is there a subject place just before ("Barsalogho, 40 km north of Kaya")?
            # Mentions come in text order, so only the one just before can be that close.
            prev = chosen[i - 1][0] if i else None
            subject = (
                prev is not None
                and prev.field == m.field
                and 0 <= m.start - prev.end <= 90
                and "dateline" not in scored[i - 1][5]
                and not chosen[i - 1][1].is_area  # "Savanes region: the post outside Mandouri" is no subject
            )
            if subject:
                score -= 1.5
                why.append("anchor of a nearby subject")
                row = scored[i - 1]
                scored[i - 1] = (row[0] + 2.0, *row[1:5], [*row[5], f"subject near {m.name}"])
            elif rel:
                n = rel.group("n")
                dist = float(n) if n.isdigit() else float(_UNITS.get(n, 0))
                bearing = _DIRS.get(rel.group("dir") or "", None)
                precision = 2
                if bearing is not None and dist:
                    point = _offset(p.lat, p.lon, dist, bearing)
                    why.append(f"{dist:.0f} km {rel.group('dir')} of {p.name}")
                else:
                    why.append(f"about {dist:.0f} km from {p.name}")
                score += 1.5
            else:
                precision = 2
                score += 1.0
                why.append(f"near {p.name}")
        scored.append((score, m, p, precision, point, why))
    # "le village de Bassam, commune de Tougan": a name matched by its consonants alone (Boussouma) is a guess; far
    # from the district the post names, it is a wrong one
    seats = [row[2] for row in scored if "district seat" in row[5]]
    for i, row in enumerate(scored):
        if row[1].guessed and seats and all(km_between((s.lat, s.lon), (row[2].lat, row[2].lon)) > 60 for s in seats):
            scored[i] = (row[0] - 3.0, *row[1:5], [*row[5], "spelling guess far from the district named"])
    best_i = max(range(len(scored)), key=lambda i: (scored[i][0], -i))
    if scored[best_i][2].is_area:
        # A region named in the headline does not beat a town the text places the attack at ("near Mafa, in
        # Borno State" under "… in Borno"): the more precise place, when it scores nearly as well.
        floor = max(0.5, scored[best_i][0] - 1.5)
        closer = [i for i, row in enumerate(scored) if not row[2].is_area and row[0] >= floor]
        if closer:
            best_i = max(closer, key=lambda i: (scored[i][0], -i))
    top = scored[best_i]
    if top[1].field == "title" and not top[2].is_area and top[2].admin1 and normalise(top[2].admin1) == normalise(
        top[2].name
    ):
        # "ambush in Katsina" over a text that places it "near Faskari", in Katsina State: a headline's state
        # capital that shares its state's name stands for the state; the town of that state the text names wins.
        inside = [
            i
            for i, row in enumerate(scored)
            if row[1].field == "text" and not row[2].is_area and row[2].id != top[2].id
            and row[2].admin1 == top[2].admin1 and (row[0] >= 1.5 or "district seat" in row[5])
        ]
        named_again = any(row[1].field == "text" and row[2].id == top[2].id for row in scored)  # "camp d'Agadez"
        if inside and not named_again:
            best_i = max(inside, key=lambda i: (scored[i][0], -i))
    best = scored[best_i]
    score, m, p, precision, point, why = best
    if score < 0.5 and "dateline" in why and all("dateline" in row[5] or "hashtag" in row[5] for row in scored):
        # "Diffa : …": the place the report is filed from is the place when the post names no other
        score, precision, why = 0.5, max(precision, 2), [*why, "nothing else named"]
    # "kauyen Mifa da ke karamar hukumar Chibok" under "… a Chibok": the seat of the unknown village's district,
    # however the headline names it, stands in for it at precision 3 (the village stays unresolved for officers)
    seat = any(row[2].id == p.id and "district seat" in row[5] for row in scored)
    if unresolved is not None and seat and "district seat" not in why:
        precision, why = 3, [*why, f"seat of the district of {unresolved.name}"]
    if unresolved is not None and "district seat" not in why and not seat and _contains(p, unresolved, precision):
        return Resolution(
            None,
            reason=f"unresolved: {unresolved.name} is in no gazetteer; {p.name} only contains it",
            unresolved=unresolved,
        )
    if score < 0.5:
        return Resolution(
            None,
            reason=f"abstained: best candidate {p.name} scored {score:.1f} ({', '.join(why)})",
            unresolved=unresolved,
        )
    if point is None:
        # The same place named again with an offset ("… 20 km north of Niamey"): the offset is the better point.
        offset = next((r for r in scored if r[2].id == p.id and r[4] is not None), None)
        if offset is not None:
            point, precision = offset[4], offset[3]
            why = [*why, *[w for w in offset[5] if " km " in w]]
    lat, lon = point if point else (p.lat, p.lon)
    if p.kind in ("region", "province", "area", "park", "forest") and precision == 1:
        precision = 3
    others = [r for r in scored if r is not best]
    margin = score - max((r[0] for r in others), default=0.0)
    confidence = max(0.2, min(0.95, 0.5 + 0.1 * score + 0.1 * min(margin, 2.0) - 0.15 * (precision - 1)))
    reason = f"{m.name} -> {p.name} ({p.country}, {p.kind}): " + (", ".join(why) or "only candidate")
    return Resolution(
        p, name=p.name, lat=lat, lon=lon, precision=precision, confidence=round(confidence, 2), reason=reason,
        mention=m, unresolved=unresolved,
    )


def _contains(place: Place, unresolved: Unresolved, precision: int) -> bool:
    """Is the chosen place only the container of the unknown settlement (its region or a town)? A district's
    seat (LGA, commune, cercle) is small enough to stand in for it, at precision 3, and is kept."""
    if unresolved.admin1 is None:
        return precision == 3
    return place.country == unresolved.country and unresolved.admin1 in (place.admin1, place.name)
