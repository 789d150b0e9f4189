"""Classify a JSONL file of posts offline (`watchfloor classify --input F --output F [--explain]`).

Input lines: `{"id", "lang", "title", "text", "published"}` (the dev-set shape); output lines: the
prediction format of shared/eval/score.py, plus, with `explain`, the evidence and reasons.
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from services.classify.classify import classify_post
from shared.gazetteer import load_gazetteer
from shared.messages import EventMessage, PostMessage


def to_prediction(row_id: str, event: EventMessage, *, explain: bool = False) -> dict:
    place = event.place
    out: dict = {
        "id": row_id,
        "event": event.is_event,
        "actors": event.actor_codes,
        "perpetrator": event.perpetrator,
        "tactics": event.tactic_codes,
        "place": {"lat": place.lat, "lon": place.lon, "country": place.country, "name": place.name} if place else None,
        "killed": event.killed,
    }
    if explain:
        out["explain"] = {
            "actors": [a.model_dump(mode="json") for a in event.actors],
            "tactics": [t.model_dump(mode="json") for t in event.tactics],
            "place": place.model_dump(mode="json") if place else None,
            "confidence": event.confidence,
            "classifier": event.classifier,
            "gazetteer": event.gazetteer,
        }
    return out


def _post(row: dict) -> PostMessage:
    row_id = str(row["id"])
    published = row.get("published")
    return PostMessage(
        post_id=hashlib.sha256(f"file:{row_id}".encode()).hexdigest(),
        source_id="file",
        guid=row_id,
        title=row.get("title") or "",
        text=row.get("text") or "",
        lang=row.get("lang"),
        published_at=datetime.fromisoformat(published.replace("Z", "+00:00")) if published else None,
        fetched_at=datetime.now(UTC),
    )


def classify_file(input_path: str | Path, output_path: str | Path, *, explain: bool = False) -> int:
    """Classifies every post of `input_path` into `output_path`; returns how many lines were written.
    A line that is not JSON raises ValueError naming the file and the line."""
    gaz = load_gazetteer()
    now = datetime.now(UTC)
    written = 0
    with Path(input_path).open(encoding="utf-8") as src, Path(output_path).open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{input_path}:{n}: not JSON: {exc.msg}") from exc
            if "id" not in row:
                raise ValueError(f"{input_path}:{n}: no id")
            event = classify_post(_post(row), now=now, gazetteer=gaz)
            dst.write(json.dumps(to_prediction(str(row["id"]), event, explain=explain), ensure_ascii=False) + "\n")
            written += 1
    return written
