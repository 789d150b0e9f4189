"""The start-up caches: built once, loaded after, rebuilt when unreadable or when an input changes."""

import logging
import subprocess
import sys
from pathlib import Path

from shared.disk_cache import cached_pickle, digest

ROOT = Path(__file__).resolve().parents[2]


def test_a_value_is_built_once_then_loaded(tmp_path) -> None:
    calls = []

    def build() -> dict:
        calls.append(1)
        return {"niamey": (13.51, 2.11)}

    path = tmp_path / "sub" / "value.pickle"
    assert cached_pickle(path, build) == cached_pickle(path, build) == {"niamey": (13.51, 2.11)}
    assert len(calls) == 1
    assert [p.name for p in path.parent.iterdir()] == ["value.pickle"]  # no temporary file left behind


def test_an_unreadable_cache_is_logged_and_rebuilt(tmp_path, caplog) -> None:
    path = tmp_path / "value.pickle"
    path.write_bytes(b"\x80\x05truncated")
    with caplog.at_level(logging.WARNING):
        assert cached_pickle(path, lambda: [1, 2, 3]) == [1, 2, 3]
    assert "cache unreadable" in caplog.text and str(path) in caplog.text
    assert cached_pickle(path, lambda: [9]) == [1, 2, 3]  # the rebuilt value was written back


def test_an_unwritable_directory_still_gives_the_value(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        assert cached_pickle(blocker / "value.pickle", lambda: "built") == "built"
    assert "cache not written" in caplog.text


def test_the_digest_changes_with_any_input_file(tmp_path) -> None:
    data = tmp_path / "lexicon.csv"
    data.write_text("name,value\nJNIM,JNIM\n")
    before = digest(["v1", data])
    data.write_text("name,value\nJNIM,JNIM\nGSIM,JNIM\n")
    assert digest(["v1", data]) != before
    assert digest(["v1", tmp_path / "missing.csv"]) != digest(["v1", tmp_path / "other.csv"])


def test_classify_starts_from_its_cache_with_the_same_labels(tmp_path) -> None:
    """The second process loads the automata and spelling index instead of building them, and labels the same."""
    # CPU time (process_time): wall time on a busy machine (tests in parallel) measures the load, not the cache.
    script = (
        "import time; from datetime import UTC, datetime; from pathlib import Path; "
        "t = time.process_time(); "
        "from services.classify.warm import classify_gazetteer; from services.classify.classify import classify_post; "
        "from shared.messages import PostMessage; "
        f"g = classify_gazetteer(Path({str(tmp_path)!r})); "
        "p = PostMessage(post_id='a' * 64, source_id='t', title='', fetched_at=datetime.now(UTC), "
        "text='Des hommes armés ont attaqué le village de Tilabery, tuant 7 civils.'); "
        "e = classify_post(p, now=datetime.now(UTC), gazetteer=g); "
        "print(e.place.name if e.place else None, e.killed, round(time.process_time() - t, 2))"
    )
    env = {"WATCHFLOOR_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-c", script]
    first = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    assert len(list(tmp_path.glob("classify-*.pickle"))) == 1, first.stderr
    assert len(list(tmp_path.glob("common-words-*.pickle"))) == 1, first.stderr
    second = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    place, killed, _ = first.stdout.split()
    place2, killed2, seconds = second.stdout.split()
    assert (place, killed) == (place2, killed2) == ("Tillabéri", "7")  # spelling drift needs the spelling index
    assert float(seconds) < float(first.stdout.split()[2])
