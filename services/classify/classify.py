"""classify_post: one PostMessage in, one EventMessage out (pure; `now` is passed in).

match (aliases: actors, tactic cues, context cues) ──▶ tactics ──▶ event or not
                               │                                      │
                               ├──▶ attribution (roles, perpetrator)  │
                               └──▶ place (gazetteer, context) ◀──────┘   + toll
"""

import re
from datetime import datetime

from services.classify.aliases import GENERIC_BOMB
from services.classify.attribution import assign_roles
from services.classify.limits import MAX_CHARS, TITLE_CHARS
from services.classify.match import Hit, fold_alias, label_matcher
from services.classify.place import context_countries, resolve_place
from services.classify.status import CURRENT, report_status
from services.classify.toll import death_toll
from services.classify.warm import classify_gazetteer
from shared.gazetteer import Gazetteer
from shared.messages import (
    ActorLabel,
    EventMessage,
    PlaceLabel,
    PostMessage,
    Span,
    TacticLabel,
    UnresolvedPlace,
)
from shared.taxonomy import MILITIA, PARENT, STATE

CLASSIFIER_VERSION = "rules-0.5.0"

ARMY_OF = {"ML": "MALI_FAMA", "NE": "NIGER_FDS", "BF": "BF_ARMY", "NG": "NIGERIA_MIL", "BJ": "BENIN_ARMY"}
_LAKE_CHAD = {"NG", "TD", "CM"}
# Passive and periphrastic forms name their target before them ("l'unité a été violemment attaquée",
# "un convoi pris pour cible", "the post came under attack").
_PASSIVE_ATTACK = {
    "attaqué",
    "attaquée",
    "attaqués",
    "attaquées",
    "came under attack",
    "was attacked",
    "were attacked",
    "pris pour cible",
    "prise pour cible",
    "pris pour cibles",
    "pris à partie",
    "ciblé",
    "ciblée",
}
_GENERIC_ATTACK = _PASSIVE_ATTACK | {
    "attaquer",
    "attacks",
    "attaques",
    "attaques contre",
    "coordinated attacks",
    "attaques coordonnées",
    "هجوم",
    "هجمات",
    "الهجوم على",
    "هجوم على",
    "هجمات منسقة",
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
    "استهدف",
    "استهدفت",
    "seized",  # a town or a base, not "seized three tonnes of gold"
    "seize",
    "kai hari",  # Hausa's "attacked": what it hit says whether it was an assault
    "sun kai hari",
    "kai farmaki",
    "sun kai farmaki",
    "bude wuta",  # Hausa's "opened fire"
    "sun bude wuta",
}
_TARGET_NOUN = re.compile(
    r"^\W*(?:(?:\w+\W+){0,2}?[A-Z][a-zé]+|(?:\w+\W+){0,5}?(camp|base|post|poste|position|positions|barracks|caserne|garrison|"
    r"checkpoint|army|military|troops|soldiers|town|ville|commissariats?|gendarmerie|detachment|détachement|school|"
    r"hotel|hôtel|prison|jail|custodial centre|detention centre|maison d'arrêt|church|église|mosque|mosquée|market|"
    r"marché|police|embassy|ambassade|headquarters|"
    r"état-major|معسكر|ثكنة|ثكنات|قاعدة|موقع|مركز|سجن|كنيسة|مسجد|سوق|sansanin|barikin|garin|kauyen|ƙauyen|"
    r"ofishin|kasuwar|masallaci|makarantar|sojoji|jami'an)s?\b)"
)
# The target named before a passive attack word, in its clause: "le poste de Boni a été attaqué".
_TARGET_BEFORE = re.compile(
    r"\b(camp|base|post|poste|position|positions|barracks|caserne|garrison|checkpoint|army|military|troops|soldiers|"
    r"soldats|militaires|unité|unit|détachement|detachment|gendarmerie|gendarmes|police|commissariat|town|ville|"
    r"village|school|école|prison|church|église|mosque|mosquée|market|marché|hotel|hôtel|patrol|patrouille|convoy|"
    r"convoi|escort|escorte|column|colonne)s?\b[^.;]{0,140}$",  # the passive's subject, asides included
    re.I,
)
_DETERMINER = re.compile(
    r"\b(les|des|de|d'|ses|leurs|nos|aux|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|vingt|trente|"
    r"quarante|cinquante|soixante|cent|dizaine|centaine|plusieurs|[0-9]+)\W*$",
    re.I,
)
# Storming a school, a home or a consulate to take people away is a kidnapping, not an assault on a position.
_SCHOOL = re.compile(
    r"school|college|hostel|école|lycée|collège|makaranta|kwalejin|consulate|consulat|\bhomes?\b|\bhouse\b|domicile|"
    r"mosque|mosquée|masallaci|church|église|\bkauyen|\bƙauyen|\bvillage\b|\bfarms?\b|\bfields\b|\bchamps\b",
    re.I,
)
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
_STRONG_MASSACRE = {
    "massacre", "massacred", "tuerie", "yanka", "executed", "exécuté", "exécutés", "أعدم", "أعدموا",
    "exécutions sommaires", "summary executions", "extrajudicial executions", "fosse commune", "mass grave",
}
_EXECUTED = {"executed", "exécuté", "exécutés", "أعدم", "أعدموا"}
_GENERIC_BOMB = {fold_alias(word) for word in GENERIC_BOMB}
# "people killed" are civilians only when the post names no soldiers or militias among the dead or the fighters.
_PEOPLE = {"people", "persons", "personnes", "mutane", "mutum", "شخصا", "اشخاص"}
# Civilians are a massacre's victims only in a sentence that kills them ("50 civilians missing" is not).
_KILL_WORD = re.compile(
    r"kill|dead|died|death|massacr|slaughter|shot|tu[ée]e?s?\b|morts?\b|péri|abattu|exécut|execut|kashe|mutu|rasa "
    r"rayuka|قتل|مقتل|هلاك|ذبح",
    re.I,
)
# Civilians who are missing, abducted, wounded or displaced are not a massacre's victims.
_NOT_KILLED = re.compile(
    r"missing|abduct|kidnap|wounded|injured|displaced|fled|disparus|enlev|bless|déplac|sace|jikkata|اختطاف|خطف", re.I
)
# "killed dozens of civilians", "tué des dizaines de civils": no number, but a mass killing all the same.
_MANY = re.compile(
    r"(?:kill\w*|\btu(?:ée?s?|ant)\b|massacred|slaughtered|kashe|قتل|مقتل)\W+(?:\w+\W+){0,2}?"
    r"(?:dozens|scores|hundreds|des dizaines|des centaines|da dama|العشرات|المئات)\W+(?:\w+\W+){0,1}$",
    re.I,
)
# "killing scores of people, many of them farmers": a mass killing told with a quantity word and a victims' noun
# that need not sit next to each other.
_MASS_KILLING = re.compile(
    r"\b(?:kill\w*|tu(?:ée?s?|ant)\b|massacred|slaughtered)\s+(?:\w+\s+){0,2}?(?:dozens|scores|hundreds|des dizaines|"
    r"des centaines)\s+(?:of\s+|de\s+|d')(?:[\w-]+\s+){0,3}?(?P<who>people|civilians|villagers|residents|personnes|"
    r"civils|villageois|habitants)\b",
    re.I,
)
# "ont pris samedi le contrôle d'Anéfis", "took full control of": a position or town taken, i.e. a ground assault.
_TAKE_CONTROL = re.compile(
    r"\b(?:pris|prennent|prend|repris|reprennent|reprend)\s+(?:\w+\s+){0,2}?le contrôle\b|"
    r"\b(?:took|take|taken|takes|seized|retook|regained)\s+(?:\w+\s+){0,2}?control of\b",
    re.I,
)
# Words each of these case-insensitive patterns cannot match without (a plain substring test costs a fraction of a
# re.I search, and most posts have none of them).
_TAKE_CONTROL_WORDS = ("ontr", "ONTR")
_VEHICLE_BOMB_WORDS = ("xplosi", "XPLOSI", "omb", "OMB", "متفجرات")
_MASS_KILLING_WORDS = ("ozens", "OZENS", "cores", "CORES", "undreds", "UNDREDS", "izaines", "IZAINES", "entaines",
                       "ENTAINES")


def _has(body: str, words: tuple[str, ...]) -> bool:
    return any(w in body for w in words)


_SOLDIERS = re.compile(r"\b(?:soldiers|troops|fighters|militiamen|soldats|militaires|combattants)\b", re.I)
# A tactic named after "a year after the", "depuis le", "since the" is a past event recalled in passing.
_PAST_EVENT = re.compile(
    r"(?:\b(?:an|ans|mois|semaines?|years?|months?|weeks?)\s+(?:après|after|since)|\bdepuis|\bsince)\s+"
    r"(?:the|le|la|l'|l’)\s*$"
    # "en représailles à une attaque jihadiste": the attack avenged is another one
    r"|\b(?:en représailles à|en représailles aux|in retaliation for|in reprisal for|in revenge for|to avenge)\s+"
    r"(?:une|un|des|the|a|an|l'|l’|le|la|an earlier|a recent)?\s*(?:\w+\s+)?$",
    re.I,
)
# A non-event word in a clause of time ("after the UN pullout", "après le retrait des soldats") is background.
_BACKGROUND = re.compile(
    r"\b(?:after|après|since|depuis|following|suite à|suite au)\s+(?:the\s+|le\s+|la\s+|l'|l’|les\s+|des\s+|du\s+|"
    r"its\s+|their\s+|sa\s+|son\s+|leur\s+)?(?:[\w-]+\s+){0,2}$",
    re.I,
)
# "22 soldiers were killed by assailants": an armed attack even when no attack word says so.
_STRONG_ASSASSINATION = {
    "assassinated", "assassination", "assassinat", "assassiné", "اغتيال",
    "kashe hakimin", "kashe dagacin", "kashe sarkin",
}
_NOTABLE = re.compile(
    r"\b(?:mayor|maire|député|deputy|chief|chef|imam|emir|district head|village head|dagaci|hakimi|sarkin|official|"
    r"councillor|conseiller|préfet|prefect|governor|gouverneur|commissioner|commander|commandant|leader|dirigeant|"
    r"président|president|judge|juge|priest|prêtre|pasteur|pastor|catéchiste|journalists?|journalistes?|"
    r"géologue|geologist|engineer|ingénieur|politician|notable|marabout|cadi|traditional ruler|monarch|"
    r"ressortissant|expatri\w+|humanitaire|aid worker|the head of|le responsable)\b"
    r"|المدعو|قائد|زعيم|إمام|الشيخ|مسؤول",
    re.I,
)
_VEHICLE_BOMB = re.compile(
    r"\b(?:car|truck|vehicle|pick-?up|tanker|motorbike|motorcycle|voiture|véhicule|camion|moto|mota)\w*\s+"
    r"(?:\w+\s+){0,2}?(?:packed|laden|loaded|filled|rigged|stuffed|bourrée?s?|chargée?s?|piégée?s?|remplie?s?)\s+"
    r"(?:with\s+|d['’]\s*|de\s+)?(?:explosi|bombs?\b)"
    r"|\bexplosives?-(?:laden|packed|filled|rigged)\s+(?:car|truck|vehicle|pick-?up|tanker)"
    r"|\b(?:car|truck|vehicle)[- ]bomb(?:ers?|ings?|s)\b"
    r"|(?:سيارة|عربة|شاحنة|آلية)\s+(?:محملة|مملوءة|مليئة|محشوة)\s+بال?متفجرات",
    re.I,
)
_ASSAILANTS = re.compile(
    r"\b(?:assaillants|assailants|attackers|gunmen|hommes armés|individus armés|armed men|jihadistes|jihadists|"
    r"insurgents|militants|terrorists|terroristes|bandits|'yan bindiga|’yan bindiga|'yan ta'adda|maharan|"
    r"boko haram|iswap|jnim|eigs)\b|مسلحون|مسلحين|المهاجمين|المسلحين",
    re.I,
)
# Clash words that say only that there was fighting; an assault that names its target says more.
_GENERIC_FIGHT = {
    "fighting",
    "combats",
    "fought",
    "battled",
    "gun battle",
    "echanges de tirs",
    "musayar wuta",
    "اشتباكات",
    "اشتباك",
    "اشتبك",
    "اشتبكوا",
}
_PATROL = re.compile(
    r"^\W*(?:(?!after\b|après\b)\w+\W+){0,3}?(patrol|patrouille|convoy|convoi|escort|escorte|column|colonne|bus|"
    r"autobus|حافلة|حافله|قافلة|قافله|دورية|دوريه)s?\b"
    r"(?! \w+ after)",
    re.I,
)


_VILLAGE_BEFORE = re.compile(r"\b(?:village|hameau|hamlet|kauye)\b[^.;]{0,140}$", re.I)
_PATROL_BEFORE = re.compile(r"\b(patrol|patrouille|convoy|convoi|escort|escorte|column|colonne)s?\b[^.;,]{0,60}$", re.I)


# The target of a raid named as a village: "raided Kawuri village", "attacked the village of X", "kai hari kauyen X".
_VILLAGE_TARGET = re.compile(
    r"^\s*(?:(?:the\s+|le\s+|un\s+|a\s+)?(?:village|hamlet|hameau|kauyen|kauye)\b|[A-Z][\w'-]+\s+(?:village|hamlet)\b)"
)


_SIEGE_BEFORE = re.compile(r"(sous|lever le|levée du|imposent un|imposé un)\s*$")
_CLAUSE_BOUND = re.compile(r"[.;,:!?]| and | et | while | da ")


def _clause(body: str, pos: int) -> str:
    """The clause around `pos`: between punctuation or a coordinating "and"/"et"."""
    lo, hi = max(0, pos - 300), min(len(body), pos + 300)  # a clause is short; a post with no comma costs the same
    start = max((m.end() for m in _CLAUSE_BOUND.finditer(body, lo, pos)), default=lo)
    end = next((m.start() for m in _CLAUSE_BOUND.finditer(body, pos, hi)), hi)
    return body[start:end]


def _span(hit: Hit) -> Span:
    return Span(field=hit.field, start=hit.start, end=hit.end, text=hit.text)  # type: ignore[arg-type]


def _tactics(
    tactic_hits: list[Hit], fields: dict[str, str], killed: int | None, armed_victims: bool = False
) -> dict[str, list[Hit]]:
    """Tactic codes with their evidence. Cue hits are weighed against each other: a generic "attack" is
    a ground assault only with a target, civilians killed are a massacre only in numbers, and so on.
    `armed_victims`: the post names soldiers or militias, so "people killed" may not be civilians."""
    found: dict[str, list[Hit]] = {}
    for h in tactic_hits:
        if _PAST_EVENT.search(fields[h.field][max(0, h.start - 30) : h.start]):
            continue  # "un an après le massacre d'Ogossagou" recalls another event
        if h.value:
            found.setdefault(h.value, []).append(h)
    for field, body in fields.items():
        # "executed Hauwa Liman" is the execution of a person; "executed 300 men" a massacre.
        if m := _EXECUTION_OF.search(body):
            found.setdefault("execution", []).append(Hit("tactic", "execution", field, m.start(), m.end(), m.group(0)))
        for m in _TAKE_CONTROL.finditer(body) if _has(body, _TAKE_CONTROL_WORDS) else ():
            if not any(h.field == field and h.start <= m.start() < h.end for h in found.get("armed_assault", [])):
                found.setdefault("armed_assault", []).append(
                    Hit("tactic", "armed_assault", field, m.start(), m.end(), m.group(0))
                )
    # "drove a car packed with explosives into…": a vehicle bomb, however the sentence is cut into cues
    for field, body in fields.items():
        if _has(body, _VEHICLE_BOMB_WORDS) and (m := _VEHICLE_BOMB.search(body)):
            found.setdefault("vbied", []).append(Hit("tactic", "vbied", field, m.start(), m.end(), m.group(0)))
    # A bomb word that does not say how is an IED only when nothing more specific (car bomb, air strike) says how.
    if "ied" in found and found.keys() & {"vbied", "drone_strike", "indirect_fire"}:
        specific = [h for h in found["ied"] if fold_alias(h.text) not in _GENERIC_BOMB]
        if specific:
            found["ied"] = specific
        else:
            del found["ied"]
    mass_killing = False
    for field, body in fields.items():
        for m in _MASS_KILLING.finditer(body) if _has(body, _MASS_KILLING_WORDS) else ():
            if (armed_victims and m.group("who").lower() in _PEOPLE) or _SOLDIERS.search(m.group(0)):
                continue  # "scores of people" may be soldiers; "dozens of soldiers and civilians" is a battle toll
            mass_killing = True
            found.setdefault("massacre", []).append(Hit("tactic", "massacre", field, m.start(), m.end(), m.group(0)))
    # Massacre needs an explicit word, or civilian victims in numbers (not a strike or a bombing: those say how).
    if "massacre" in found:
        found["massacre"] = [h for h in found["massacre"] if not (armed_victims and fold_alias(h.text) in _PEOPLE)]
        found["massacre"] = [
            h
            for h in found["massacre"]
            if h.text.lower() in _STRONG_MASSACRE
            or _MASS_KILLING.fullmatch(h.text)
            or not _NOT_KILLED.search(c := _clause(fields[h.field], h.start))
            or _KILL_WORD.search(c)
        ]
        strong = [h for h in found["massacre"] if h.text.lower() in _STRONG_MASSACRE]
        means = found.keys() & {"drone_strike", "suicide_attack", "vbied", "indirect_fire", "ied"}
        many = any(_MANY.search(fields[h.field][max(0, h.start - 60) : h.start]) for h in found["massacre"])
        in_numbers = (killed is not None and killed >= 10) or (killed is None and (many or mass_killing))
        if not found["massacre"] or (not strong and (not in_numbers or means)):
            del found["massacre"]
        elif (
            strong
            and {h.text.lower() for h in strong} <= _EXECUTED
            and ("execution" in found or (killed is not None and killed < 10))
        ):
            # "executed three men" is an execution; "executed about 300 men" a massacre
            found.setdefault("execution", []).extend(strong)
            del found["massacre"]
    # "shot dead", "abattu", "found dead" are an assassination only of someone of note ("the mayor of Boni", "le chef
    # de village"); the driver shot dead in a kidnapping is not one. "assassinated", اغتيال always are.
    if "assassination" in found:
        found["assassination"] = [
            h
            for h in found["assassination"]
            if h.text.lower() in _STRONG_ASSASSINATION
            or _NOTABLE.search(fields[h.field][max(0, h.start - 150) : h.end + 150])
            or _NOTABLE.search(fields["title"])
        ]
        if not found["assassination"]:
            del found["assassination"]
    # French "siège" is mostly a headquarters ("le siège de l'EUTM"); a siege only "sous siège", "lever le siège".
    if "blockade" in found:
        found["blockade"] = [
            h
            for h in found["blockade"]
            if h.text.lower() != "siège" or _SIEGE_BEFORE.search(fields[h.field][max(0, h.start - 40) : h.start])
        ]
        if not found["blockade"]:
            del found["blockade"]
    # A generic "attack" is a ground assault only when it has a target and nothing more specific says how.
    if "armed_assault" in found:
        strong, targeted = [], []
        for h in found["armed_assault"]:
            if h.text.lower() not in _GENERIC_ATTACK:
                strong.append(h)
            elif _TARGET_NOUN.match(fields[h.field][h.end : h.end + 60]) or (
                h.text.lower() in _PASSIVE_ATTACK
                and _TARGET_BEFORE.search(fields[h.field][max(0, h.start - 160) : h.start])
            ):
                targeted.append(h)
        # "attacked an army patrol / a convoy" is an ambush, whatever the verb
        patrol = [
            h
            for h in found["armed_assault"]
            if _PATROL.match(fields[h.field][h.end : h.end + 60])
            or (
                h.text.lower() in _PASSIVE_ATTACK
                and _PATROL_BEFORE.search(fields[h.field][max(0, h.start - 80) : h.start])
            )
        ]
        if patrol and len(patrol) == len(found["armed_assault"]):
            found.setdefault("ambush", []).extend(patrol)
            strong, targeted = [], []
        specific = found.keys() & _SPECIFIC
        # A targeted attack told apart from the bomb or shelling ("a car bomb hit the HQ while gunmen attacked the
        # embassy") is a ground assault of its own.
        means = [
            m for c in ("vbied", "ied", "suicide_attack", "indirect_fire", "drone_strike") for m in found.get(c, [])
        ]
        apart = [h for h in targeted if all(m.field != h.field or abs(m.start - h.start) > 60 for m in means)]
        # "attacked Talataye and battled JNIM": an attack on a town and a clash can be told together ("attacked
        # ISWAP positions" in a clash between two groups is the clash itself)
        town = [
            h
            for h in targeted
            if (t := _TARGET_NOUN.match(fields[h.field][h.end : h.end + 60]))
            and (t.group(1) is None or t.group(1).lower() in ("town", "ville"))
        ]
        if strong or (targeted and not (specific - {"massacre", "extortion", "kidnapping"})):
            found["armed_assault"] = strong + targeted
        elif town and not (specific - {"massacre", "extortion", "kidnapping", "clash"}):
            found["armed_assault"] = town
            found["armed_assault"] = strong + targeted
        elif apart and not (
            specific
            - {"massacre", "extortion", "kidnapping", "vbied", "ied", "suicide_attack", "indirect_fire", "drone_strike"}
        ):
            found["armed_assault"] = apart
        elif not specific:
            found["armed_assault"] = found["armed_assault"][:1]
        else:
            del found["armed_assault"]
        if (
            "armed_assault" in found
            and "kidnapping" in found
            and (killed is None or killed < 5)  # a church stormed and 24 killed is an assault as well
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
    if (
        "armed_assault" in found
        and "massacre" in found
        and all(
            _VILLAGE_TARGET.match(fields[h.field][h.end : h.end + 50])
            or (
                h.text.lower() in _PASSIVE_ATTACK
                and _VILLAGE_BEFORE.search(fields[h.field][max(0, h.start - 160) : h.start])
            )
            for h in found["armed_assault"]
        )
    ):
        del found["armed_assault"]  # "raided X village, killing 45": a village massacre, not an assault on a post
    if (
        "clash" in found
        and "armed_assault" in found
        and all(fold_alias(h.text) in _GENERIC_FIGHT for h in found["clash"])
        and any(
            h.text.lower() not in _GENERIC_ATTACK or _military_target(fields[h.field][h.end : h.end + 60])
            for h in found["armed_assault"]
        )
    ):
        del found["clash"]  # "overran the town after hours of fighting" is an assault, not a clash of two groups
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


def _military_target(after: str) -> bool:
    """Does a generic attack word name a military target after it ("sun kai hari sansanin sojoji", "attacked the
    army camp")? A town is not one: "attacked Talataye and battled JNIM" is an assault and a clash."""
    t = _TARGET_NOUN.match(after)
    return bool(t and t.group(1) and t.group(1).lower() not in ("town", "ville", "garin", "kauyen", "ƙauyen"))


def _clash_or_assault(tactics: dict[str, list[Hit]], codes: set[str]) -> None:
    """The taxonomy's clash is fighting between two armed groups (ISSP against JNIM, ISWAP against JAS): an attack
    by one group on another ("أغار جنود الخلافة على تجمع لخوارج شيكاو") is a clash, not a ground assault. Decided on
    the actors taking part, once they are known; fighting with an army stays as its words tell it (dev d064)."""
    state_side = any(c in STATE or c == "BF_VDP" for c in codes)
    groups = {PARENT.get(c, c) for c in codes if c not in STATE and c != "BF_VDP"}
    if (
        "armed_assault" in tactics
        and "clash" not in tactics
        and not state_side
        and len(groups) >= 2
        and not tactics.keys() & {"massacre", "kidnapping", "extortion", "execution", "assassination"}
    ):
        tactics["clash"] = tactics.pop("armed_assault")


def classified_part(text: str, limit: int) -> str:
    """The first `limit` characters of `text`, cut back to a word boundary: what a post reports comes first
    (headline, lede), and a bound here bounds every later pass. Offsets into it are offsets into `text`."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", max(0, limit - 200), limit)
    return text[: cut if cut > 0 else limit]


def classify_post(
    post: PostMessage, *, now: datetime, gazetteer: Gazetteer | None = None, max_chars: int = MAX_CHARS
) -> EventMessage:
    """Labels one post. Pure: the same post and classifier version always give the same labels.
    Only the title's and the text's first `max_chars` characters are read, so the cost of a post is bounded."""
    gaz = gazetteer or classify_gazetteer()
    fields = {
        "title": classified_part(post.title or "", TITLE_CHARS),
        "text": classified_part(post.text or "", max_chars),
    }
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
    armed = any(h.kind == "army" or h.value in STATE or h.value in MILITIA for h in actor_hits)
    tactics = _tactics(tactic_hits, fields, toll.killed, armed_victims=armed)
    group = any(h.kind == "actor" and h.value and h.value not in STATE and h.value != "IS_GENERIC" for h in actor_hits)
    if not tactics and (armed or group) and toll.killed:
        # "22 militaires ont été tués par des assaillants", "Boko Haram sun kashe masunta 12": a stated toll with
        # its killers is an attack, though no attack word says so
        killers = [h for h in actor_hits if h.kind == "actor" and h.value and h.value not in STATE]
        for field, body in fields.items():
            if m := _ASSAILANTS.search(body):
                tactics["armed_assault"] = [Hit("tactic", "armed_assault", field, m.start(), m.end(), m.group(0))]
                break
        else:
            if killers:  # "Lakurawa sun shigo garin Kebbe, sun kashe mutum 4": the group named is the killer
                k = killers[0]
                tactics["armed_assault"] = [Hit("tactic", "armed_assault", k.field, k.start, k.end, k.text)]

    nonevent = sum(
        2 if h.field == "title" else 1
        for h in cue_hits
        if h.value == "nonevent" and not _BACKGROUND.search(fields[h.field][max(0, h.start - 40) : h.start])
    )
    attack_hits = [h for hits in tactics.values() for h in hits if h.end > h.start]
    status = (
        report_status(fields, attack_hits, published=post.published_at, toll_span=toll.evidence) if tactics else None
    )
    # One non-event word in the text does not sink a headline that reports an attack now ("tactical teams had
    # been deployed" after "Gunmen abduct 25 in night raid"); without such a headline, it does unless a toll.
    headline_attack = status is not None and any(h.field == "title" for h in status.evidence if h.kind == "tactic")
    described = bool(tactics) and not (
        nonevent >= 2 or (nonevent >= 1 and toll.killed is None and not headline_attack)
    )
    is_event = described and status is not None and status.code in CURRENT
    # A denied attack keeps its labels, so that the denial can dispute the incident it is about; like a rumoured,
    # recalled or threatened one it is no event: it opens nothing and pages no one.
    keep_labels = is_event or (status is not None and status.code == "denied")

    blocked = [(h.field, h.start, h.end) for h in actor_hits if h.kind == "actor"]
    resolution = resolve_place(fields["title"], fields["text"], gazetteer=gaz, blocked=blocked) if keep_labels else None
    countries = context_countries(fields["title"], fields["text"])
    title_countries = context_countries(fields["title"], "")
    country = (
        resolution.place.country
        if resolution and resolution.place
        else (max(title_countries or countries, key=lambda c: (title_countries or countries)[c]) if countries else None)
    )

    # Actors: explicit names, generic "Islamic State" and "the army" resolved by where it happened.
    resolved: list[Hit] = []
    # A bare "the army" is the army the post names elsewhere ("soldats maliens" ... "les militaires"); failing that,
    # the army of the country where it happened, or of the one country the post names.
    named_armies = [c for c in explicit if c in ARMY_OF.values()]
    if len(named_armies) == 1:
        army_code: str | None = named_armies[0]
    elif resolution and resolution.place:
        army_code = ARMY_OF.get(resolution.place.country)
    elif len(title_countries or countries) == 1:
        army_code = ARMY_OF.get(country or "")
    else:
        army_code = None  # two or more countries and no place: whose army is ambiguous
    for h in actor_hits:
        if (
            h.kind == "army"
            and h.text.lower() in ("militaires", "militaire")
            and not _DETERMINER.search(fields[h.field][max(0, h.start - 25) : h.start])
        ):
            continue  # "accords militaires", "camp militaire": an adjective, not the soldiers
        if h.kind == "army":
            code = army_code if not named_armies or army_code in named_armies else None
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
    _clash_or_assault(tactics, {r.code for r in roles if r.role not in ("denied", "mentioned")})
    if is_event and status is not None and perpetrator and perpetrator not in STATE:
        status = status.claimed_by(perpetrator)

    actors: list[ActorLabel] = []
    seen: set[str] = set()
    for r in roles:
        for code in (r.code, PARENT.get(r.code)):
            if code and code not in seen:
                seen.add(code)
                evidence = [_span(h) for h in r.hits[:3]]
                role = r.role if code == r.code else ("involved" if r.role != "denied" else "denied")
                if not is_event and role != "denied":
                    role = "mentioned"  # no armed activity reported: nobody is a perpetrator or a target
                actors.append(
                    ActorLabel(
                        code=code,
                        role=role,  # type: ignore[arg-type]
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
        if keep_labels
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
    unresolved = resolution.unresolved if resolution else None
    unresolved_label = (
        UnresolvedPlace(
            name=unresolved.name,
            admin1=unresolved.admin1,
            country=unresolved.country,
            evidence=[Span(field=unresolved.field, start=unresolved.start, end=unresolved.end, text=unresolved.name)],  # type: ignore[arg-type]
        )
        if unresolved
        else None
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
        forwarded_from=post.forwarded_from,
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
        unresolved_place=unresolved_label,
        killed=toll.killed if is_event else None,
        status=status.code if status is not None else None,  # type: ignore[arg-type]  # a STATUSES value
        status_reason=status.reason if status is not None else None,
        status_evidence=[_span(h) for h in status.evidence] if status is not None else [],
        confidence=confidence,
        classifier=CLASSIFIER_VERSION,
        gazetteer=gaz.vintage[:80],
    )

