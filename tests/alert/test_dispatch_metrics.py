"""Which delivered webhooks the post-to-webhook latency counts: the first delivery of a version a report made."""

import json
from datetime import UTC, datetime

import pytest

from services.alert.dispatch import envelope, reporting_event_id
from shared.models import Notification


def _note(event_type: str, event_ids: list[str], replay_base: int = 0) -> Notification:
    body = envelope(event_type, datetime(2026, 1, 1, tzinfo=UTC), {"event_ids": event_ids})
    return Notification(body=body, replay_base=replay_base)


@pytest.mark.parametrize(("event_type", "replay_base", "expected"), [
    ("alert.fired", 0, "e3"), ("alert.updated", 0, "e3"), ("alert.repaged", 0, None), ("alert.resolved", 0, None),
    ("alert.updated", 2, None),
], ids=["fired: the newest report", "updated: the newest report", "a re-page comes from the clock",
        "a resolution too", "a replay's latency is the operator's"])
def test_the_latency_counts_from_the_report_that_made_the_version(event_type: str, replay_base: int,
                                                                   expected: str | None) -> None:
    assert reporting_event_id(_note(event_type, ["e1", "e2", "e3"], replay_base)) == expected


def test_a_source_alert_is_not_a_report() -> None:
    note = Notification(body=json.dumps({"type": "source.failing", "data": {"source_id": "x"}}), replay_base=0)
    assert reporting_event_id(note) is None
