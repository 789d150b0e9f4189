"""Classify a JSONL file of posts offline (`watchfloor classify --input F --output F [--explain]`).

Input lines: `{"id", "lang", "title", "text", "published"}` (the dev-set shape); output lines: the
prediction format of shared/eval/score.py, plus, with `explain`, the evidence and reasons.
"""

import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from services.classify.classify import classified_part
from services.classify.events import classify_events, warm_up
from services.classify.limits import MAX_CHARS
from services.classify.toll import death_toll
from services.classify.warm import classify_gazetteer
from shared.gazetteer import Gazetteer
from shared.language import detect_language
from shared.messages import EventMessage, PostMessage, Span


def to_prediction(
    row_id: str, event: EventMessage, *, explain: bool = False, also: list[EventMessage] | None = None
) -> dict:
    """The score.py prediction of a post's main event; a roundup's other attacks go under `also`, each in the
    same format. As the evaluation sets label a roundup (dev d012, d078), the main line's actors and tactics are
    those of every attack the post reports; its place, perpetrator and toll are the main attack's."""
    place = event.place
    actors = list(dict.fromkeys([*event.actor_codes, *(c for other in also or [] for c in other.actor_codes)]))
    tactics = list(dict.fromkeys([*event.tactic_codes, *(c for other in also or [] for c in other.tactic_codes)]))
    out: dict = {
        "id": row_id,
        "event": event.is_event,
        "actors": actors,
        "perpetrator": event.perpetrator,
        "tactics": tactics if event.is_event else [],
        "place": (
            {"lat": place.lat, "lon": place.lon, "country": place.country, "name": place.name}
            if place and event.is_event
            else None
        ),
        "killed": event.killed,
        "status": event.status,
    }
    if also:
        out["also"] = [to_prediction(f"{row_id}#{n}", other, explain=explain) for n, other in enumerate(also, 1)]
    if explain:
        toll = death_toll(event.title, classified_part(event.text, MAX_CHARS))  # what classify read
        out["explain"] = {
            "actors": [a.model_dump(mode="json") for a in event.actors],
            "tactics": [t.model_dump(mode="json") for t in event.tactics],
            "place": place.model_dump(mode="json") if place else None,
            "unresolved_place": event.unresolved_place.model_dump(mode="json") if event.unresolved_place else None,
            "confidence": event.confidence,
            "status": {"value": event.status, "reason": event.status_reason,
                       "evidence": [s.model_dump(mode="json") for s in event.status_evidence]},
            "killed": {"value": event.killed, "reason": toll.reason, "evidence": toll.evidence},
            "classifier": event.classifier,
            "gazetteer": event.gazetteer,
        }
    return out


def _spans(spans: list[Span]) -> str:
    return ", ".join(f'"{s.text}" ({s.field} {s.start}-{s.end})' for s in spans) or "-"


def explain_event(row_id: str, event: EventMessage) -> str:
    """A per-post account an officer can read: every label, its confidence, its evidence and the reasons."""
    head = (event.title or event.text)[:100].replace("\n", " ")
    lines = [
        f"== {row_id} [{event.lang or '?'}] {head}",
        f"   {'EVENT' if event.is_event else 'not an event'}  confidence {event.confidence:.2f}"
        f"  classifier {event.classifier}  gazetteer {event.gazetteer}",
    ]
    if event.status:
        lines.append(f"   status   {event.status:<15} {event.status_reason or ''}  {_spans(event.status_evidence)}")
    for a in event.actors:
        lines.append(f"   actor    {a.code:<15} {a.role:<11} {a.confidence:.2f}  {_spans(a.evidence)}")
    lines.append(f"   perpetrator {event.perpetrator or '-'}")
    for t in event.tactics:
        lines.append(f"   tactic   {t.code:<15} {t.confidence:.2f}  {_spans(t.evidence)}")
    if event.place:
        pl = event.place
        lines.append(
            f"   place    {pl.name} ({pl.country}, {pl.kind}, admin1 {pl.admin1 or '-'}) {pl.lat:.4f},{pl.lon:.4f}"
            f"  precision {pl.precision}  confidence {pl.confidence:.2f}  {_spans(pl.evidence)}"
        )
        lines.append(f"            why: {pl.reason}")
    elif event.is_event:
        lines.append("   place    none (abstained: no place named, a region only, or no candidate scored enough)")
    if event.unresolved_place:
        u = event.unresolved_place
        where = ", ".join(x for x in (u.admin1, u.country) if x) or "where, unknown"
        lines.append(f"   unresolved {u.name} ({where}): in no gazetteer; `watchfloor place add` puts it on the map")
    toll = death_toll(event.title, classified_part(event.text, MAX_CHARS))  # what classify read
    evidence = (
        f'"{toll.evidence[3]}" ({toll.evidence[0]} {toll.evidence[1]}-{toll.evidence[2]})' if toll.evidence else "-"
    )
    lines.append(f"   killed   {event.killed if event.killed is not None else '-'}  ({toll.reason})  {evidence}")
    return "\n".join(lines)


def _post(row: dict) -> PostMessage:
    row_id = str(row["id"])
    published = row.get("published")
    return PostMessage(
        post_id=hashlib.sha256(f"file:{row_id}".encode()).hexdigest(),
        source_id="file",
        guid=row_id,
        title=row.get("title") or "",
        text=row.get("text") or "",
        lang=row.get("lang") or detect_language(row.get("title") or "", row.get("text") or ""),
        published_at=datetime.fromisoformat(published.replace("Z", "+00:00")) if published else None,
        fetched_at=datetime.now(UTC),
    )


def _lines(input_path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line."""
    with Path(input_path).open(encoding="utf-8") as src:
        for n, line in enumerate(src, 1):
            if line.strip():
                yield n, line


def _row(input_path: str | Path, n: int, line: str) -> dict:
    """One input line as a row; a line that is not a JSON object with an id raises ValueError naming it."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{input_path}:{n}: not JSON: {exc.msg}") from exc
    if not isinstance(row, dict) or "id" not in row:
        raise ValueError(f"{input_path}:{n}: no id")
    return row


def _chunks(lines: Iterator[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_WORKER: dict = {}


def _predict_chunk(lines: list[tuple[int, str]]) -> list[str]:
    """A pool worker's job: prediction lines for a chunk of input lines, parsed here so that the parent only
    reads and writes (the gazetteer came with the fork)."""
    gaz, now, path = _WORKER["gazetteer"], _WORKER["now"], _WORKER["path"]
    return [_predict(_row(path, n, line), gaz, now)[0] for n, line in lines]


def _predict(row: dict, gaz: Gazetteer, now: datetime, explain: bool = False) -> tuple[str, list[EventMessage]]:
    """One input row -> its prediction line and its events (main first)."""
    main, *also = classify_events(_post(row), now=now, gazetteer=gaz)
    return json.dumps(to_prediction(str(row["id"]), main, explain=explain, also=also), ensure_ascii=False), [
        main,
        *also,
    ]


def classify_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    explain: bool = False,
    report: TextIO | None = None,
    workers: int | None = None,
) -> int:
    """Classifies every post of `input_path` into `output_path`, in input order; returns how many lines were
    written. With `explain`, also prints a readable account of each post to `report` (stdout by default).
    Without it, a large file is shared among `workers` forked processes (default: one per core).
    A line that is not JSON raises ValueError naming the file and the line."""
    report = report or sys.stdout
    gaz = classify_gazetteer()
    now = datetime.now(UTC)
    written = 0
    workers = workers if workers is not None else (os.cpu_count() or 1)
    lines = _lines(input_path)
    with Path(output_path).open("w", encoding="utf-8") as dst:
        if explain or workers < 2 or "fork" not in mp.get_all_start_methods():
            for row in (_row(input_path, n, line) for n, line in lines):
                line, events = _predict(row, gaz, now, explain)
                dst.write(line + "\n")
                if explain:
                    for n, event in enumerate(events):
                        print(explain_event(str(row["id"]) + (f" (also #{n})" if n else ""), event), file=report)
                written += 1
            return written
        # Build the matchers before forking, so every worker inherits them instead of building its own.
        warm_up(gaz, now)
        _WORKER.update(gazetteer=gaz, now=now, path=str(input_path))
        with mp.get_context("fork").Pool(workers) as pool:
            for predicted in pool.imap(_predict_chunk, _chunks(lines, 100)):
                dst.write("".join(line + "\n" for line in predicted))
                written += len(predicted)
    return written
