"""The classifier's lexicon, read from the data files in lexicon/ (one row a spelling, with its language):

    actors.csv    kind  actor (code) | generic_is | army (country, or blank: resolved later) | suppress
    tactics.csv   kind  tactic (code; `generic`: a bomb word that does not say how) | suppress
    cues.csv      cue   claim | blame | deny | nonevent | event
    status.csv    cue_class  rumour | deny | responsibility | confirm | history | threat | modal | claim:
                  what a post says of an attack (status.py reads the hits)

`lang` is en, fr, ar, ha, or any (names and acronyms every language writes alike); spellings are folded before
matching (match.fold), so accents and case are free, but an all-caps alias of five letters or fewer must match
its case ("FAN" the army, not "fan"). A `suppress` row hides a shorter alias inside it ("Chadian soldiers" is
not the host country's army; "the siege ended" of a hostage-taking is no blockade). Notes on particular rows
are in lexicon/README.md. Loaded once, at import.
"""

import csv
from pathlib import Path

LEXICON = Path(__file__).with_name("lexicon")
LANGS = frozenset({"en", "fr", "ar", "ha", "any"})


def lexicon_rows(name: str) -> list[dict[str, str]]:
    """The rows of one lexicon file; a row whose `lang` is not one of LANGS stops the load, naming the line."""
    path = LEXICON / name
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, 2):
        if row["lang"] not in LANGS:
            raise ValueError(f"{path.name}:{n}: lang {row['lang']!r} is not one of {sorted(LANGS)}")
    return rows


_ACTOR_ROWS = lexicon_rows("actors.csv")
_TACTIC_ROWS = lexicon_rows("tactics.csv")

ACTORS: dict[str, list[str]] = {}
for _row in _ACTOR_ROWS:
    if _row["kind"] == "actor":
        ACTORS.setdefault(_row["code"], []).append(_row["alias"])
GENERIC_IS = [r["alias"] for r in _ACTOR_ROWS if r["kind"] == "generic_is"]
ACTOR_SUPPRESSORS = [r["alias"] for r in _ACTOR_ROWS if r["kind"] == "suppress"]
GENERIC_ARMY: dict[str, str | None] = {r["alias"]: r["code"] or None for r in _ACTOR_ROWS if r["kind"] == "army"}

TACTICS: dict[str, list[str]] = {}
for _row in _TACTIC_ROWS:
    if _row["kind"] == "tactic":
        TACTICS.setdefault(_row["code"], []).append(_row["cue"])
GENERIC_BOMB = [r["cue"] for r in _TACTIC_ROWS if r["generic"] == "generic"]
TACTIC_SUPPRESSORS = [r["cue"] for r in _TACTIC_ROWS if r["kind"] == "suppress"]

CUES: dict[str, list[str]] = {}
for _row in lexicon_rows("cues.csv"):
    CUES.setdefault(_row["cue"], []).append(_row["phrase"])

STATUS_CUES: dict[str, list[str]] = {}
for _row in lexicon_rows("status.csv"):
    STATUS_CUES.setdefault(_row["cue_class"], []).append(_row["cue"])
