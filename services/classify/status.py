"""Report status: does the post say the attack happened now, or something else about it?

    reported      the post reports it as having happened          -> opens or updates an incident
    claimed       the same, and a group says it did it            -> opens or updates an incident
    denied        "no attack took place", "dismissed reports"     -> event log; disputes a matching incident
    rumoured      "rumours of", "jita-jita", "شائعات"               -> event log only
    historical    an anniversary, "years ago", a dated past year  -> event log only
    hypothetical  a threat, a warning, "could attack"             -> event log only

Decided per attack word from the cues of its own sentence or clause (lexicon/status.csv, four languages, in the
label automaton of match.py),
so a background clause ("a year after the Inates attack") does not make a current report historical, and a
current attack anywhere in the lede (title and first two sentences) makes the post current. Pure.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from services.classify.match import Hit, label_matcher, sentence_bounds
from shared.messages import ReportStatus as ReportStatusCode

CURRENT = ("reported", "claimed")
STATUSES = get_args(ReportStatusCode)  # the codes the EventMessage contract allows
# Headline cues that frame a whole story, and the status they give it ("X denies role in…" does not: the attack
# happened, the group disowns it).
_HEADLINE_FRAMES = {"threat": "hypothetical", "rumour": "rumoured", "history": "historical"}
# When no attack word of the lede is current, the strongest other reading wins.
_PRIORITY = ("denied", "rumoured", "hypothetical", "historical")

# "no attack", "aucune attaque", "babu wani hari", "لم يقع هجوم": the attack word itself is negated.
_NEGATION = re.compile(
    r"(?:\b(?:no|not|never|aucune?|pas d'|pas de|jamais|ni|babu wani|ba a kai)|لا|لم يقع|لم يحدث)"
    r"\W*$",
    re.I,
)
# What ends a clause: a threat or an anniversary in one clause does not govern an attack told in the next.
_CLAUSE_BREAK = re.compile(
    r"[.,;:!?()]|\b(?:after|when|while|as|since|but|après|lorsque|quand|depuis|mais|bayan|amma|بعد|لكن)\b", re.I
)
# A year in the attack's clause, to be compared with the date of publication.
_YEAR = re.compile(r"\b(19[5-9]\d|20\d\d)\b")


@dataclass(frozen=True)
class ReportStatus:
    code: str  # one of STATUSES
    evidence: tuple[Hit, ...] = ()
    reason: str = ""
    claim: Hit | None = None  # the first claim formula of the post ("claimed", "تبنى"), if any

    def claimed_by(self, perpetrator: str) -> "ReportStatus":
        """A current report whose perpetrator a claim formula names is `claimed`."""
        if self.code != "reported" or self.claim is None:
            return self
        return ReportStatus("claimed", (self.claim,), f"{perpetrator} claimed it: \"{self.claim.text}\"", self.claim)


def _same_clause(body: str, start: int, end: int, reach: int) -> bool:
    return 0 <= end - start <= reach and not _CLAUSE_BREAK.search(body, start, end)


def _old_year(body: str, lo: int, hi: int, published: datetime | None) -> re.Match[str] | None:
    """A year before the one of publication in body[lo:hi] (January's report of December's attack is current)."""
    if published is None:
        return None
    for m in _YEAR.finditer(body, lo, hi):
        year = int(m.group(1))
        if year < published.year - 1 or (year == published.year - 1 and published.month >= 3):
            return m
    return None


def _hit_status(hit: Hit, body: str, cues: list[Hit], published: datetime | None) -> tuple[str, Hit | None]:
    """The status one attack word has in its own sentence, and the cue that gave it."""
    s0, s1 = (0, len(body)) if hit.field == "title" else sentence_bounds(body, hit.start)
    near = [c for c in cues if c.field == hit.field and s0 <= c.start < s1]
    if m := _NEGATION.search(body, max(s0, hit.start - 16), hit.start):
        return "denied", Hit("status", "deny", hit.field, m.start(), hit.end, body[m.start() : hit.end])
    denials = [c for c in near if c.value == "deny"]
    if denials and not any(c.value == "responsibility" for c in near):
        return "denied", denials[0]
    rumours = [c for c in near if c.value == "rumour"]
    if rumours and not any(c.value == "confirm" for c in near):
        return "rumoured", rumours[0]
    for c in near:
        if c.end > hit.start:
            continue
        if c.value == "threat" and (hit.field == "title" or _same_clause(body, c.end, hit.start, 80)):
            return "hypothetical", c
        # "could attack", "pourrait frapper": a modal right before the attack word; "on 3 May" is no modal
        if c.value == "modal" and hit.start - c.end <= 20 and not c.text[:1].isupper():
            return "hypothetical", c
    for c in near:
        if c.value == "history" and (
            hit.field == "title"
            or _same_clause(body, c.end, hit.start, 120)
            or _same_clause(body, hit.end, c.start, 120)
        ):
            return "historical", c
    if m := _old_year(body, max(s0, hit.start - 80), min(s1, hit.end + 80), published):
        return "historical", Hit("status", "history", hit.field, m.start(), m.end(), m.group(0))
    return "reported", None


def _lede_end(text: str) -> int:
    """The end of the text's second sentence: the lede, where a report says what happened."""
    end = 0
    for _ in range(2):
        end = sentence_bounds(text, end)[1] + 1
        if end >= len(text):
            break
    return end


def report_status(
    fields: dict[str, str],
    attack_hits: list[Hit],
    *,
    published: datetime | None,
    toll_span: tuple[str, int, int, str] | None = None,
) -> ReportStatus:
    """The post's report status from the words that say there was an attack (`attack_hits`, the evidence of its
    tactics); `claimed_by` turns a current one into `claimed` once the perpetrator is known. `toll_span`: where
    the post states a toll; a toll told in a current sentence is itself evidence that something happened now."""
    cues = [h for field, body in fields.items() for h in label_matcher().scan(body, field, ("status",))]
    end = _lede_end(fields.get("text", ""))
    hits = sorted(attack_hits, key=lambda h: (h.field != "title", h.start))
    lede = [h for h in hits if h.field == "title" or h.start < end] or hits
    if toll_span is not None:
        field, start, stop, text = toll_span
        lede.append(Hit("tactic", "toll", field, start, stop, text))
    readings = [(h, *_hit_status(h, fields[h.field], cues, published)) for h in lede]
    current = [h for h, code, _ in readings if code == "reported"]
    # A headline that threatens, rumours or recalls ("القاعدة تهدد بنين وتوغو") and names no attack of
    # its own frames a text that states no toll: its attack words are what is threatened, rumoured or recalled.
    framing = next((c for c in cues if c.field == "title" and c.value in _HEADLINE_FRAMES), None)
    if current and framing and toll_span is None and not any(h.field == "title" for h in attack_hits):
        code = _HEADLINE_FRAMES[framing.value]
        return ReportStatus(code, (framing,), f"{code}: the headline's \"{framing.text}\" frames the story")
    if current:
        claim = next((c for c in cues if c.value == "claim"), None)
        return ReportStatus("reported", (current[0],), f"reported as having happened: \"{current[0].text}\"", claim)
    if not readings:
        return ReportStatus("reported", (), "no attack word")
    code = min((c for _, c, _ in readings), key=_PRIORITY.index)
    hit, _, cue = next(r for r in readings if r[1] == code)
    assert cue is not None
    return ReportStatus(code, (cue,), f"{code}: \"{cue.text}\" governs \"{hit.text}\"")
