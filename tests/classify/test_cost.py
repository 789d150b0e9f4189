"""What a post costs: bounded by what is read of it, and every pass linear in that.

Costs are CPU time (time.thread_time): with tests running in parallel on a busy machine, wall time measures
the machine's load as much as the code."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from services.classify.batch import classify_file
from services.classify.classify import classify_post
from shared.messages import PostMessage

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LEDE = "Gunmen attacked an army post near Ouallam on Sunday, killing four soldiers, officials said. "
FILLER = "Residents described the market, the river and the harvest of millet in the region. "


def post(text: str, title: str = "") -> PostMessage:
    return PostMessage(post_id="f" * 64, source_id="t", title=title, text=text, fetched_at=NOW)


def test_a_one_megabyte_post_is_classified_from_its_lede_in_bounded_time() -> None:
    text = LEDE + FILLER * (1_000_000 // len(FILLER))
    started = time.thread_time()
    event = classify_post(post(text), now=NOW)
    elapsed = time.thread_time() - started
    assert event.is_event and "armed_assault" in event.tactic_codes
    assert event.place is not None and event.place.name == "Ouallam"
    assert event.text == text  # the whole text travels on; only its first part is read
    assert elapsed < 2.0, f"a 1 MB post took {elapsed:.1f} s"


def test_what_lies_beyond_the_cap_is_not_read() -> None:
    late = FILLER * 300 + "JNIM claimed the attack."
    capped = classify_post(post(LEDE + late), now=NOW, max_chars=5_000)
    whole = classify_post(post(LEDE + late), now=NOW, max_chars=100_000)
    assert "JNIM" not in capped.actor_codes
    assert "JNIM" in whole.actor_codes


def test_a_post_with_no_full_stop_costs_what_its_length_says() -> None:
    """One sentence of 200,000 characters: the sentence and clause searches are bounded windows, so ten
    times the text costs about ten times, not a hundred (the old passes were quadratic here)."""
    unit = "des hommes armés ont attaqué un poste de gendarmerie à Kaya tuant 12 gendarmes selon une source "

    def cost(n: int) -> float:
        text = (unit * (n // len(unit) + 1))[:n]
        best = 9e9
        for _ in range(3):
            started = time.thread_time()
            classify_post(post(text, "Attaque"), now=NOW, max_chars=n)
            best = min(best, time.thread_time() - started)
        return best

    cost(2_000)  # build the matchers
    small, large = cost(20_000), cost(200_000)
    assert large < 25 * small, f"20k chars {small:.3f} s, 200k chars {large:.3f} s: not linear"


def test_a_file_shared_among_workers_gives_the_same_predictions_in_order(tmp_path: Path) -> None:
    rows = [
        {"id": f"p{i}", "lang": "en", "title": f"Attack near Ouallam kills {i + 2} soldiers", "text": LEDE}
        for i in range(600)
    ] + [{"id": "calm", "lang": "en", "title": "Millet harvest up in Tahoua", "text": FILLER}]
    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert classify_file(src, one, workers=1) == len(rows)
    assert classify_file(src, two, workers=2) == len(rows)
    assert one.read_text(encoding="utf-8") == two.read_text(encoding="utf-8")
    ids = [json.loads(line)["id"] for line in two.read_text(encoding="utf-8").splitlines()]
    assert ids == [r["id"] for r in rows]

