"""Who did it: the role of each actor named in a post.

    claimed     the actor (or its media) says it did it          -> perpetrator, high confidence
    attributed  the post or its sources blame it                  -> perpetrator
    suspected   "suspected", "believed to be", "présumés"         -> perpetrator, lower confidence
    denied      the actor says it was not involved, or the post    -> left out of the actors
                rules it out ("a criminal gang and not Boko Haram")
    target      state forces or militias on the receiving end     -> not the perpetrator

Decided per sentence from the cue hits of match.py; pure.
"""

import re
from bisect import bisect_left
from dataclasses import dataclass

from services.classify.match import Hit, sentence_bounds
from shared.taxonomy import JIHADIST, MILITIA, PARENT, STATE

_SUBJECT_VERB = re.compile(
    r"^[^.;]{0,40}?(?<!were )(?<!was )(?<!been )(?<!été )(?<!are )(?<!is )\b(attacked|attack|stormed|raided|"
    r"ambushed|overran|abducted|kidnapped|killed|fired|hit|seized|surrounded|executed|bombed|bombs|struck|breached|"
    r"uses|took control|ont attaqué|ont tué|a attaqué|ont enlevé|ont intercepté|ont mené|a mené|avoir pris|"
    r"pris le contrôle|s'être emparés|ont ouvert le feu|sun kai|sun kashe|sun afka|ta yanka|sun sace|ya kashe|"
    r"هاجم|أغار|اغار)\b"
)
_BY = re.compile(
    r"\b(by|par|of|d[eu]|na|aux hommes de la|aux hommes du|à des|a des|des combattants de|fighters of)\s*$"
    # "neutralisé par les forces de l'opération Barkhane", "killed by troops of the MNJTF"
    r"|\b(?:by|par)\s+(?:the\s+|les\s+)?(?:forces|troops|soldiers|soldats|militaires|troupes|éléments)\s+"
    r"(?:of(?:\s+the)?|de(?:\s+la)?|du|des|de\s+l')\s*$"
)
# "escorted by the army": the army is not the agent of the attack.
_ESCORT = re.compile(
    r"(escorted|accompanied|protected|guarded|escorté|escortés|accompagné|protégé)\w* (?:by|par)\s+\S*\s*$", re.I
)
# The actor right after these words is on the receiving end ("hunting Boko Haram", "kan Lakurawa").
_TARGET_BEFORE = re.compile(
    r"\b(hunting|chasing|against|targeting|targeted|contre|visant|ciblant|pourchassant|kan|on|positions of|"
    r"positions de|camp of|camp de la|base of)\s*$",
    re.I,
)
_SPEECH = {"say", "says", "said it", "affirme", "affirment", "affirmant", "claims", "claim"}
# An actor named by its strike ("a French air strike", "Nigerian Army drone") is the one that struck.
_STRIKE_ALIAS = re.compile(r"strike|frappe|drone|jet|jirgin|raid", re.I)


@dataclass(frozen=True)
class ActorRole:
    code: str
    role: str  # perpetrator | suspected | target | involved | denied | mentioned
    confidence: float
    hits: tuple[Hit, ...]


def _any_within(sorted_starts: list[int], lo: int, hi: int) -> bool:
    i = bisect_left(sorted_starts, lo)
    return i < len(sorted_starts) and sorted_starts[i] <= hi


def _owner(
    cue: Hit, by_field: dict[str, tuple[list[Hit], list[int]]], fields: dict[str, str], *, forward_first: bool
) -> Hit | None:
    """The actor hit a cue speaks about: for a claim the speaker before it ("JNIM claimed"), for a blame
    the actor after it ("blamed ISWAP", "attribuée à Boko Haram"); always within the cue's sentence.
    `by_field`: each field's actor hits in text order with their starts, so the sentence's hits are bisected out."""
    body = fields[cue.field]
    s0, s1 = sentence_bounds(body, cue.start)
    field_hits, starts = by_field.get(cue.field, ([], []))
    same = field_hits[bisect_left(starts, s0) : bisect_left(starts, s1)]
    before = [h for h in same if h.end <= cue.start]
    after = [h for h in same if h.start >= cue.end and h.start - cue.end <= 80]
    if forward_first:
        return min(after, key=lambda h: h.start) if after else None
    if before:
        return max(before, key=lambda h: h.end)
    return min(after, key=lambda h: h.start) if after else None


def assign_roles(
    actor_hits: list[Hit], cue_hits: list[Hit], fields: dict[str, str], tactics: set[str]
) -> tuple[list[ActorRole], str | None]:
    """Roles for every actor and the perpetrator (the best-supported claimed/attributed actor), or None."""
    hits_all = [h for h in actor_hits if h.value]
    by_code: dict[str, list[Hit]] = {}
    for h in hits_all:
        by_code.setdefault(h.value or "", []).append(h)
    per_hit: dict[Hit, float] = {h: 0.0 for h in hits_all}
    kinds: dict[str, set[str]] = {code: set() for code in by_code}
    denied: set[str] = set()
    denials = [c for c in cue_hits if c.value == "deny"]
    by_field: dict[str, tuple[list[Hit], list[int]]] = {}
    for field in fields:
        ordered = sorted((h for h in hits_all if h.field == field), key=lambda h: h.start)
        by_field[field] = (ordered, [h.start for h in ordered])
    deny_starts = {f: sorted(d.start for d in denials if d.field == f) for f in fields}
    opener = next((h for h in by_field.get("text", ([], []))[0][:3] if h.start < 3 and h.value not in STATE), None)
    for cue in cue_hits:
        if cue.value == "deny_next":
            # "a criminal gang and not Boko Haram", "et non le JNIM": the actor right after is ruled out
            field_hits, starts = by_field.get(cue.field, ([], []))
            i = bisect_left(starts, cue.end)
            if i < len(field_hits) and field_hits[i].start - cue.end <= 25:
                denied.add(field_hits[i].value or "")
            continue
        if cue.value not in ("claim", "blame", "deny"):
            continue
        if (
            cue.value == "claim"
            and cue.text.lower() in _SPEECH
            and _any_within(deny_starts.get(cue.field, []), cue.end, cue.end + 40)
        ):
            continue  # "X says none of its jets ...": the speech verb introduces a denial, not a claim
        # Arabic puts the verb first: "تبنى تنظيم الدولة الإسلامية الهجوم" (claimed the IS group the attack).
        arabic = any("\u0600" <= ch <= "\u06ff" for ch in cue.text)
        owner = _owner(cue, by_field, fields, forward_first=cue.value == "blame" or arabic)
        if owner is None:
            continue
        if cue.value == "claim" and owner.value in STATE:
            # "جماعة نصرة الإسلام - بفضل الله ... ثكنة للجيش": the army after the formula is the object; the statement
            # belongs to the group whose name opens it
            if opener is not None:
                owner = opener
        code = owner.value or ""
        if cue.value == "claim":
            per_hit[owner] += 3.0
            kinds[code].add("claimed")
        elif cue.value == "blame":
            per_hit[owner] += 2.0
            kinds[code].add("attributed")
        else:
            denied.add(code)
    for h in hits_all:
        body = fields[h.field]
        s0, s1 = sentence_bounds(body, h.start)
        code = h.value or ""
        if _SUBJECT_VERB.search(body[h.end : s1]):
            per_hit[h] += 2.0
            kinds[code].add("subject")
        if _STRIKE_ALIAS.search(h.text):
            per_hit[h] += 2.0
            kinds[code].add("subject")
        if _BY.search(body[s0 : h.start].lower()) and not _ESCORT.search(body[max(s0, h.start - 30) : h.start]):
            per_hit[h] += 1.0
            kinds[code].add("by")
        if _TARGET_BEFORE.search(body[max(s0, h.start - 20) : h.start]):
            per_hit[h] -= 2.5
            kinds[code].add("target")
        if h.field == "title":
            per_hit[h] += 0.5
        if h.field == "text" and h.start < 3 and body[h.end : h.end + 3].strip().startswith(("-", ":")):
            per_hit[h] += 3.0  # an Arabic group statement opens with the group's name
            kinds[code].add("claimed")
    scores = {
        code: max(per_hit[h] for h in hits) + 0.3 * (len({(h.field, h.start) for h in hits}) - 1)
        for code, hits in by_code.items()
    }
    roles: list[ActorRole] = []
    perpetrator: str | None = None
    best = 0.0
    order = {code: min(h.start + (0 if h.field == "title" else 10_000) for h in hits) for code, hits in by_code.items()}
    for code in sorted(by_code, key=lambda c: order[c]):
        hits = tuple(by_code[code])
        if code in denied and "claimed" not in kinds[code]:
            roles.append(ActorRole(code, "denied", 0.8, hits))
            continue
        score = scores[code]
        is_state = code in STATE or code in MILITIA
        needs = {"claimed", "attributed", "subject", "by"}
        agent = kinds[code] & {"subject", "claimed", "attributed", "by"}
        if is_state and not (tactics & {"drone_strike", "massacre"} and agent):
            # state forces are mostly the target; they are the perpetrator only with a cue and a fitting tactic
            score -= 2.5
        if is_state and code in MILITIA and not kinds[code] & {"attributed", "claimed"}:
            score -= 2.0
        if score > best and kinds[code] & needs:
            best, perpetrator = score, code
        role = "involved"
        if "claimed" in kinds[code] or "attributed" in kinds[code] or "subject" in kinds[code]:
            role = "suspected" if "attributed" in kinds[code] and "claimed" not in kinds[code] else "involved"
        roles.append(ActorRole(code, role, 0.9 if code in by_code else 0.5, hits))
    if perpetrator is None and tactics:
        # One jihadist family alone in an event report: the post implies it ("clashes between IS Sahel and MSA").
        families = {PARENT.get(c, c) for c in by_code if c in JIHADIST and c not in denied}
        if len(families) == 1:
            family = families.pop()
            perpetrator = next((c for c in by_code if PARENT.get(c) == family), family)
            kinds.setdefault(perpetrator, set())
    # A sub-unit is more precise than its parent: "Katiba Macina fighters (JNIM)" -> KATIBA_MACINA.
    if perpetrator in PARENT.values():
        for code in by_code:
            if PARENT.get(code) == perpetrator and scores.get(code, 0) >= scores[perpetrator] - 2.5:
                perpetrator = code
    final: list[ActorRole] = []
    for r in roles:
        if r.code == perpetrator:
            role = "perpetrator" if kinds[r.code] & {"claimed", "attributed", "subject"} else "suspected"
            final.append(
                ActorRole(r.code, "perpetrator" if role == "perpetrator" else "suspected", r.confidence, r.hits)
            )
        elif r.role != "denied" and (r.code in STATE or r.code in MILITIA) and perpetrator:
            final.append(ActorRole(r.code, "target", r.confidence, r.hits))
        else:
            final.append(r)
    return final, perpetrator
