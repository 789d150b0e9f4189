"""Place names as posts spell them: dropped vowels and Arabic script reach the gazetteer by their consonants."""

from datetime import UTC, datetime

import pytest

from services.classify.classify import classify_post
from services.classify.spelling import skeleton
from shared.messages import PostMessage

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "gazetteer"),
    [("Tilabery", "Tillabéri"), ("دوغوندوتشي", "Dogondoutchi"), ("بوغاندي", "Bogandé"), ("تين أكوف", "Tin-Akoff"),
     ("كانامّا", "Kanamma"), ("Guidan Roumdi", "Guidan Roumdji"), ("أبالا", "Abala")],
    ids=["vowels dropped", "Arabic tch", "Arabic gh", "two words", "shadda", "dj", "initial vowel"],
)
def test_spellings_share_their_consonants(written: str, gazetteer: str) -> None:
    assert skeleton(written) == skeleton(gazetteer)


def test_a_vowel_start_is_not_a_consonant_start() -> None:
    assert skeleton("Akinima") != skeleton("Kanamma")


def test_an_arabic_claim_is_placed_at_the_town_it_names_in_arabic_script() -> None:
    text = ("ولاية غرب إفريقية - بفضل الله تعالى، فجّر جنود الخلافة عبوة ناسفة على آلية للجيش النيجيري قرب بلدة "
            "كانامّا بولاية يوبي، ما أدى لهلاك 4 عناصر.")
    event = classify_post(PostMessage(post_id="a" * 64, source_id="t", text=text, lang="ar", fetched_at=NOW), now=NOW)
    assert event.is_event and event.place is not None
    assert (event.place.name, event.place.country) == ("Kanamma", "NG")


def test_a_dateline_with_dropped_vowels_is_still_the_place() -> None:
    text = "Tilabery: le marché à bétail attaqué ce matin par des hommes armés à moto. Plusieurs commerçants tués."
    event = classify_post(PostMessage(post_id="b" * 64, source_id="t", text=text, lang="fr", fetched_at=NOW), now=NOW)
    assert event.place is not None and event.place.name == "Tillabéri"
