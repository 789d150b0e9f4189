"""The shift digest (pure): which shift just ended for a recipient, and what goes in its four sections.

    digest times 06:00,18:00 @ Africa/Niamey, now 06:00:07 local  ─▶ shift 18:00 (yesterday) – 06:00 (today)
    sections     new            incidents first alerted during the shift
                 escalating     incidents whose severity or corroboration rose during it (not new ones)
                 unacknowledged alerts still firing, not acknowledged, at the shift's end (whenever they fired)
                 disputed       incidents a later report denies: disputed during the shift, or open and disputed
Only alerts the recipient would be sent count (its rule filter and minimum severity, the rules' notify lists;
never a muted alert); an incident is listed once per section, with its highest-severity alert.
The digest of a shift is owed once, keyed `digest:<subscription>:<shift end>` (see `digest_key`).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.alert.paging import INCIDENT_SEVERITIES, RULE_SEVERITIES, wants


@dataclass(frozen=True)
class Shift:
    """[start, end) in UTC; `zone` is the recipient's, for display."""

    start: datetime
    end: datetime
    zone: str

    def label(self) -> str:
        """"18:00–06:00", in the recipient's time zone."""
        tz = ZoneInfo(self.zone)
        return f"{self.start.astimezone(tz):%H:%M}–{self.end.astimezone(tz):%H:%M}"


def last_shift(times: list[time], tz: str | None, now: datetime) -> Shift | None:
    """The shift that ended most recently at or before `now`: from the start time before the last one passed to
    the last one passed (times read in `tz`, default UTC). None without times."""
    if not times:
        return None
    zone = ZoneInfo(tz or "UTC")
    local = now.astimezone(zone)
    starts = sorted(datetime.combine(local.date() + timedelta(days=d), t, zone)
                    for d in (-2, -1, 0) for t in set(times))
    passed = [s for s in starts if s <= local]
    return Shift(passed[-2].astimezone(UTC), passed[-1].astimezone(UTC), tz or "UTC")


def digest_key(subscription_id: int, shift: Shift) -> str:
    """The notification's alert id for one recipient's digest of one shift: a second sweeper inserting it
    again is ignored (unique per subscription, alert id, version)."""
    return f"digest:{subscription_id}:{shift.end:%Y%m%dT%H%MZ}"


def digest_message_id(subscription_id: int, shift: Shift) -> str:
    return f"digest_{subscription_id}_{shift.end:%Y%m%dT%H%MZ}"


@dataclass(frozen=True)
class Entry:
    """One alert and its incident as the digest reads them (store_digest loads them)."""

    alert_id: str
    rule_id: str
    rule_severity: str
    alert_state: str
    fired_at: datetime
    page_count: int
    title: str
    place: str | None
    actors: tuple[str, ...]
    tactics: tuple[str, ...]
    incident_id: str
    incident_state: str
    incident_severity: str | None
    corroboration: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    escalated_at: datetime | None
    disputed_at: datetime | None
    dispute_reason: str | None


@dataclass(frozen=True)
class Sections:
    new: list[Entry] = field(default_factory=list)
    escalating: list[Entry] = field(default_factory=list)
    unacknowledged: list[Entry] = field(default_factory=list)
    disputed: list[Entry] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "escalating": len(self.escalating),
                "unacknowledged": len(self.unacknowledged), "disputed": len(self.disputed)}

    @property
    def empty(self) -> bool:
        return not any(self.counts().values())


def _rank(entry: Entry) -> tuple[int, int, datetime]:
    incident = INCIDENT_SEVERITIES.index(entry.incident_severity) if entry.incident_severity in \
        INCIDENT_SEVERITIES else -1
    rule = RULE_SEVERITIES.index(entry.rule_severity) if entry.rule_severity in RULE_SEVERITIES else -1
    return incident, rule, entry.last_seen_at


def _one_per_incident(entries: Iterable[Entry]) -> list[Entry]:
    best: dict[str, Entry] = {}
    for entry in entries:
        if entry.incident_id not in best or _rank(entry) > _rank(best[entry.incident_id]):
            best[entry.incident_id] = entry
    return sorted(best.values(), key=_rank, reverse=True)


def for_recipient(entries: Iterable[Entry], *, subscription_id: int, rule_ids: list[str] | None,
                  min_severity: str | None, notify: dict[str, list[int] | None]) -> list[Entry]:
    """The entries whose alert the recipient would be sent: its rule's `notify` list (if any), the recipient's
    rule filter and minimum severity (paging.wants). Event-type patterns are about immediate messages and do
    not thin a digest the recipient asked for."""
    out = []
    for e in entries:
        listed = notify.get(e.rule_id)
        if listed is not None and subscription_id not in listed:
            continue
        if rule_ids is not None and e.rule_id not in rule_ids:
            continue
        if wants(min_severity, e.rule_severity, e.incident_severity):
            out.append(e)
    return out


def sections(entries: list[Entry], shift: Shift) -> Sections:
    """The digest's sections from the alerts the recipient would be sent (already filtered), most severe
    first. A section may be empty; the caller decides whether an empty digest is sent."""
    start, end = shift.start, shift.end
    first_alerted: dict[str, datetime] = {}
    for e in entries:
        first_alerted[e.incident_id] = min(e.fired_at, first_alerted.get(e.incident_id, e.fired_at))
    new_ids = {i for i, at in first_alerted.items() if start <= at < end}
    return Sections(
        new=_one_per_incident(e for e in entries if e.incident_id in new_ids),
        escalating=_one_per_incident(
            e for e in entries if e.incident_id not in new_ids and e.escalated_at is not None
            and start <= e.escalated_at < end),
        unacknowledged=sorted((e for e in entries if e.alert_state == "firing" and e.fired_at < end),
                              key=_rank, reverse=True),
        disputed=_one_per_incident(
            e for e in entries if e.disputed_at is not None and e.disputed_at < end
            and (e.incident_state == "open" or e.disputed_at >= start)),
    )
