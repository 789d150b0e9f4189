"""The alert lifecycle (pure): its states, the kinds of versions, and the transitions, in one place.

    firing ──ack──▶ acknowledged          an ack stops re-pages, not updates
       │                 │
       └──── resolve ────┴──▶ resolved    the incident went quiet; nothing updates it after this

    versions: fired     the first a subscriber hears of it (v1, or the first unmuted version)
              updated   something material rose, a dispute, a silence that muted it ended
              repaged   a reminder: severity III, firing (not acknowledged), unmuted, every `repage_after`
              resolved  the last one
Every version has a higher `version` than the one before; the shells (pipeline, sweeps, the ack command)
store and publish what these functions return.
"""

from datetime import datetime, timedelta
from typing import Any, Literal

from shared.messages import AlertMessage

State = Literal["firing", "acknowledged", "resolved"]
Kind = Literal["fired", "updated", "repaged", "resolved"]
FIRING: State = "firing"
ACKNOWLEDGED: State = "acknowledged"
RESOLVED: State = "resolved"
LIVE: tuple[State, ...] = (FIRING, ACKNOWLEDGED)
"""States in which an alert still counts (a silence may mute it, a rule alerting may inhibit another)."""


def acknowledge(state: str) -> str:
    """The state after an ack: firing becomes acknowledged; an acknowledged or resolved alert stays as it is
    (its acknowledgement is still recorded)."""
    return ACKNOWLEDGED if state == FIRING else state


def kind_of_report(previous: AlertMessage | None) -> Kind:
    """A report makes a new alert `fired`, and a new version of an existing one `updated`."""
    return "updated" if previous is not None else "fired"


def takes_updates(state: str, fired_at: datetime, window: timedelta, now: datetime) -> bool:
    """Does a report still update the alert? Not once resolved, nor after its rule's window."""
    return state != RESOLVED and now - fired_at <= window


def kind_when_unmuted(notified: bool) -> Kind:
    """The kind of the version sent when what muted an alert ended: `fired` if no subscriber ever heard of it,
    else `updated`."""
    return "updated" if notified else "fired"


def may_repage(state: str) -> bool:
    """Only a firing alert is re-paged: an ack stops the re-pages, and a resolved alert is done."""
    return state == FIRING


def next_version(current: AlertMessage, version: int, state: str, now: datetime, kind: Kind,
                 **changes: Any) -> AlertMessage:
    """The version after `version` (the stored one), of `kind`, with `changes` applied. A `resolved` version
    is in state resolved; any other keeps the stored `state`."""
    return current.model_copy(update={
        "version": version + 1, "updated_at": now, "kind": kind,
        "state": RESOLVED if kind == "resolved" else state, **changes,
    })


def resolves(kind: str) -> bool:
    """Does storing a version of this kind resolve the alert?"""
    return kind == "resolved"


def pages_again(kind: str) -> bool:
    """Does storing a version of this kind count a page (`page_count`, `last_paged_at`)?"""
    return kind == "repaged"
