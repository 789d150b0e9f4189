"""A source's keep and block patterns (pure): RE2 syntax, case- and accent-insensitive in every script the watch
floor reads, refused with the reason when RE2 cannot run them, and linear in the text whatever the pattern."""

import time
from datetime import UTC, datetime

import pytest

from services.ingest.filters import (
    MAX_PATTERN_CHARS,
    MAX_PATTERNS,
    PatternError,
    check_patterns,
    compile_filter,
    fold,
    kept_out_note,
    screen,
)
from shared.language import known_language
from shared.messages import PostMessage

CAP = 20_000


def verdict(title: str, text: str = "", *, keep: tuple[str, ...] = (), block: tuple[str, ...] = ()) -> str | None:
    filter_ = compile_filter(keep, block)
    assert filter_ is not None
    return filter_.kept_out(title, text, CAP)


@pytest.mark.parametrize(
    ("pattern", "title"),
    [
        ("securite", "Sécurité renforcée à Niamey"),
        ("sécurité", "SECURITE RENFORCEE A NIAMEY"),
        ("NIAMEY", "attaque près de niamey"),
        ("tillaberi", "Attaque près de Tillabéri"),
        ("ménaka|gao", "Menaka: une patrouille prise en embuscade"),
        ("هجوم", "هُجُومٌ على قرية قرب تيلابيري"),
        ("أمن", "قوات الامن في النيجر"),
        ("الدولة", "تنظيم الـدولـة في الساحل"),
        ("foot.*ball", "Foot-ball: Mena 2-1"),
        ("^match", "Match reporté"),
    ],
    ids=["accent in text, not in pattern", "accent in pattern, capitals in text", "case", "Tillabéri",
         "alternatives with accents", "Arabic harakat ignored", "Arabic hamza folds (أ = ا)",
         "Arabic tatweel ignored", "RE2 wildcard", "anchored at the title's start"],
)
def test_a_pattern_matches_across_case_accents_and_scripts(pattern: str, title: str) -> None:
    assert verdict(title, block=(pattern,)) == f"by block pattern {pattern!r}"
    assert verdict(title, keep=(pattern,)) is None


def test_block_wins_over_keep_and_keep_needs_one_match() -> None:
    assert verdict("Football à Niamey", keep=("niamey",), block=("football",)) == "by block pattern 'football'"
    assert verdict("Attaque à Diffa", keep=("niamey", "tillaberi")) == "matching no keep pattern"
    assert verdict("Attaque à Diffa", "Des hommes armés près de Tillabéri", keep=("niamey", "tillaberi")) is None
    assert verdict("Attaque à Diffa", block=("football",)) is None
    assert compile_filter((), ()) is None  # no patterns: every post is published, nothing is matched


def test_a_post_is_read_up_to_the_cap_only() -> None:
    text = "x " * CAP + "football"
    assert verdict("Attaque", text, block=("football",)) is None
    assert verdict("Attaque", "football " + text, block=("football",)) == "by block pattern 'football'"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(", "keep pattern '(': missing ): ("),
        (r"(a)\1", "invalid escape sequence: \\1 (backreferences and lookaround are not supported: RE2 syntax)"),
        ("(?=x)", "invalid perl operator: (?= (backreferences and lookaround are not supported: RE2 syntax)"),
        ("a{2000}", "invalid repetition size: {2000}"),
        ("x" * (MAX_PATTERN_CHARS + 1), f"is {MAX_PATTERN_CHARS + 1} characters; at most {MAX_PATTERN_CHARS}"),
        ("((a{100}){100}){100}", "invalid repetition size: {100}"),
        (r"\pL{1000}", "pattern too large - compile failed"),
    ],
    ids=["unbalanced", "backreference", "lookahead", "repetition over RE2's 1000", "over the length cap",
         "nested repetitions over 1000", "compiles to more than the memory cap"],
)
def test_a_pattern_re2_cannot_run_is_refused_naming_it(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        check_patterns([pattern], "keep")
    assert reason in refused.value.reason


def test_patterns_are_stripped_deduplicated_and_capped_in_number() -> None:
    assert check_patterns([" football ", "football", "", "basket|volley"], "block") == ["football", "basket|volley"]
    with pytest.raises(PatternError, match=f"at most {MAX_PATTERNS}"):
        check_patterns([f"w{n}" for n in range(MAX_PATTERNS + 1)], "block")


def test_a_hostile_pattern_on_a_long_post_costs_linear_time() -> None:
    """`(a+)+$` backtracks exponentially in Python's `re` on "aaa…a!"; RE2 has no backtracking. A 1 MB post
    is read up to the cap; the pattern on 200,000 characters uncapped still takes milliseconds."""
    hostile = ("(a+)+$", "(x+x+)+y", "^(a|aa)+$")
    filter_ = compile_filter(hostile, ())
    assert filter_ is not None
    post = ("a" * 999 + "!") * 1000  # 1 MB, and its first CAP characters end with "!" too
    started = time.thread_time()  # CPU time: wall time on a busy machine (tests in parallel) measures the load
    assert filter_.kept_out("a" * 999 + "!", post, CAP) == "matching no keep pattern"
    assert filter_.kept_out("x" * 999, "a" * 200_000 + "!", 200_001) == "matching no keep pattern"
    assert time.thread_time() - started < 1.0


def test_fold_leaves_ascii_and_pattern_syntax_alone() -> None:
    assert fold(r"\bfoo\B[a-z]+\d") == r"\bfoo\B[a-z]+\d"
    assert fold("Ségou, Kidal – Ménaka") == "Segou, Kidal – Menaka"


def test_screen_splits_posts_and_the_note_says_why() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    posts = [(PostMessage(post_id=f"post-{n:012d}", source_id="s", title=title, text="", fetched_at=now), f"k{n}")
             for n, title in enumerate(["Football: Mena 2-1", "Attaque à Niamey", "Basket: finale", "Diffa"])]
    screened = screen(posts, compile_filter(("niamey", "basket"), ("football",)), CAP)
    assert [k for _, k in screened.kept] == ["k1", "k2"]
    assert [(k, reason) for _, k, reason in screened.kept_out] == [
        ("k0", "by block pattern 'football'"), ("k3", "matching no keep pattern")]
    assert kept_out_note(["by block pattern 'football'"] * 12) == "kept out 12 posts by block pattern 'football'"
    assert kept_out_note(["by block pattern 'football'", "matching no keep pattern",
                          "by block pattern 'football'"]) == (
        "kept out 3 posts: 2 by block pattern 'football', 1 matching no keep pattern")


@pytest.mark.parametrize(("tag", "code"), [("fr", "fr"), ("fr-FR", "fr"), ("HA", "ha"), ("bm", "bm"),
                                          ("dyu", "dyu"), ("xx", None), ("und", None), ("qab", None),
                                          ("french", None), ("", None)])
def test_a_language_hint_must_name_a_language(tag: str, code: str | None) -> None:
    assert known_language(tag) == code
