"""A rule's condition over time (pure): is it met, and why, given the event log around the event.

    at_least: N, within: W      at least N incidents matching the rule in the W before the event (its own
                                incident included). Reports of one attack are one incident, so five reports
                                of one car bomb never make "3 attacks in 24 h". After the rule fires, the
                                count starts again: incidents already alerted, or older than the last one
                                alerted, do not count twice.
    first_activity, lookback: L no report in the L before the event attributes activity in the rule's area to
                                one of the event's actors (sub-units count as their parent), other reports of
                                the same incident aside.
`history` is what the event log holds around the event: (event, its incident id or None).
"""

from datetime import datetime

from services.alert.evaluate import matches
from services.alert.geofence import inside
from services.alert.incidents import event_time, perpetrators
from services.alert.rules import RuleSpec
from shared.messages import EventMessage

History = list[tuple[EventMessage, str | None]]


def condition_met(rule: RuleSpec, event: EventMessage, incident_id: str, history: History, *,
                  alerted: set[str], last_alerted_at: datetime | None) -> tuple[bool, str]:
    """(met?, reason) for the rule's condition; a rule without one is met."""
    condition = rule.condition
    if condition is None:
        return True, "no condition over time"
    at = event_time(event)
    start = at - condition.span
    if condition.at_least is not None:
        if last_alerted_at is not None and last_alerted_at > start:
            start = last_alerted_at
        incidents = {incident_id}
        for past, past_incident in history:
            key = past_incident or past.event_id
            if key in alerted or key in incidents:
                continue
            if start < event_time(past) <= at and matches(rule, past):
                incidents.add(key)
        ok = len(incidents) >= condition.at_least
        return ok, (f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''} matching within "
                    f"{condition.within} {'≥' if ok else '<'} {condition.at_least}")
    actors = perpetrators(event)
    if not actors:
        return False, "first activity: the report attributes the activity to no actor"
    assert rule.area is not None  # validated: first_activity needs an area
    for past, past_incident in history:
        if past.event_id == event.event_id or (past_incident is not None and past_incident == incident_id):
            continue
        if not (start <= event_time(past) < at) or not past.is_event:
            continue
        shared = perpetrators(past) & actors
        if shared and inside(rule.area, past.place, past.tactic_codes)[0]:
            when = event_time(past).strftime("%Y-%m-%d")
            where = past.place.name if past.place else "?"
            return False, (f"not a first activity: {', '.join(sorted(shared))} already active in the area "
                           f"({where}, {when}) within {condition.lookback}")
    return True, f"first activity of {', '.join(sorted(actors))} in the area within {condition.lookback}"
