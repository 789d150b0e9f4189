"""Distinct, realistic posts for bench/throughput.py: attack reports in English and French in Sahel towns, a
share by ISSP or JNIM (they page), a share by other actors (events that page no one), a share that are not
events at all (analysis, humanitarian and political news).

Post i is fixed by (run, i): the same run and index give the same post. Every post reports its own attack:
its own town among `TOWNS` (pairwise farther apart than the incident radius) and its own 7-hour slot (beyond
the incident window), so no two posts ever join one incident and each paging post pages once. The slots move
forward in time with i, from `start` (`start_for`: the last slot ends now), as a feed's reports do: each post
is newer than those before it, as it would be on a watch floor.
Its `url` carries the marker `/tput/<run>/<i>`, which the alert's webhook body repeats (`data.url`).
"""

import random
from datetime import datetime, timedelta

PAGE, OTHER, NOISE = "page", "other", "noise"
SHARES = ((PAGE, 0.5), (OTHER, 0.25), (NOISE, 0.25))
"""What share of posts should page (ISSP or JNIM events), be other events, be no event."""

RULE = """id: bench-sahel-jihadists
name: Any ISSP or JNIM activity
match:
  any:
    - actors: [ISSP, JNIM]
severity: high
"""

SLOT = timedelta(hours=7)
"""Beyond the default incident window (6 h) by more than JITTER: two slots never join."""
JITTER_MINUTES = 50

# (town, country EN, country FR), each more than 25 km (the incident radius) from every other.
TOWNS = [
    ("Ouallam", "Niger", "Niger"), ("Tillabéri", "Niger", "Niger"), ("Téra", "Niger", "Niger"),
    ("Filingué", "Niger", "Niger"), ("Abala", "Niger", "Niger"), ("Banibangou", "Niger", "Niger"),
    ("Torodi", "Niger", "Niger"), ("Ayorou", "Niger", "Niger"), ("Tahoua", "Niger", "Niger"),
    ("Diffa", "Niger", "Niger"), ("Ménaka", "Mali", "Mali"), ("Ansongo", "Mali", "Mali"), ("Gao", "Mali", "Mali"),
    ("Bourem", "Mali", "Mali"), ("Douentza", "Mali", "Mali"), ("Mopti", "Mali", "Mali"), ("Niono", "Mali", "Mali"),
    ("Ségou", "Mali", "Mali"), ("Djibo", "Burkina Faso", "Burkina Faso"), ("Dori", "Burkina Faso", "Burkina Faso"),
    ("Arbinda", "Burkina Faso", "Burkina Faso"), ("Kaya", "Burkina Faso", "Burkina Faso"),
    ("Fada N'Gourma", "Burkina Faso", "Burkina Faso"), ("Diapaga", "Burkina Faso", "Burkina Faso"),
    ("Titao", "Burkina Faso", "Burkina Faso"), ("Kandi", "Benin", "Bénin"), ("Malanville", "Benin", "Bénin"),
]
# Other actors' events happen in Borno and Zamfara (Nigeria): ISWAP, Boko Haram, bandits.
NIGERIA = ["Maiduguri", "Monguno", "Gwoza", "Bama", "Dikwa", "Damasak", "Geidam", "Gusau"]

ISSP_EN = ["Islamic State Sahel Province", "IS Sahel", "Islamic State in the Greater Sahara"]
JNIM_EN = ["JNIM", "al-Qaeda-linked JNIM", "Jama'at Nusrat al-Islam wal-Muslimin"]
ISSP_FR = ["l'État islamique au Sahel", "l'EIGS", "l'État islamique dans le Grand Sahara"]
JNIM_FR = ["le JNIM", "le GSIM", "le Groupe de soutien à l'islam et aux musulmans"]
ARMIES_EN = {"Niger": "Nigerien soldiers", "Mali": "Malian soldiers", "Burkina Faso": "Burkinabe soldiers",
             "Benin": "Beninese soldiers"}
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_FR = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]

PAGE_EN = [
    ("{actor} fighters attack army post in {town}",
     "{actor} fighters attacked an army post in {town}, {country}, on {day}, killing {n} {army}, security "
     "sources said. {actor} claimed the attack in a statement."),
    ("Roadside bomb kills {n} soldiers near {town}",
     "An improvised explosive device struck a military convoy about {km} km from {town}, {country}, on {day}, "
     "killing {n} {army} and wounding {m}. {actor} claimed responsibility."),
    ("{actor} militants kill {n} villagers near {town}",
     "{actor} militants killed {n} civilians in a village near {town}, {country}, on {day}, residents said, "
     "and burned {m} houses."),
    ("{actor} ambush kills {n} troops near {town}",
     "{actor} fighters ambushed an army patrol near {town}, {country}, on {day}, killing {n} {army}, the "
     "defence ministry said. {m} soldiers are missing."),
    ("{actor} abducts {n} civilians near {town}",
     "Fighters of {actor} abducted {n} civilians, including {m} women, on the road to {town}, {country}, on "
     "{day}, local officials said."),
]
PAGE_FR = [
    ("{town} : {n} soldats tués dans une attaque de {actor}",
     "Des combattants de {actor} ont attaqué {day} un poste de l'armée à {town} ({country}), tuant {n} soldats, "
     "selon des sources sécuritaires. {actor} a revendiqué l'attaque."),
    ("Embuscade meurtrière près de {town}",
     "Au moins {n} militaires ont été tués {day} dans une embuscade tendue par {actor} près de {town} "
     "({country}), a indiqué l'armée. {m} soldats sont portés disparus."),
    ("Engin explosif : {n} morts près de {town}",
     "Un engin explosif improvisé a frappé {day} un convoi militaire à {km} km de {town} ({country}), tuant "
     "{n} soldats. L'attaque a été revendiquée par {actor}."),
    ("{n} civils tués par {actor} près de {town}",
     "Des combattants de {actor} ont tué {n} civils {day} dans un village proche de {town} ({country}) et "
     "incendié {m} maisons, selon des habitants."),
]
OTHER_EN = [
    ("ISWAP fighters attack military base in {town}",
     "Fighters of Islamic State West Africa Province attacked a military base in {town}, Borno State, on {day}, "
     "killing {n} soldiers, military sources said."),
    ("Boko Haram kills {n} farmers near {town}",
     "Boko Haram insurgents killed {n} farmers working in their fields near {town}, Borno State, on {day}, "
     "a militia leader said."),
    ("Bandits abduct {n} villagers near {town}",
     "Armed bandits abducted {n} villagers near {town}, Zamfara State, on {day}, police said, and demanded a "
     "ransom."),
]
NOISE_EN = [
    ("Analysis: what the {year} rains mean for herders around {town}",
     "Aid agencies say this year's rains around {town} came {n} days late; this analysis looks at what it "
     "means for herders and food prices."),
    ("WFP resumes food deliveries in {town}",
     "The World Food Programme said on {day} it had resumed food deliveries to {n},000 displaced people in "
     "{town}, {country}, after a {m}-week pause."),
    ("Schools reopen in {town} after {n} months",
     "Schools in {town}, {country}, reopened on {day} after {n} months, the education ministry said; "
     "{m} teachers have returned."),
]
NOISE_FR = [
    ("Reprise des cours à {town}",
     "Les écoles de {town} ({country}) ont rouvert {day} après {n} mois de fermeture, a annoncé le ministère "
     "de l'Éducation ; {m} enseignants ont repris leur poste."),
    ("{town} : le marché hebdomadaire rouvre",
     "Le marché hebdomadaire de {town} ({country}) a rouvert {day} après {n} semaines, selon la mairie, qui "
     "attend {m} commerçants."),
]


def kind_of(i: int) -> str:
    """What post i is: PAGE, OTHER or NOISE (shares as in SHARES, spread evenly over i)."""
    r = (i * 0.6180339887498949) % 1.0  # golden-ratio sequence: every window of posts has about the shares
    for kind, share in SHARES:
        if r < share:
            return kind
        r -= share
    return NOISE


SOURCE = "bench-wire"


def guid(run: str, i: int) -> str:
    return f"tput-{run}-{i}"


def start_for(posts: int, now: datetime) -> datetime:
    """The first slot's time for a run of `posts` posts whose last slot is the one before `now`."""
    return now - SLOT * (posts // len(TOWNS) + 1)


def post(run: str, i: int, start: datetime) -> dict:
    """Post i of run `run`: a body for POST /ingest, published in slot i // len(TOWNS) after `start`."""
    rng = random.Random(f"{run}/{i}")
    kind = kind_of(i)
    slot = i // len(TOWNS)
    town, country_en, country_fr = TOWNS[i % len(TOWNS)]
    fr = rng.random() < 0.4
    n, m, km = rng.randint(2, 60), rng.randint(2, 30), rng.randint(5, 40)
    if kind == PAGE:
        actors = (ISSP_FR + JNIM_FR) if fr else (ISSP_EN + JNIM_EN)
        title, text = rng.choice(PAGE_FR if fr else PAGE_EN)
        actor = rng.choice(actors)
    elif kind == OTHER:
        fr, town, actor = False, NIGERIA[i % len(NIGERIA)], ""
        title, text = rng.choice(OTHER_EN)
    else:
        title, text = rng.choice(NOISE_FR if fr else NOISE_EN)
        actor = ""
    fields = {"actor": actor, "town": town, "country": country_fr if fr else country_en,
              "army": ARMIES_EN.get(country_en, "soldiers"), "day": rng.choice(DAYS_FR if fr else DAYS_EN),
              "n": n, "m": m, "km": km, "year": 2020 + slot % 6}
    title, text = title.format(**fields), text.format(**fields)
    if fr:
        title = title[0].upper() + title[1:]
    published = start + slot * SLOT - timedelta(minutes=rng.randint(0, JITTER_MINUTES))
    return {
        "source": SOURCE, "guid": guid(run, i), "lang": "fr" if fr else "en",
        "title": title, "text": text, "url": f"https://bench.example.org/tput/{run}/{i}",
        "published_at": published.isoformat(),
    }
