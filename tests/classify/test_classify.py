"""Labels of hand-written posts (facts of public events, texts written anew) per language and hard case."""

from datetime import UTC, datetime

import pytest

from services.classify.classify import CLASSIFIER_VERSION, classify_post
from services.classify.match import label_matcher
from services.classify.toll import death_toll
from shared.messages import PostMessage

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def post(title: str, text: str = "", lang: str = "en") -> PostMessage:
    return PostMessage(post_id="p" * 16, source_id="test", title=title, text=text, lang=lang, fetched_at=NOW)


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    from services.classify.place import km_between

    return km_between(a, b)


@pytest.mark.parametrize(
    "title",
    [
        "Suicide car bomb hits army post near Niamey airport; IS Sahel claims it",
        "Attentat-suicide à la voiture piégée contre un poste de l'armée près de l'aéroport de Niamey ; "
        "l'EIGS revendique",
    ],
    ids=["english", "french"],
)
def test_the_end_to_end_post_is_an_issp_svbied_at_niamey(title: str) -> None:
    event = classify_post(post(title), now=NOW)
    assert event.is_event
    assert event.perpetrator == "ISSP"
    assert {"vbied", "suicide_attack"} <= set(event.tactic_codes)
    assert event.place is not None and km((event.place.lat, event.place.lon), (13.51, 2.11)) < 25
    assert event.classifier == CLASSIFIER_VERSION and event.gazetteer


def test_claim_beats_attribution_and_the_army_is_the_target() -> None:
    event = classify_post(
        post(
            "Jihadists overrun army camp in Mali's Gao region",
            "Fighters stormed the army camp at Tessit on Sunday, killing 17 soldiers, the army said. "
            "JNIM claimed the attack in a statement.",
        ),
        now=NOW,
    )
    assert event.perpetrator == "JNIM"
    roles = {a.code: a.role for a in event.actors}
    assert roles["MALI_FAMA"] == "target"
    assert event.killed == 17
    assert event.place is not None and event.place.name == "Tessit"


def test_a_denying_group_is_left_out_of_the_actors() -> None:
    event = classify_post(
        post(
            "JNIM denies role in village killings",
            "JNIM said in a statement that it had nothing to do with the killing of 30 villagers in Sebba.",
        ),
        now=NOW,
    )
    assert "JNIM" not in event.actor_codes
    assert event.perpetrator is None


def test_the_announcement_place_is_not_the_event_place() -> None:
    event = classify_post(
        post(
            "Attaque dans la région de Tillabéri",
            "Selon un communiqué lu à la télévision nationale à Niamey, 12 soldats ont été tués dans l'attaque "
            "du poste de Banibangou.",
            lang="fr",
        ),
        now=NOW,
    )
    assert event.place is not None and event.place.name == "Bani Bangou"
    assert event.killed == 12


def test_evidence_offsets_point_at_the_words() -> None:
    p = post("Boko Haram fighters attack Monguno", "Boko Haram fighters attacked Monguno on Monday.")
    event = classify_post(p, now=NOW)
    jas = next(a for a in event.actors if a.code == "JAS")
    for span in jas.evidence:
        body = p.title if span.field == "title" else p.text
        assert body[span.start : span.end] == span.text == "Boko Haram"


def test_niger_the_river_is_not_niger_the_country() -> None:
    event = classify_post(
        post(
            "Rockets hit boat on the Niger River near Gourma-Rharous",
            "Militants fired rockets at a passenger boat on the Niger River near Gourma-Rharous, killing 20.",
        ),
        now=NOW,
    )
    assert event.place is not None and event.place.country == "ML"


def test_gao_town_versus_gao_region() -> None:
    town = classify_post(
        post("Car bomb in Gao", "A car bomb exploded at a checkpoint in Gao, Mali, killing 3."), now=NOW
    )
    assert town.place is not None and town.place.country == "ML" and town.place.precision == 1
    region = classify_post(
        post(
            "Attaque dans la région de Gao",
            "Des hommes armés ont attaqué un poste dans la région de Gao.",
            lang="fr",
        ),
        now=NOW,
    )
    assert region.place is not None and region.place.precision == 3


def test_relative_place_is_offset_from_its_anchor() -> None:
    event = classify_post(
        post(
            "Gunmen kill 9 in Niger",
            "Gunmen attacked a camp of herders on Friday about 40 km north of Tahoua, killing 9.",
        ),
        now=NOW,
    )
    assert event.place is not None and event.place.precision == 2
    assert 30 < km((event.place.lat, event.place.lon), (14.889, 5.269)) < 50
    assert event.place.lat > 14.889


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("Analysis: JNIM's expansion toward the coast", "Analysts say JNIM attacked border posts in Benin last year."),
        ("Mali knock Burkina out of the cup", "Mali beat Burkina Faso 2-1 in the AFCON semi-finals."),
        ("Court convicts former jihadist commander", "The court found him guilty of attacks in Timbuktu."),
    ],
    ids=["analysis", "sport", "court case"],
)
def test_non_events(title: str, text: str) -> None:
    event = classify_post(post(title, text), now=NOW)
    assert not event.is_event and event.tactics == [] and event.place is None


def test_hausa_and_arabic_posts() -> None:
    ha = classify_post(
        post("", "Borno: 'Yan Boko Haram sun kashe mutane akalla 12 a garin Konduga ranar Talata.", "ha"), now=NOW
    )
    assert "JAS" in ha.actor_codes and ha.killed == 12
    ar = classify_post(post("", "ولاية غرب إفريقية - هاجم جنود الخلافة ثكنة للجيش النيجيري", "ar"), now=NOW)
    assert ar.perpetrator == "ISWAP" and "NIGERIA_MIL" in ar.actor_codes


@pytest.mark.parametrize(
    ("title", "text", "killed"),
    [
        ("", "Forty-two soldiers were killed and 15 wounded.", 42),
        ("", "Au moins vingt-huit civils ont été tués et treize blessés.", 28),
        ("", "Une trentaine de voyageurs tués près de Maiduguri.", 30),
        ("", "Twelve people were wounded in the blast.", None),
        ("147 morts à Karma", "Le procureur avait d'abord évoqué une soixantaine de morts.", 147),
        ("", "Ten soldiers were killed, officials said; residents put the number of dead at 25.", None),
        ("", "Le bilan s'alourdit à 53 morts, contre 15 annoncés dans un premier temps.", 53),
        ("", "Quatre-vingt-neuf soldats ont été tués.", 89),
        ("", "an kashe dalibai akalla 47.", 47),
        ("", "قتل 185 شخصا في سلسلة تفجيرات", 185),
    ],
    ids=[
        "english words",
        "french compound",
        "french approximate",
        "wounded only",
        "the earlier figure is not the toll",
        "conflicting tolls",
        "le bilan s'alourdit",
        "french 80-99",
        "hausa noun before the count",
        "arabic",
    ],
)
def test_death_toll(title: str, text: str, killed: int | None) -> None:
    assert death_toll(title, text).killed == killed


def test_subunit_yields_its_parent() -> None:
    event = classify_post(
        post(
            "Katiba Macina abducts village chief near Niafunké",
            "Fighters of Katiba Macina abducted a village chief near Niafunké.",
        ),
        now=NOW,
    )
    assert {"KATIBA_MACINA", "JNIM"} <= set(event.actor_codes)
    assert event.perpetrator == "KATIBA_MACINA"


def test_short_acronyms_match_case_exactly() -> None:
    hits = label_matcher().scan("a fan of the show", "text", ("actor",))
    assert not hits
