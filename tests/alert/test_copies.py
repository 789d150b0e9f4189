"""Copies (pure): near-duplicate texts across sources share an origin and count as one independent source."""

import random
import time
from datetime import timedelta

import pytest

from services.alert.copies import (
    MAX_CITATIONS,
    CopyPolicy,
    Report,
    by_origin,
    canonical_url,
    citations,
    corroboration_reason,
    find_origin,
    forward_of,
    independent_sources,
    signature,
    similarity,
    words,
)
from services.alert.incidents import open_incident
from services.alert.pipeline import Levels, alert_message, incident_levels, material_change
from services.alert.rules import load_rule_text
from services.alert.severity import SeverityPolicy
from tests.alert.events import T0, vbied_niamey_en
from tests.alert.test_rules import FIRST_RULE

POLICY = CopyPolicy()

WIRE = ("NIAMEY, Niger (AP) — A car bomb exploded Sunday at a military checkpoint on the northern outskirts of "
        "Niamey, killing three soldiers and wounding several civilians, the Defence Ministry said in a statement "
        "read on state television. The Islamic State Sahel Province claimed the attack on its Amaq outlet late "
        "on Sunday, saying one of its fighters drove the vehicle into the post. Niger's junta has struggled to "
        "contain attacks by jihadist groups since it seized power in July 2023.")
# Syndicated: another outlet's byline and a link appended, a word or two changed.
SYNDICATED = ("A car bomb exploded Sunday at a military checkpoint on the northern outskirts of Niamey, killing "
              "three soldiers and wounding several civilians, the Defence Ministry said in a statement read on state "
              "television. The Islamic State Sahel Province claimed the attack on its Amaq outlet late on Sunday, "
              "saying one of its fighters drove the vehicle into the post. Niger's junta has struggled to contain "
              "attacks by jihadist groups since it seized power in July 2023. Read more: https://example.net/a/1")
FORWARD = "Forwarded from Sahel Watch: " + WIRE.upper()
OWN_REPORT = ("Une forte explosion a secoué dimanche matin le poste de contrôle de la sortie nord de Niamey. Selon "
              "des témoins joints par téléphone, un véhicule a foncé sur les militaires avant d'exploser. Le bilan "
              "provisoire fait état de trois morts parmi les soldats.")
OTHER_WIRE = ("Gunmen on motorbikes killed at least twelve villagers in an attack near Tillaberi on Sunday, local "
              "officials said, the latest in a wave of raids in the tri-border area.")


@pytest.mark.parametrize(("a", "b", "copy"), [
    (WIRE, WIRE, True),
    (WIRE, SYNDICATED, True),
    (WIRE, FORWARD, True),
    (WIRE, OWN_REPORT, False),
    (WIRE, OTHER_WIRE, False),
    ("", WIRE, False),
], ids=["identical text", "syndicated: byline dropped, link added", "forward: prefix, upper case",
        "own report of the same attack", "another attack", "no text is never a copy"])
def test_copy_or_not(a: str, b: str, copy: bool) -> None:
    found = similarity(signature("", a, POLICY), signature("", b, POLICY))
    assert (found >= POLICY.threshold) is copy, found


def test_words_fold_case_accents_and_links() -> None:
    assert words("Tillabéri:", "ATTAQUE à https://x.org/a?b=1 Niamey", 1000) == ["tillaberi", "attaque", "a",
                                                                                 "niamey"]
    assert words("", "a" * 50, 10) == ["a" * 9]   # title and text are read up to max_chars together


def test_signature_is_stable_across_processes() -> None:
    """Stored signatures are compared with those of other workers: the permutations come from a fixed seed."""
    assert signature("", WIRE, POLICY) == signature("", WIRE, CopyPolicy())
    assert len(signature("", WIRE, POLICY) or b"") == 4 * POLICY.num_perm
    assert similarity(signature("", WIRE, POLICY), signature("", WIRE, CopyPolicy(num_perm=64))) == 0.0


def test_a_1_mb_text_is_signed_in_well_under_a_second() -> None:
    rng = random.Random(7)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(20_000)]
    text = " ".join(rng.choices(vocabulary, k=200_000))[:1_000_000]
    started = time.thread_time()  # CPU time: wall time on a busy machine (tests in parallel) measures the load
    assert signature("", text, POLICY) is not None
    assert time.thread_time() - started < 1.5  # about 0.2 s on a quiet core; linear, not quadratic


def _report(event_id: str, source: str, text: str, minutes: int, origin: str | None = None) -> Report:
    return Report(event_id, source, T0 + timedelta(minutes=minutes), signature("", text, POLICY), origin)


WIRE_AT_0 = _report("wire", "ap", WIRE, 0)
COPY_AT_30 = _report("copy", "blog", SYNDICATED, 30, origin="wire")


@pytest.mark.parametrize(("new", "reports", "origin", "copy_of", "repoint"), [
    (_report("wire", "ap", WIRE, 0), [], "wire", None, {}),
    (_report("copy", "blog", SYNDICATED, 30), [WIRE_AT_0], "wire", "wire", {}),
    (_report("fwd", "tg", FORWARD, 40), [WIRE_AT_0, COPY_AT_30], "wire", "wire", {}),
    (_report("own", "rfi", OWN_REPORT, 20), [WIRE_AT_0, COPY_AT_30], "own", None, {}),
    (_report("first", "tg", WIRE, -30), [WIRE_AT_0, COPY_AT_30], "first", None, {"wire": "first", "copy": "first"}),
    (_report("wire", "ap", WIRE, 0), [WIRE_AT_0, COPY_AT_30], "wire", None, {}),
], ids=["first report: its own origin", "syndicated copy links to the wire", "a copy of a copy links to the first",
        "an own report is an original", "the first word delivered late becomes the origin of the group",
        "the origin itself again changes nothing"])
def test_origin(new: Report, reports: list[Report], origin: str, copy_of: str | None,
                repoint: dict[str, str]) -> None:
    found = find_origin(new, reports, POLICY)
    assert (found.origin, found.copy_of, found.repoint) == (origin, copy_of, repoint)
    assert (found.similarity is None) is (copy_of is None)


@pytest.mark.parametrize(("a", "b"), [
    ("https://www.sahel-wire.example/2026/niamey/?utm_source=tg&utm_medium=x#top", "http://sahel-wire.example/2026/niamey"),
    ("https://t.me/s/sahelwire/812", "https://t.me/sahelwire/812?single"),
    ("https://telegram.me/sahelwire/812/", "https://t.me/sahelwire/812"),
    ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2&fbclid=XYZ"),
], ids=["scheme, www, slash, fragment, utm", "t.me preview path and ?single", "telegram.me", "query order, fbclid"])
def test_one_address_written_two_ways_is_one(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b) is not None


@pytest.mark.parametrize("url", [None, "", "Sahel Wire", "ftp://x.org/a", "https://", "http://[::1", "https://x:99999/"])
def test_what_is_not_a_web_address_has_no_canonical_form(url: str | None) -> None:
    assert canonical_url(url) is None


def test_a_forward_names_its_original_by_link_else_by_author() -> None:
    assert forward_of("https://t.me/s/sahelwire/812") == "t.me/sahelwire/812"
    assert forward_of("  Sahel   WIRE ") == "name:sahel wire"
    assert forward_of(None) is None and forward_of("  ") is None


def test_citations_are_the_text_links_canonical_bounded() -> None:
    text = "Read: https://Sahel-Wire.example/a/?utm_source=x. Also www.rfi.fr/afrique/1, and (https://x.org/b)."
    assert citations(text, 10_000) == ("sahel-wire.example/a", "rfi.fr/afrique/1", "x.org/b")
    many = " ".join(f"https://x.org/{i}" for i in range(100_000))          # 2 MB of links
    started = time.thread_time()  # CPU time, as above
    assert len(citations(many, 1_000_000)) == MAX_CITATIONS
    assert time.thread_time() - started < 0.5


def _linked(event_id: str, source: str, text: str, minutes: int, *, url: str | None = None,
            forwards: str | None = None, origin: str | None = None) -> Report:
    return Report(event_id, source, T0 + timedelta(minutes=minutes), signature("", text, POLICY), origin,
                  url=canonical_url(url), forward_of=forward_of(forwards), cites=citations(text, 10_000))


STORY = _linked("story", "wire", WIRE, 0, url="https://wire.example/2026/niamey")
WIRE_TG = "Car bomb at Niamey checkpoint, 3 soldiers killed, IS Sahel claims. https://wire.example/2026/niamey?utm_source=tg"
FWD_1 = _linked("fwd1", "tg-relay", WIRE_TG, 20, url="https://t.me/relay/5", forwards="https://t.me/wire/812")
FWD_2 = _linked("fwd2", "tg-alerts", "Niamey: car bomb, IS Sahel claims.", 25, url="https://t.me/alerts/9",
                forwards="https://t.me/s/wire/812")


@pytest.mark.parametrize(("new", "reports", "origin", "copy_of", "via", "repoint", "vias"), [
    (FWD_1, [STORY], "story", "story", "forward", {}, {}),
    (STORY, [FWD_1], "story", None, None, {"fwd1": "story"}, {"fwd1": "forward"}),
    (FWD_2, [FWD_1], "fwd1", "fwd1", "forward", {}, {}),
    (FWD_2, [STORY, _linked("fwd1", "tg-relay", WIRE_TG, 20, url="https://t.me/relay/5",
                            forwards="https://t.me/wire/812", origin="story")], "story", "fwd1", "forward", {}, {}),
    (_linked("early", "tg", WIRE_TG, -5, url="https://t.me/relay/5"), [STORY], "story", "story", "forward", {}, {}),
    (_linked("own", "rfi", OWN_REPORT, 30, url="https://rfi.fr/1", forwards="Sahel Watch"),
     [STORY, _linked("fwdx", "tg", "other words entirely", 10, forwards="Sahel Watch")], "fwdx", "fwdx", "forward",
     {}, {}),
    (_linked("own", "rfi", OWN_REPORT, 30, url="https://rfi.fr/1"), [STORY, FWD_1], "own", None, None, {}, {}),
], ids=["a forward linking the story is its copy, though its words differ",
        "the story arriving after its forward becomes the forward's origin",
        "two forwards of one message not among the reports: the second copies the first",
        "a forward of a forward's original joins the story's group",
        "a report citing the story is never its origin, even published earlier",
        "forwards named only by author link to each other",
        "an own report with other words stays an original"])
def test_forwards_and_links(new: Report, reports: list[Report], origin: str, copy_of: str | None, via: str | None,
                            repoint: dict[str, str], vias: dict[str, str]) -> None:
    found = find_origin(new, reports, POLICY)
    assert (found.origin, found.copy_of, found.via, found.repoint, found.vias) == (origin, copy_of, via, repoint, vias)


def test_reports_grouped_by_origin_say_how_each_copy_was_found() -> None:
    groups = by_origin([("story", "wire", None, None, None), ("fwd1", "tg", "story", None, "forward"),
                        ("blog", "blog", "story", 0.91, "text"), ("own", "rfi", "own", None, None)])
    assert [(g["source_id"], [(r["event_id"], r["via"]) for r in g["reports"]]) for g in groups] == [
        ("wire", [("story", None), ("fwd1", "forward"), ("blog", "text")]), ("rfi", [("own", None)])]


@pytest.mark.parametrize(("reports", "independent", "reason"), [
    ([("e1", "ap", None)], ["ap"], "sources 1 (1 independent)"),
    ([("e1", "ap", "e1"), ("e2", "blog", "e1")], ["ap"], "sources 2 (1 independent: 1 syndicated copy)"),
    ([("e1", "ap", None), ("e2", "blog", "e1"), ("e3", "rfi", "e3")], ["ap", "rfi"],
     "sources 3 (2 independent: 1 syndicated copy)"),
    ([("e1", "ap", None), ("e2", "blog", "e1"), ("e3", "blog", None)], ["ap", "blog"],
     "sources 2 (2 independent)"),
], ids=["one source", "a copy adds no independent source", "two originals and a copy",
        "a source with an own report counts even if it also copies"])
def test_independent_sources(reports: list[tuple[str, str, str | None]], independent: list[str],
                             reason: str) -> None:
    assert independent_sources(reports) == independent
    assert corroboration_reason(sorted({r[1] for r in reports}), independent) == reason


@pytest.mark.parametrize(("sources", "independent", "kept", "level", "reason"), [
    (["ap", "blog"], ["ap"], None, "single_source", "sources 2 (1 independent: 1 syndicated copy)"),
    (["ap", "blog", "rfi"], ["ap", "rfi"], None, "corroborated", "sources 3 (2 independent: 1 syndicated copy)"),
    (["ap", "anp-niger"], ["ap"], None, "confirmed",
     "sources 2 (1 independent: 1 syndicated copy); official: anp-niger"),
    (["ap", "blog"], ["blog"], "corroborated", "corroborated",
     "sources 2 (1 independent: 1 syndicated copy); corroborated kept: it only rises"),
], ids=["a copy does not corroborate", "an own report does", "an official source confirms, even repeating a story",
        "a level once reached is kept when an origin moves"])
def test_levels_count_independent_sources(sources: list[str], independent: list[str], kept: str | None,
                                          level: str, reason: str) -> None:
    levels = incident_levels(None, kept, open_incident("i", vbied_niamey_en()), sources, SeverityPolicy(),
                             frozenset({"anp-niger"}), independent)
    assert (levels.corroboration, levels.corroboration_reason, levels.independent_source_ids) == (
        level, reason, independent)


def test_a_copy_is_no_material_change_and_an_own_report_is() -> None:
    report = vbied_niamey_en()
    rule = load_rule_text(FIRST_RULE)
    fired = alert_message(rule, open_incident("i", report), report, None, None, [report.event_id], ["ap"], T0,
                          Levels("single_source", "III", [], "sources 1 (1 independent)", ["ap"]))
    copy = Levels("single_source", "III", [], "sources 2 (1 independent: 1 syndicated copy)", ["ap"])
    own = Levels("corroborated", "III", [], "sources 3 (2 independent: 1 syndicated copy)", ["ap", "rfi"])
    assert material_change(fired, ["ap", "blog"], report.killed, copy) is None
    assert material_change(fired, ["ap", "blog", "rfi"], report.killed, own) == (
        "sources 1→2; single_source→corroborated")
