"""Report status: a denied rumour, an anniversary or a threat is told apart from an attack that happened now."""

from datetime import UTC, datetime

import pytest

from services.classify.batch import to_prediction
from services.classify.classify import classify_post
from shared.messages import PostMessage

PUBLISHED = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

CASES = [
    ("reported", "Gunmen attack army post near Ouallam", "Gunmen attacked an army post near Ouallam on Sunday, "
     "killing four soldiers, officials said.", "en"),
    ("claimed", "JNIM claims ambush on Malian convoy near Boni", "JNIM claimed responsibility for an ambush on a "
     "Malian army convoy near Boni on Tuesday that killed six soldiers.", "en"),
    ("denied", "Army denies rumours of JNIM attack on Bamako airport", "The army said no attack took place at "
     "Bamako airport on Sunday and dismissed reports circulating on social media as false information.", "en"),
    ("denied", "Niamey : l'armée dément toute attaque contre l'aéroport", "L'état-major a démenti dimanche les "
     "informations faisant état d'une attaque contre l'aéroport de Niamey, qualifiées d'infox.", "fr"),
    ("rumoured", "", "Rumours are spreading of an attack by gunmen on the market in Djibo this morning; nothing "
     "has been confirmed yet.", "en"),
    ("historical", "One year ago: remembering the Inates attack", "On 10 December 2024, hundreds of ISGS fighters "
     "overran the army camp at Inates, killing 71 soldiers. Families gathered in Niamey on Wednesday.", "en"),
    ("historical", "Il y a cinq ans, l'attaque de Solhan", "Dans la nuit du 4 au 5 juin 2021, des hommes armés "
     "ont attaqué le village de Solhan, tuant plus de 130 personnes.", "fr"),
    ("hypothetical", "JNIM threatens to attack Bamako", "In a video, the group warned it would strike the capital "
     "and attack convoys on the roads to the south.", "en"),
    ("hypothetical", "", "Le GSIM menace d'attaquer les convois de carburant sur l'axe Kayes-Bamako, selon "
     "un message audio.", "fr"),
    ("reported", "Gunmen kill 12 soldiers in Torodi, a year after the Inates attack", "Gunmen killed 12 soldiers "
     "in an attack on an army post in Torodi on Sunday, a year after the Inates attack.", "en"),
    ("reported", "", "Des hommes armés ont attaqué en mai un poste de gendarmerie à Kaya, tuant 12 gendarmes, "
     "selon une source sécuritaire.", "fr"),
]


def classify(title: str, text: str, lang: str):
    post = PostMessage(post_id="a" * 64, source_id="t", title=title, text=text, lang=lang,
                       published_at=PUBLISHED, fetched_at=PUBLISHED)
    return classify_post(post, now=PUBLISHED)


@pytest.mark.parametrize(
    ("status", "title", "text", "lang"), CASES, ids=[f"{c[0]}: {(c[1] or c[2])[:40]}" for c in CASES]
)
def test_the_status_of_what_the_post_says(status: str, title: str, text: str, lang: str) -> None:
    event = classify(title, text, lang)
    assert event.status == status, event.status_reason
    assert event.is_event == (status in ("reported", "claimed"))
    assert event.status_reason and (status == "reported" or event.status_evidence)


def test_a_denied_attack_keeps_what_it_was_about_but_predicts_no_event() -> None:
    event = classify("Army denies rumours of JNIM attack on Bamako airport",
                     "The army dismissed reports of an attack on Bamako airport as false information.", "en")
    assert event.status == "denied" and not event.is_event
    assert "airport_attack" in event.tactic_codes  # what was denied, for the event log and the incident it disputes
    prediction = to_prediction("x", event)
    assert prediction["event"] is False and prediction["tactics"] == [] and prediction["place"] is None


def test_a_group_denying_its_role_does_not_deny_the_attack() -> None:
    event = classify("JNIM denies role in Solhan massacre", "JNIM said it had nothing to do with the killing of "
                     "132 villagers in Solhan and denied any involvement.", "en")
    assert event.is_event and event.status in ("reported", "claimed")
    assert "JNIM" not in event.actor_codes
