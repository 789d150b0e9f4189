"""The alert lifecycle's transitions as tables (pure): (state or kind, input) → what comes next."""

from datetime import timedelta

import pytest

from services.alert import lifecycle
from services.alert.paging import repage_due
from shared.messages import AlertMessage
from tests.alert.events import T0

WINDOW = timedelta(hours=6)


def _alert(**changes: object) -> AlertMessage:
    values: dict = dict(alert_id="a" * 64, version=3, kind="updated", rule_id="issp-niamey-50km", rule_name="n",
                        severity="high", state="firing", incident_id="i" * 64, fired_at=T0, updated_at=T0,
                        event_ids=["e1"], source_ids=["s1"], title="Car bomb", actors=["ISSP"], tactics=["vbied"],
                        confidence=0.9, incident_severity="III", page_count=1)
    return AlertMessage(**{**values, **changes})


@pytest.mark.parametrize(("state", "after"), [
    ("firing", "acknowledged"),
    ("acknowledged", "acknowledged"),
    ("resolved", "resolved"),
], ids=["ack a firing alert", "ack again keeps it acknowledged", "ack after resolution keeps it resolved"])
def test_acknowledge(state: str, after: str) -> None:
    assert lifecycle.acknowledge(state) == after


@pytest.mark.parametrize(("state", "age", "updates"), [
    ("firing", timedelta(hours=1), True),
    ("acknowledged", timedelta(hours=1), True),
    ("firing", WINDOW, True),
    ("firing", WINDOW + timedelta(seconds=1), False),
    ("resolved", timedelta(hours=1), False),
], ids=["firing, in window", "acknowledged still takes updates", "at the window's end", "past the window",
        "resolved takes none"])
def test_takes_updates(state: str, age: timedelta, updates: bool) -> None:
    assert lifecycle.takes_updates(state, T0, WINDOW, T0 + age) is updates


@pytest.mark.parametrize(("previous", "notified", "report_kind", "unmuted_kind"), [
    (None, False, "fired", "fired"),
    (_alert(), True, "updated", "updated"),
], ids=["new alert, never heard of", "known alert, already notified"])
def test_kinds(previous: AlertMessage | None, notified: bool, report_kind: str, unmuted_kind: str) -> None:
    assert lifecycle.kind_of_report(previous) == report_kind
    assert lifecycle.kind_when_unmuted(notified) == unmuted_kind


@pytest.mark.parametrize(("state", "kind", "want_state", "resolves", "pages"), [
    ("firing", "updated", "firing", False, False),
    ("acknowledged", "updated", "acknowledged", False, False),
    ("firing", "repaged", "firing", False, True),
    ("firing", "resolved", "resolved", True, False),
    ("acknowledged", "resolved", "resolved", True, False),
], ids=["update keeps firing", "update keeps the ack", "re-page counts a page", "resolve a firing alert",
        "resolve an acknowledged alert"])
def test_next_version(state: str, kind: lifecycle.Kind, want_state: str, resolves: bool, pages: bool) -> None:
    now = T0 + timedelta(hours=1)
    message = lifecycle.next_version(_alert(state=state), 3, state, now, kind, change="why")
    assert (message.version, message.kind, message.state, message.updated_at, message.change) == \
        (4, kind, want_state, now, "why")
    assert lifecycle.resolves(message.kind) is resolves
    assert lifecycle.pages_again(message.kind) is pages


@pytest.mark.parametrize(("state", "muted", "severity", "since_page", "due"), [
    ("firing", None, "III", timedelta(minutes=16), True),
    ("acknowledged", None, "III", timedelta(minutes=16), False),
    ("resolved", None, "III", timedelta(minutes=16), False),
    ("firing", "silence 4: exercise (ana)", "III", timedelta(minutes=16), False),
    ("firing", None, "II", timedelta(minutes=16), False),
    ("firing", None, "III", timedelta(minutes=5), False),
], ids=["firing III after the interval", "an ack stops re-pages", "resolved is done", "muted is not re-paged",
        "only severity III", "not before the interval"])
def test_repage_due(state: str, muted: str | None, severity: str, since_page: timedelta, due: bool) -> None:
    assert lifecycle.may_repage(state) is (state == "firing")
    assert repage_due(state=state, muted_by=muted, incident_severity=severity, last_paged_at=None, fired_at=T0,
                      now=T0 + since_page, every=timedelta(minutes=15)) is due
