"""When a subscriber may be notified (pure): minimum severity and quiet hours per subscription, and re-pages.

    min_severity   low | medium | high | critical: compared with the rule's severity;
                   I | II | III: compared with the incident's severity (which may rise: the alert then
                   reaches the subscriber with the update that raised it)
    quiet_hours    {"start": "22:00", "end": "06:00", "tz": "Africa/Niamey"}: notifications of severity I and
                   II are held until the window ends (then sent, oldest first); severity III always goes
                   through at once: a car bomb in a capital does not wait for the morning
    re-page        an unacknowledged, unmuted severity III alert of an open incident is sent again every
                   `repage_after`; acknowledging it stops the re-pages, not the updates
    events         ["alert.*", "source.silent"]: the webhook types a subscription takes (None: all); rule filter
                   and minimum severity apply to alert.* only, so they never hold back source.* events
"""

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.alert.lifecycle import may_repage
from shared.errors import ReasonError

ALERT_EVENTS = ("alert.fired", "alert.updated", "alert.repaged", "alert.resolved")
SOURCE_EVENTS = ("source.silent", "source.failing", "source.silent.resolved", "source.failing.resolved")
EVENT_TYPES = (*ALERT_EVENTS, *SOURCE_EVENTS)
"""Every Standard Webhooks `type` watchfloor sends; a subscription's `events` patterns choose among them."""
RULE_SEVERITIES = ("low", "medium", "high", "critical")
INCIDENT_SEVERITIES = ("I", "II", "III")
MIN_SEVERITIES = (*RULE_SEVERITIES, *INCIDENT_SEVERITIES)


class Routable(Protocol):
    """What routing reads of a subscription."""

    @property
    def id(self) -> int: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def rule_ids(self) -> list[str] | None: ...
    @property
    def min_severity(self) -> str | None: ...
    @property
    def events(self) -> list[str] | None: ...


S = TypeVar("S", bound=Routable)


class QuietHoursError(ReasonError, ValueError):
    """See `reason`."""


def _clock(value: object, key: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise QuietHoursError(f"quiet_hours.{key}: {value!r} is not a time like 22:00") from exc


def check_quiet_hours(value: dict | None) -> dict | None:
    """Validates `{"start", "end", "tz"}` (tz optional, default UTC); raises QuietHoursError."""
    if value is None:
        return None
    if not isinstance(value, dict) or not {"start", "end"} <= set(value) or set(value) - {"start", "end", "tz"}:
        raise QuietHoursError('quiet_hours: give {"start": "22:00", "end": "06:00", "tz": "Africa/Niamey"}')
    _clock(value["start"], "start")
    _clock(value["end"], "end")
    try:
        ZoneInfo(value.get("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise QuietHoursError(f"quiet_hours.tz: unknown time zone {value.get('tz')!r}") from exc
    return dict(value)


def check_min_severity(min_severity: str | None) -> str | None:
    """A subscription's minimum severity: None, low…critical (the rule's) or I…III (the incident's)."""
    if min_severity is not None and min_severity not in MIN_SEVERITIES:
        raise ValueError(f"min_severity must be one of {', '.join(MIN_SEVERITIES)}")
    return min_severity


def check_events(patterns: Iterable[str] | None) -> list[str] | None:
    """A subscription's event types: patterns such as `alert.*`, `source.*`, `source.silent` (None: every type).
    Each must name at least one type watchfloor sends, so a typo (`alerts.*`) is refused, not silently deaf."""
    if patterns is None:
        return None
    cleaned = [p.strip() for p in patterns if p.strip()]
    if not cleaned:
        raise ValueError(f"events: give at least one pattern, e.g. alert.* or source.*; types: "
                         f"{', '.join(EVENT_TYPES)}")
    for pattern in cleaned:
        if not any(fnmatchcase(t, pattern) for t in EVENT_TYPES):
            raise ValueError(f"events: {pattern!r} matches no event type; types: {', '.join(EVENT_TYPES)}")
    return cleaned


def wants_event(events: list[str] | None, event_type: str) -> bool:
    """Does a subscription with these `events` patterns want `event_type`? None wants every type."""
    return events is None or any(fnmatchcase(event_type, p) for p in events)


def quiet_until(quiet_hours: dict | None, now: datetime) -> datetime | None:
    """The end of the quiet window `now` is in (UTC), or None when not in one. A window may cross midnight."""
    if not quiet_hours:
        return None
    zone = ZoneInfo(quiet_hours.get("tz") or "UTC")
    local = now.astimezone(zone)
    start, end = _clock(quiet_hours["start"], "start"), _clock(quiet_hours["end"], "end")
    if start == end:
        return None
    today = local.date()
    for day in (today - timedelta(days=1), today):
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day if end > start else day + timedelta(days=1), end, zone)
        if opens <= local < closes:
            return closes.astimezone(UTC)
    return None


def hold_until(quiet_hours: dict | None, incident_severity: str | None, now: datetime) -> datetime | None:
    """When a notification may be sent if not now: the end of the quiet window, except for severity III."""
    if incident_severity == "III":
        return None
    return quiet_until(quiet_hours, now)


def wants(min_severity: str | None, rule_severity: str, incident_severity: str | None) -> bool:
    """Does a subscription with `min_severity` want an alert of these severities?"""
    if not min_severity:
        return True
    if min_severity in INCIDENT_SEVERITIES:
        have = INCIDENT_SEVERITIES.index(incident_severity) if incident_severity in INCIDENT_SEVERITIES else 0
        return have >= INCIDENT_SEVERITIES.index(min_severity)
    rank = RULE_SEVERITIES.index(rule_severity) if rule_severity in RULE_SEVERITIES else 1
    return rank >= RULE_SEVERITIES.index(min_severity) if min_severity in RULE_SEVERITIES else True


def routes(subscriptions: Iterable[S], notify: list[int] | None, rule_id: str, severity: str,
           incident_severity: str | None, *, include_disabled: bool = False, event_type: str = "alert.fired"
           ) -> list[S]:
    """The subscriptions an alert of `rule_id` goes to: the rule's `notify` list (if any), each subscription's
    own rule filter, minimum severity and event types; disabled ones only with `include_disabled`."""
    out = []
    for sub in subscriptions:
        if (not sub.enabled and not include_disabled) or (notify is not None and sub.id not in notify):
            continue
        if sub.rule_ids is not None and rule_id not in sub.rule_ids:
            continue
        if not wants(sub.min_severity, severity, incident_severity) or not wants_event(sub.events, event_type):
            continue
        out.append(sub)
    return out


def source_routes(subscriptions: Iterable[S], event_type: str, *, include_disabled: bool = False) -> list[S]:
    """The subscriptions an operator alert on a source goes to: every one whose event types take it. A rule
    filter or a minimum severity is about alert rules and does not hold these back."""
    return [sub for sub in subscriptions
            if (sub.enabled or include_disabled) and wants_event(sub.events, event_type)]


def repage_due(*, state: str, muted_by: str | None, incident_severity: str | None, last_paged_at: datetime | None,
               fired_at: datetime, now: datetime, every: timedelta) -> bool:
    """Is it time to page this alert again?"""
    if not may_repage(state) or muted_by or incident_severity != "III":
        return False
    return now - (last_paged_at or fired_at) >= every
