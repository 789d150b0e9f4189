"""What only email has, as tables (pure): addresses, digest settings, which shift just ended, the subjects."""

from datetime import UTC, datetime, time

import pytest

from services.alert import channels, compose, digest
from services.alert.channels import ChannelError
from services.alert.digest import Entry, Sections, Shift
from shared.messages import AlertMessage


@pytest.mark.parametrize(("url", "stored"), [
    ("mailto:ops@example.org", "mailto:ops@example.org"),
    ("  MAILTO:Ops.Desk+sahel@Example.ORG ", "mailto:Ops.Desk+sahel@example.org"),
    ("mailto:veille@préfecture.ne", "mailto:veille@xn--prfecture-c4a.ne"),
], ids=["plain", "domain lower-cased, local part kept", "IDN domain as IDNA"])
def test_addresses_accepted(url: str, stored: str) -> None:
    assert channels.channel_of(url) == channels.EMAIL
    assert channels.check_mailto(url) == stored


@pytest.mark.parametrize(("url", "why"), [
    ("mailto:", "no address"),
    ("mailto:ops@example.org?subject=hi", "exactly one address"),
    ("mailto:a@example.org,b@example.org", "exactly one address"),
    ("mailto:ops%40example.org", "percent-encoded"),
    ('mailto:"o p"@example.org', "quoted local parts"),
    ("mailto:opé@example.org", "must be ASCII"),
    ("mailto:.ops@example.org", "may hold letters"),
    ("mailto:ops@[10.0.0.1]", "IP address"),
    ("mailto:ops@localhost", "not a mail domain"),
    ("mailto:ops@example.123", "not a mail domain"),
    ("mailto:ops@-example.org", "not a mail domain"),
    ("https://ops@example.org", "not a mailto: URL"),
], ids=["empty", "?subject=", "two recipients", "percent-encoded", "quoted", "non-ASCII local part",
        "leading dot", "IP literal", "single label", "numeric TLD", "label starts with a hyphen", "not mailto"])
def test_addresses_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(ChannelError, match=why):
        channels.check_mailto(url)


def test_digest_settings() -> None:
    assert channels.check_digest(["18:00", " 06:00", "18:00"]) == {"times": ["06:00", "18:00"], "skip_empty": False}
    assert channels.check_digest(None) is None
    for bad in (["6:00"], ["25:00"], [""], ["06:00pm"]):
        with pytest.raises(ChannelError):
            channels.check_digest(bad)
    with pytest.raises(ChannelError, match="unknown time zone"):
        channels.check_tz("Africa/Atlantis")


NIAMEY = "Africa/Niamey"   # UTC+1, no daylight saving


@pytest.mark.parametrize(("times", "tz", "now", "start", "end"), [
    ([time(6), time(18)], NIAMEY, datetime(2026, 12, 5, 5, 0, 7, tzinfo=UTC),
     datetime(2026, 12, 4, 17, tzinfo=UTC), datetime(2026, 12, 5, 5, tzinfo=UTC)),
    ([time(6), time(18)], NIAMEY, datetime(2026, 12, 5, 4, 59, tzinfo=UTC),
     datetime(2026, 12, 4, 5, tzinfo=UTC), datetime(2026, 12, 4, 17, tzinfo=UTC)),
    ([time(6)], None, datetime(2026, 12, 5, 12, tzinfo=UTC),
     datetime(2026, 12, 4, 6, tzinfo=UTC), datetime(2026, 12, 5, 6, tzinfo=UTC)),
    ([time(2)], "Europe/Paris", datetime(2026, 3, 29, 12, tzinfo=UTC),   # 02:00 does not exist that night
     datetime(2026, 3, 28, 1, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC)),
], ids=["just after 06:00 Niamey: the night shift ended", "a minute before: the day shift before it",
        "one time a day, UTC", "daylight saving starts (Paris)"])
def test_last_shift(times: list[time], tz: str | None, now: datetime, start: datetime, end: datetime) -> None:
    shift = digest.last_shift(times, tz, now)
    assert shift is not None and (shift.start, shift.end) == (start, end)


def _entry(**changes: object) -> Entry:
    at = datetime(2026, 12, 4, 20, tzinfo=UTC)
    values: dict = dict(alert_id="a" * 64, rule_id="r", rule_severity="high", alert_state="firing", fired_at=at,
                        page_count=0, title="Car bomb near Niamey", place="Niamey", actors=("ISSP",),
                        tactics=("vbied",), incident_id="i1", incident_state="open", incident_severity="III",
                        corroboration="corroborated", first_seen_at=at, last_seen_at=at, escalated_at=None,
                        disputed_at=None, dispute_reason=None)
    return Entry(**{**values, **changes})


SHIFT = Shift(datetime(2026, 12, 4, 17, tzinfo=UTC), datetime(2026, 12, 5, 5, tzinfo=UTC), NIAMEY)
BEFORE = datetime(2026, 12, 3, 9, tzinfo=UTC)
DURING = datetime(2026, 12, 4, 23, tzinfo=UTC)


@pytest.mark.parametrize(("entry", "counts"), [
    (_entry(), (1, 0, 1, 0)),
    (_entry(alert_state="acknowledged"), (1, 0, 0, 0)),
    (_entry(fired_at=BEFORE, alert_state="acknowledged", escalated_at=DURING), (0, 1, 0, 0)),
    (_entry(fired_at=BEFORE, alert_state="acknowledged", escalated_at=BEFORE), (0, 0, 0, 0)),
    (_entry(escalated_at=DURING), (1, 0, 1, 0)),
    (_entry(fired_at=BEFORE, alert_state="acknowledged", disputed_at=BEFORE), (0, 0, 0, 1)),
    (_entry(fired_at=BEFORE, alert_state="resolved", incident_state="resolved", disputed_at=BEFORE), (0, 0, 0, 0)),
    (_entry(fired_at=BEFORE), (0, 0, 1, 0)),
], ids=["new and unacknowledged", "new, acknowledged", "escalated during the shift", "escalated before it",
        "new and escalated: listed as new", "open and disputed earlier: still listed",
        "resolved, disputed before the shift: not", "fired before, still unacknowledged"])
def test_sections(entry: Entry, counts: tuple[int, int, int, int]) -> None:
    got = digest.sections([entry], SHIFT).counts()
    assert (got["new"], got["escalating"], got["unacknowledged"], got["disputed"]) == counts


def test_recipient_filters_apply_to_the_digest() -> None:
    low, other = _entry(rule_severity="low", incident_severity=None), _entry(rule_id="other")
    kept = digest.for_recipient([low, other, _entry()], subscription_id=3, rule_ids=["r"], min_severity="high",
                                notify={"r": None, "other": None})
    assert kept == [_entry()]
    assert digest.for_recipient([_entry()], subscription_id=3, rule_ids=None, min_severity=None,
                                notify={"r": [1, 2]}) == []


def test_subjects() -> None:
    alert = AlertMessage(
        alert_id="b" * 64, version=1, kind="fired", rule_id="r", rule_name="n", severity="high", incident_id="i",
        fired_at=SHIFT.start, updated_at=SHIFT.start, event_ids=["e"], source_ids=["s"],
        title="Car bomb near Niamey", actors=["ISSP", "NIGER_FDS"], perpetrator="ISSP", tactics=["vbied"],
        confidence=0.9, corroboration="corroborated", incident_severity="III")
    assert compose.alert_subject(alert) == "[III] Car bomb near Niamey — ISSP, vbied (corroborated)"
    repaged = alert.model_copy(update={"kind": "repaged", "page_count": 2, "disputed": "denied by the army"})
    assert compose.alert_subject(repaged) == (
        "[III] Re-page 2, not acknowledged: Car bomb near Niamey — ISSP, vbied (corroborated, disputed)")
    assert compose.digest_subject(SHIFT, Sections()) == "Shift digest 18:00–06:00: nothing new"
    assert compose.digest_subject(SHIFT, Sections(new=[_entry()], unacknowledged=[_entry()])) == (
        "Shift digest 18:00–06:00: 1 new, 0 escalating, 1 unacknowledged, 0 disputed")


def test_a_digest_section_is_bounded() -> None:
    many = [_entry(incident_id=f"i{n}", alert_id=f"{n:064d}") for n in range(25)]
    body = compose.digest_mail(digest.sections(many, SHIFT), SHIFT, message_id="digest_1_x", public_url=None,
                               subscription_id=1, limit=20)
    text = compose.addressed(body, sender="a@example.org", recipient="b@example.org", now=SHIFT.end).get_content()
    assert "New incidents: 25" in text and "… and 5 more" in text and text.count("[III] Car bomb") == 40
