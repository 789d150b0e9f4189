"""A roundup of attacks in different places gives one event per attack, each with its own labels and spans."""

import json
from datetime import UTC, datetime
from pathlib import Path

from services.classify.batch import classify_file
from services.classify.events import classify_events
from shared import ids
from shared.messages import PostMessage

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TITLE = "Two attacks in the Sahel: Ménaka and Djibo"
TEXT = ("Fighters of the Islamic State Sahel Province attacked an army post in Ménaka on Sunday, killing six "
        "soldiers, local sources said. In Burkina Faso, JNIM militants ambushed a supply convoy near Djibo on the "
        "same day, killing 11 soldiers, according to security sources.")


def test_each_attack_of_a_roundup_is_an_event_with_its_own_labels() -> None:
    post = PostMessage(post_id="e" * 64, source_id="t", title=TITLE, text=TEXT, lang="en", fetched_at=NOW)
    main, other = classify_events(post, now=NOW)
    assert (main.event_id, other.event_id) == (post.post_id, ids.event_id(post.post_id, 1))
    assert main.also == [other.event_id] and other.post_id == post.post_id
    assert (main.perpetrator, main.place.name if main.place else None, main.killed) == ("ISSP", "Ménaka", 6)
    assert main.tactic_codes == ["armed_assault"] and "JNIM" not in main.actor_codes
    assert (other.perpetrator, other.place.name if other.place else None, other.killed) == ("JNIM", "Djibo", 11)
    assert other.tactic_codes == ["ambush"] and "ISSP" not in other.actor_codes
    # the other attack's spans are offsets into the same post
    for span in [s for t in other.tactics for s in t.evidence]:
        assert TEXT[span.start : span.end] == span.text


def test_one_attack_told_in_two_sentences_is_one_event() -> None:
    text = ("Gunmen attacked an army post in Ménaka on Sunday. The attackers then ambushed reinforcements on the "
            "road out of Ménaka, killing six soldiers in all.")
    post = PostMessage(post_id="f" * 64, source_id="t", title="Ménaka attack", text=text, fetched_at=NOW)
    [event] = classify_events(post, now=NOW)
    assert event.also == []


def test_the_prediction_keeps_its_format_and_lists_the_others_under_also(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "r1", "lang": "en", "title": TITLE, "text": TEXT}) + "\n", encoding="utf-8")
    classify_file(src, out, workers=1)
    [row] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["id"] == "r1" and row["perpetrator"] == "ISSP" and row["place"]["name"] == "Ménaka"
    assert [(a["id"], a["perpetrator"], a["place"]["name"]) for a in row["also"]] == [("r1#1", "JNIM", "Djibo")]
