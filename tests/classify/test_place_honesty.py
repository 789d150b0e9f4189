"""Places that abstain rather than guess: everyday words, offsets, datelines and villages no gazetteer knows."""

from datetime import UTC, datetime

from services.classify.classify import classify_post
from services.classify.place import is_common_word, km_between
from shared.messages import PostMessage

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NIAMEY = (13.5137, 2.1098)


def classify(title: str, text: str, lang: str = "en"):
    post = PostMessage(post_id="b" * 64, source_id="t", title=title, text=text, lang=lang, fetched_at=NOW)
    return classify_post(post, now=NOW)


def test_a_name_that_is_an_everyday_word_needs_place_context() -> None:
    assert is_common_word("save") and is_common_word("say") and not is_common_word("ouallam")
    headline = classify("Gunmen Attack Army Post, Save Two Hostages",
                        "Soldiers freed two hostages after gunmen attacked their post on Sunday.")
    assert headline.place is None or headline.place.name != "Savé"
    in_town = classify("Gunmen attack police station in Savé", "Gunmen attacked a police station in Savé, Benin, "
                       "on Sunday, killing two officers.")
    assert in_town.place is not None and in_town.place.name == "Savé" and in_town.place.country == "BJ"


def test_an_offset_stated_in_the_text_wins_over_the_bare_name_in_the_title() -> None:
    event = classify("Gunmen attack army post near Niamey",
                     "Gunmen attacked an army post 20 km north of Niamey on Sunday, killing three soldiers.")
    assert event.place is not None and event.place.precision == 2
    assert 15 < km_between((event.place.lat, event.place.lon), NIAMEY) < 25
    assert event.place.lat > NIAMEY[0]


def test_a_dateline_is_the_place_when_nothing_else_is_named() -> None:
    event = classify("", "Diffa : des hommes armés ont attaqué une position de l'armée dans la nuit, tuant deux "
                     "soldats.", "fr")
    assert event.place is not None and event.place.name == "Diffa" and "dateline" in (event.place.reason or "")


def test_a_village_no_gazetteer_knows_is_unresolved_not_its_region() -> None:
    event = classify("Gunmen kill 9 in Tillabéri village", "Gunmen on motorbikes attacked the village of Kandagou "
                     "in the Tillabéri region on Friday, killing nine civilians, local officials said.")
    assert event.is_event and event.place is None
    assert event.unresolved_place is not None
    assert (event.unresolved_place.name, event.unresolved_place.admin1, event.unresolved_place.country) == (
        "Kandagou", "Tillabéri", "NE")
    assert event.unresolved_place.evidence[0].text == "Kandagou"


def test_a_district_seat_stands_in_for_its_unknown_village_and_the_village_is_kept() -> None:
    event = classify("", "'Yan bindiga sun kai hari a kauyen Dankurmi da ke karamar hukumar Maru a jihar Zamfara, "
                     "sun kashe mutane 12.", "ha")
    assert event.place is not None and event.place.precision == 3
    assert event.unresolved_place is not None and event.unresolved_place.name == "Dankurmi"


def test_arabic_demonyms_count_in_any_form_and_datelines_yield() -> None:
    """"جنود بنينيين" (Beninese soldiers, no article, plural) names Benin, so Malanville is found and the Cotonou
    dateline is not the place; a demonym ending in ة is matched as the post is folded."""
    from services.classify.place import context_countries

    text = (
        "كوتونو - قُتل ثمانية جنود بنينيين في هجوم استهدف نقطة عسكرية قرب مدينة مالانفيل شمالي البلاد على الحدود "
        "مع النيجر. وتبنت جماعة نصرة الإسلام والمسلمين الهجوم."
    )
    assert "BJ" in context_countries("", text)
    assert "TD" in context_countries("", "قتل جنود من القوات التشادية")
    assert "ML" not in context_countries("", "أعلنت وزارة المالية في نيامي")  # "financial", not Malian
    event = classify("", text, "ar")
    assert event.place is not None and event.place.name == "Malanville"
