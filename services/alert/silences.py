"""Which silence mutes an alert (pure), in the manner of Alertmanager's matchers, without regexes.

A silence's matchers are a dict of lists, all optional and ANDed; a list matches when the alert has one of
its values:
    rule_ids      the alert's rule                      actors       an incident actor (sub-units included)
    tactics       an incident tactic                    countries    the incident's country (ISO alpha-2)
    severities    the rule's severity (low…critical) or the incident's (I, II, III)
    incident_ids  the incident
A silence with no matcher would mute everything: refused, say what to silence.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.alert.rules import with_subunits
from shared.errors import ReasonError
from shared.messages import AlertMessage
from shared.taxonomy import ACTOR_PARENTS, TACTICS

MATCHER_KEYS = ("rule_ids", "actors", "tactics", "countries", "severities", "incident_ids")
SEVERITY_VALUES = ("low", "medium", "high", "critical", "I", "II", "III")


class SilenceError(ReasonError, ValueError):
    """A silence that cannot be created or changed; `reason` says what to fix."""


@dataclass(frozen=True)
class SilenceView:
    id: int
    matchers: dict[str, list[str]]
    reason: str
    created_by: str
    starts_at: datetime
    ends_at: datetime
    expired_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> "SilenceView":
        """From a `silences` row."""
        return cls(id=row.id, matchers=dict(row.matchers), reason=row.reason, created_by=row.created_by,
                   starts_at=row.starts_at, ends_at=row.ends_at, expired_at=row.expired_at)

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and (self.expired_at is None or self.expired_at > now)

    def label(self) -> str:
        """What `alerts.muted_by` says: "silence 4: road convoy exercise (ana)"."""
        return f"silence {self.id}: {self.reason} ({self.created_by})"


def check_matchers(matchers: Any) -> dict[str, list[str]]:
    """The matchers, normalised (countries upper-case); raises SilenceError naming the bad key or value."""
    if not isinstance(matchers, dict):
        raise SilenceError("matchers must be a mapping like {\"rule_ids\": [\"issp-niamey-50km\"]}")
    unknown = sorted(set(matchers) - set(MATCHER_KEYS))
    if unknown:
        raise SilenceError(f"unknown matcher {unknown[0]!r} (known: {', '.join(MATCHER_KEYS)})")
    out: dict[str, list[str]] = {}
    for key, values in matchers.items():
        if values is None:
            continue
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise SilenceError(f"{key}: give a non-empty list of strings")
        if key == "actors" and (bad := [v for v in values if v not in ACTOR_PARENTS]):
            raise SilenceError(f"actors: unknown actor code {bad[0]!r}")
        if key == "tactics" and (bad := [v for v in values if v not in TACTICS]):
            raise SilenceError(f"tactics: unknown tactic code {bad[0]!r}")
        if key == "severities" and (bad := [v for v in values if v not in SEVERITY_VALUES]):
            raise SilenceError(f"severities: {bad[0]!r} is not one of {', '.join(SEVERITY_VALUES)}")
        if key == "countries":
            values = [v.upper() for v in values]
            if bad := [v for v in values if len(v) != 2 or not v.isalpha()]:
                raise SilenceError(f"countries: {bad[0]!r} is not an ISO 3166-1 alpha-2 code")
        out[key] = list(values)
    if not out:
        raise SilenceError("a silence needs at least one matcher (rule_ids, actors, tactics, countries, "
                           "severities or incident_ids): an empty one would mute everything")
    return out


@dataclass(frozen=True)
class NewSilence:
    matchers: dict[str, list[str]]
    reason: str
    created_by: str
    starts_at: datetime
    ends_at: datetime


def check_silence(matchers: Any, reason: str, created_by: str, starts_at: datetime, ends_at: datetime,
                  now: datetime) -> NewSilence:
    """A silence as it may be created; raises SilenceError: no reason, no matcher, an unknown code, an end not
    after the start, or an end already past."""
    checked = check_matchers(matchers)
    if not (reason or "").strip():
        raise SilenceError("a silence needs a reason: the next shift must know why alerts are muted")
    if not (created_by or "").strip():
        raise SilenceError("a silence needs its creator")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise SilenceError("give starts_at and ends_at with a time zone, e.g. 2026-11-24T18:00:00Z")
    if ends_at <= starts_at:
        raise SilenceError(f"ends_at ({ends_at.isoformat()}) must be after starts_at ({starts_at.isoformat()})")
    if ends_at <= now:
        raise SilenceError(f"ends_at ({ends_at.isoformat()}) is already past")
    return NewSilence(checked, reason.strip(), created_by, starts_at, ends_at)


def check_expirable(silence: SilenceView, now: datetime) -> None:
    """Raises SilenceError if the silence already ended (expired, or past its end)."""
    if silence.expired_at is not None or silence.ends_at <= now:
        ended = silence.expired_at or silence.ends_at
        raise SilenceError(f"silence {silence.id} already ended at {ended.isoformat()}")


def silences_alert(matchers: dict[str, list[str]], alert: AlertMessage) -> bool:
    """True when every matcher of the silence matches the alert."""
    for key, values in matchers.items():
        if key == "rule_ids" and alert.rule_id not in values:
            return False
        if key == "incident_ids" and alert.incident_id not in values:
            return False
        if key == "actors" and not (with_subunits(values) & set(alert.actors)):
            return False
        if key == "tactics" and not (set(values) & set(alert.tactics)):
            return False
        if key == "countries" and (alert.place is None or (alert.place.country or "").upper() not in values):
            return False
        if key == "severities" and alert.severity not in values and alert.incident_severity not in values:
            return False
    return True


def muted_by(silences: list[SilenceView], alert: AlertMessage, now: datetime) -> str | None:
    """The label of the first active silence that matches the alert, else None."""
    for silence in silences:
        if silence.active(now) and silences_alert(silence.matchers, alert):
            return silence.label()
    return None


def silence_id(muted: str | None) -> int | None:
    """The silence id in a `muted_by` label, None for an inhibition or nothing."""
    if not muted or not muted.startswith("silence "):
        return None
    head = muted.removeprefix("silence ").split(":", 1)[0]
    return int(head) if head.isdigit() else None
