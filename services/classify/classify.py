"""classify_post: one PostMessage in, one EventMessage out (pure; `now` is passed in).

match (aliases: actors, tactic cues, context cues) ──▶ tactics ──▶ event or not
                               │                                      │
                               ├──▶ attribution (roles, perpetrator)  │
                               └──▶ place (gazetteer, context) ◀──────┘   + toll
"""

import re
from datetime import datetime

from services.classify.aliases import PARENT
from services.classify.attribution import assign_roles
from services.classify.match import Hit, label_matcher
from services.classify.place import context_countries, resolve_place
from services.classify.toll import death_toll
from shared.gazetteer import Gazetteer, load_gazetteer
from shared.messages import ActorLabel, EventMessage, PlaceLabel, PostMessage, Span, TacticLabel

CLASSIFIER_VERSION = "rules-0.1.0"

ARMY_OF = {"ML": "MALI_FAMA", "NE": "NIGER_FDS", "BF": "BF_ARMY", "NG": "NIGERIA_MIL", "BJ": "BENIN_ARMY"}
_LAKE_CHAD = {"NG", "TD", "CM"}
_GENERIC_ATTACK = {
    "targeted",
    "targeting",
    "attaqué",
    "ont attaqué",
    "attacked",
    "attack on",
    "attacks on",
    "attaque contre",
    "attaque de",
    "attaque d'un",
    "attaque",
    "attack",
    "gunmen attacked",
    "opened fire",
}
_TARGET_NOUN = re.compile(
    r"^\W*(?:(?:\w+\W+){0,2}?[A-Z][a-zé]+|(?:\w+\W+){0,5}?(camp|base|post|poste|position|positions|barracks|caserne|garrison|"
    r"checkpoint|army|military|troops|soldiers|town|ville|commissariats?|gendarmerie|detachment|détachement|school)\b)"
)
_SCHOOL = re.compile(r"school|college|hostel|école|lycée|collège|makaranta", re.I)
_EXECUTION_OF = re.compile(r"\bexecuted (?:[A-Z][a-z]+ [A-Z]|the (?:hostage|aid worker|midwife|captive))")
_SPECIFIC = {
    "ambush",
    "ied",
    "vbied",
    "suicide_attack",
    "drone_strike",
    "kidnapping",
    "indirect_fire",
    "massacre",
    "assassination",
    "execution",
    "blockade",
    "clash",
    "extortion",
}
_STRONG_MASSACRE = {"massacre", "massacred", "tuerie", "yanka", "executed", "exécuté", "exécutés"}


def _span(hit: Hit) -> Span:
    return Span(field=hit.field, start=hit.start, end=hit.end, text=hit.text)  # type: ignore[arg-type]


def _tactics(tactic_hits: list[Hit], fields: dict[str, str], killed: int | None) -> dict[str, list[Hit]]:
    """Tactic codes with their evidence. Cue hits are weighed against each other: a generic "attack" is
    a ground assault only with a target, civilians killed are a massacre only in numbers, and so on."""
    found: dict[str, list[Hit]] = {}
    for h in tactic_hits:
        if h.value:
            found.setdefault(h.value, []).append(h)
    for field, body in fields.items():
        # "executed Hauwa Liman" is the execution of a person; "executed 300 men" a massacre.
        if m := _EXECUTION_OF.search(body):
            found.setdefault("execution", []).append(Hit("tactic", "execution", field, m.start(), m.end(), m.group(0)))
    # Massacre needs an explicit word, or civilian victims in numbers (not a strike or a bombing: those say how).
    if "massacre" in found:
        strong = [h for h in found["massacre"] if h.text.lower() in _STRONG_MASSACRE]
        means = found.keys() & {"drone_strike", "suicide_attack", "vbied", "indirect_fire", "ied"}
        if not strong and (killed is None or killed < 10 or means):
            del found["massacre"]
        elif (
            strong and {h.text.lower() for h in strong} <= {"executed", "exécuté", "exécutés"} and "execution" in found
        ):
            del found["massacre"]
    # A generic "attack" is a ground assault only when it has a target and nothing more specific says how.
    if "armed_assault" in found:
        strong, targeted = [], []
        for h in found["armed_assault"]:
            if h.text.lower() not in _GENERIC_ATTACK:
                strong.append(h)
            elif _TARGET_NOUN.match(fields[h.field][h.end : h.end + 60]):
                targeted.append(h)
        specific = found.keys() & _SPECIFIC
        if strong or (targeted and not (specific - {"massacre", "extortion", "kidnapping"})):
            found["armed_assault"] = strong + targeted
        elif not specific:
            found["armed_assault"] = found["armed_assault"][:1]
        else:
            del found["armed_assault"]
        if (
            "armed_assault" in found
            and "kidnapping" in found
            and all(_SCHOOL.search(fields[h.field][h.end : h.end + 80]) for h in found["armed_assault"])
        ):
            del found["armed_assault"]
    if (
        "armed_assault" in found
        and "extortion" in found
        and killed is None
        and all(h.text.lower().startswith("raid") for h in found["armed_assault"])
    ):
        del found["armed_assault"]  # a livestock raid without casualties is looting, not an assault
    if "suicide_attack" in found and "vbied" not in found:
        found.setdefault("ied", []).extend(found["suicide_attack"][:1])  # a person-borne bomb is an IED
    if (
        "drone_strike" in found
        and len(found["drone_strike"]) == 1
        and found["drone_strike"][0].text.lower() == "bombed"
        and "suicide_attack" in found
    ):
        del found["drone_strike"]
    return found


def classify_post(post: PostMessage, *, now: datetime, gazetteer: Gazetteer | None = None) -> EventMessage:
    """Labels one post. Pure: the same post and classifier version always give the same labels."""
    gaz = gazetteer or load_gazetteer()
    fields = {"title": post.title or "", "text": post.text or ""}
    matcher = label_matcher()
    actor_hits: list[Hit] = []
    tactic_hits: list[Hit] = []
    cue_hits: list[Hit] = []
    for field, body in fields.items():
        actor_hits += matcher.scan(body, field, ("actor", "army"))
        tactic_hits += matcher.scan(body, field, ("tactic",))
        cue_hits += matcher.scan(body, field, ("cue",))
    toll = death_toll(fields["title"], fields["text"])
    explicit = {h.value for h in actor_hits if h.kind == "actor" and h.value}
    tactics = _tactics(tactic_hits, fields, toll.killed)

    nonevent = sum(2 if h.field == "title" else 1 for h in cue_hits if h.value == "nonevent")
    is_event = bool(tactics) and not (nonevent >= 2 or (nonevent >= 1 and toll.killed is None))

    blocked = [(h.field, h.start, h.end) for h in actor_hits if h.kind == "actor"]
    resolution = resolve_place(fields["title"], fields["text"], gazetteer=gaz, blocked=blocked) if is_event else None
    countries = context_countries(fields["title"], fields["text"])
    title_countries = context_countries(fields["title"], "")
    country = (
        resolution.place.country
        if resolution and resolution.place
        else (max(title_countries or countries, key=lambda c: (title_countries or countries)[c]) if countries else None)
    )

    # Actors: explicit names, generic "Islamic State" and "the army" resolved by where it happened.
    resolved: list[Hit] = []
    for h in actor_hits:
        if h.kind == "army":
            code = ARMY_OF.get(country or "")
            if code:
                resolved.append(Hit("actor", code, h.field, h.start, h.end, h.text, 0.7))
        elif h.value == "IS_GENERIC":
            lake_chad = country in _LAKE_CHAD or (
                resolution and resolution.place and resolution.place.admin1 == "Diffa"
            )
            if not ({"ISSP", "ISWAP"} & explicit):
                resolved.append(Hit("actor", "ISWAP" if lake_chad else "ISSP", h.field, h.start, h.end, h.text, 0.7))
        elif h.value:
            resolved.append(h)
    roles, perpetrator = assign_roles(resolved, cue_hits, fields, set(tactics) if is_event else set())

    actors: list[ActorLabel] = []
    seen: set[str] = set()
    for r in roles:
        for code in (r.code, PARENT.get(r.code)):
            if code and code not in seen:
                seen.add(code)
                evidence = [_span(h) for h in r.hits[:3]]
                actors.append(
                    ActorLabel(
                        code=code,
                        role=r.role if code == r.code else ("involved" if r.role != "denied" else "denied"),  # type: ignore[arg-type]
                        confidence=round(min(0.95, 0.6 + 0.1 * len(r.hits)) * max(h.weight for h in r.hits), 2),
                        evidence=evidence,
                    )
                )
    tactic_labels = (
        [
            TacticLabel(
                code=code,
                confidence=round(min(0.95, 0.55 + 0.15 * len(hits)), 2),
                evidence=[_span(h) for h in hits[:3] if h.end > h.start],
            )
            for code, hits in tactics.items()
        ]
        if is_event
        else []
    )

    place_label = None
    if resolution and resolution.place:
        p, m = resolution.place, resolution.mention
        place_label = PlaceLabel(
            name=p.name,
            lat=round(resolution.lat, 5),
            lon=round(resolution.lon, 5),
            country=p.country,
            admin1=p.admin1,
            kind=p.kind,
            precision=resolution.precision,  # type: ignore[arg-type]
            confidence=resolution.confidence,
            reason=resolution.reason,
            gazetteer_id=p.id,
            evidence=[Span(field=m.field, start=m.start, end=m.end, text=m.name)] if m else [],  # type: ignore[arg-type]
        )
    parts = [0.5 if is_event else 0.7]
    if is_event:
        parts += [0.15 * bool(tactic_labels), 0.1 * bool(perpetrator), 0.1 * bool(place_label)]
        if nonevent:
            parts.append(-0.1)
    confidence = round(max(0.05, min(0.95, sum(parts))), 2)
    return EventMessage(
        event_id=post.post_id,
        post_id=post.post_id,
        source_id=post.source_id,
        url=post.url,
        title=post.title,
        text=post.text,
        lang=post.lang,
        published_at=post.published_at,
        fetched_at=post.fetched_at,
        classified_at=now,
        is_event=is_event,
        actors=actors,
        perpetrator=perpetrator if is_event else None,
        tactics=tactic_labels,
        place=place_label,
        killed=toll.killed if is_event else None,
        confidence=confidence,
        classifier=CLASSIFIER_VERSION,
        gazetteer=gaz.vintage[:80],
    )
