"""Headlines (pure): an alert's headline is its most informative report's, tidied of emoji, hashtags and links."""

import time

import pytest

from services.alert.headline import MAX_CHARS, better, candidate, score, tidy


@pytest.mark.parametrize(("raw", "tidied"), [
    ("⚡️🇳🇪 BREAKING: Car bomb hits army post in Niamey 💥 #Niger #Sahel", "Car bomb hits army post in Niamey"),
    ("🔴 URGENT | Attaque à #Tillabéri : 12 soldats tués https://t.co/abc", "Attaque à Tillabéri : 12 soldats tués"),
    ("عاجل: هجوم على مطار نيامي 🚨", "هجوم على مطار نيامي"),
    ("  Car   bomb\u200d in  Gao  @sahel_watch @afp", "Car bomb in Gao"),
    ("Car bomb hits army post in Niamey", "Car bomb hits army post in Niamey"),
], ids=["emoji, flag, BREAKING, trailing hashtags", "URGENT, inline hashtag kept as a word, link",
        "Arabic urgent", "spaces, joiner, trailing mentions", "a clean title is left alone"])
def test_tidy(raw: str, tidied: str) -> None:
    assert tidy(raw) == tidied
    assert tidy(tidied) == tidied


def test_a_post_without_title_offers_its_first_sentence() -> None:
    text = ("🚨🚨 #Niamey: a suicide car bomb hit the army post at the northern exit this morning. Three soldiers "
            "killed, per local sources. More soon… https://t.me/x/1")
    assert candidate("", text) == "Niamey: a suicide car bomb hit the army post at the northern exit this morning."


def test_a_long_headline_is_cut_at_a_word() -> None:
    cut = candidate("", "word " * 500)
    assert len(cut) <= MAX_CHARS and cut.endswith("word…")


def test_a_1_mb_post_costs_no_more_than_a_short_one() -> None:
    started = time.thread_time()  # CPU time: wall time on a busy machine (tests in parallel) measures the load
    candidate("🚨" * 500_000, "💥 #tag " * 200_000)
    assert time.thread_time() - started < 0.5


def test_the_wire_title_wins_over_an_emoji_laden_post_and_stays() -> None:
    social = candidate("", "⚡️⚡️ BOOM 💥💥 #Niamey #Niger")
    wire = candidate("Suicide car bomb kills three soldiers at Niamey army post; IS Sahel claims it", "")
    assert better(None, social, "Niamey") == "BOOM"
    assert better(social, wire, "Niamey") == wire
    # A later, vaguer report does not take the headline back, nor does one merely as good.
    assert better(wire, candidate("Explosion heard in the capital", ""), "Niamey") == wire
    assert better(wire, candidate("Car bomb kills three soldiers at a Niamey army post, IS Sahel says", ""),
                  "Niamey") == wire


def test_shouting_and_stubs_score_lower_than_a_plain_title() -> None:
    plain = "Gunmen kill 12 villagers near Tillabéri"
    assert score(plain, "Tillaberi") > score(plain.upper(), "Tillaberi") > score("Attack", "Tillaberi")
    assert score("", None) < score("Attack", None)


def test_every_emoji_the_emoji_package_knows_is_tidied_away() -> None:
    import emoji

    left = [e for e in emoji.EMOJI_DATA if tidy(f"Attack in Niamey {e} today") != "Attack in Niamey today"]
    assert not left, left[:10]
