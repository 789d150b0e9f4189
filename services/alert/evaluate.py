"""Does one classified event match one rule, and why (pure: no I/O, `now` passed in).

The reasons are shown to the analyst as-is ("actor ISSP (perpetrator)", "12.3 km from Niamey ≤ 50 km"),
so an alert always says why it fired. `explain` lists every check, passed or not ("why did this not fire?");
`evaluate` is the fast path the pipeline runs on every event and candidate rule: it builds reasons only for
a match. A rule's condition over time needs the event log and is checked by the pipeline (see `conditions`).
"""

from dataclasses import dataclass
from datetime import datetime

from services.alert.geofence import distance_km, inside
from services.alert.rules import Filter, RuleSpec, with_subunits
from shared.messages import EventMessage

__all__ = ["MATCHING_ROLES", "Check", "Facts", "Match", "distance_km", "evaluate", "explain", "facts", "matches"]

MATCHING_ROLES = frozenset({"perpetrator", "suspected", "involved", "target"})
"""An actor "mentioned" in passing or one that "denied" involvement does not make the event theirs."""

PRECISION_WORDS = {1: "exact", 2: "near or offset", 3: "region only"}


@dataclass(frozen=True)
class Match:
    rule_id: str
    reasons: list[str]
    distance_km: float | None = None


@dataclass(frozen=True)
class Check:
    """One condition of a rule against one event: "actors", "area", "min_confidence", "silence", …"""

    condition: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the filters look at in an event, computed once per event (not once per rule)."""

    actors: frozenset[str]
    tactics: frozenset[str]
    codes: frozenset[str]


def facts(event: EventMessage) -> Facts:
    actors = {a.code for a in event.actors if a.role in MATCHING_ROLES}
    if event.perpetrator:
        actors.add(event.perpetrator)
    tactics = frozenset(event.tactic_codes)
    return Facts(frozenset(actors), tactics, frozenset(actors) | tactics)


_Sets = tuple[frozenset[str] | None, frozenset[str] | None]


@dataclass(frozen=True)
class Compiled:
    any_: tuple[_Sets, ...]
    all_: tuple[_Sets, ...]
    needs: frozenset[str] | None
    """The event must carry one of these actor or tactic codes to have a chance (None: no such shortcut)."""


def _sets(flt: Filter) -> _Sets:
    return (with_subunits(flt.actors) if flt.actors else None, frozenset(flt.tactics) if flt.tactics else None)


def compiled(rule: RuleSpec) -> Compiled:
    """The rule's filters as sets (sub-units included), built once per rule."""
    private = rule.__pydantic_private__  # a plain dict: pydantic's attribute access is slow on the hot path
    done: Compiled | None = private["_compiled"]  # type: ignore[index]
    if done is None:
        any_ = tuple(_sets(f) for f in rule.match.any_)
        all_ = tuple(_sets(f) for f in rule.match.all_)
        # A necessary condition, checked first: a code the first `all` filter needs, or any `any` filter's.
        first = all_[:1] or any_
        needs = frozenset(code for actors, tactics in first for code in (actors if actors is not None
                                                                          else tactics or ()))
        done = Compiled(any_, all_, needs or None)
        private["_compiled"] = done  # type: ignore[index]
    return done


def _hits(sets: _Sets, f: Facts) -> bool:
    actors, tactics = sets
    if actors is not None and actors.isdisjoint(f.actors):
        return False
    return tactics is None or not tactics.isdisjoint(f.tactics)


def _filter_reasons(flt: Filter, event: EventMessage) -> list[str] | None:
    """The reasons this filter matches the event, or None. Actors and tactics are ANDed."""
    reasons: list[str] = []
    if flt.actors:
        wanted = with_subunits(flt.actors)
        hits = [a for a in event.actors if a.code in wanted and a.role in MATCHING_ROLES]
        if not hits and event.perpetrator in wanted:
            reasons.append(f"actor {event.perpetrator} (perpetrator)")
        elif not hits:
            return None
        for label in hits:
            via = "" if label.code in flt.actors else f", a unit of {', '.join(sorted(set(flt.actors)))}"
            reasons.append(f"actor {label.code} ({label.role}{via})")
    if flt.tactics:
        tactics = [t.code for t in event.tactics if t.code in flt.tactics]
        if not tactics:
            return None
        reasons.extend(f"tactic {code}" for code in tactics)
    return reasons


def _describe(flt: Filter) -> str:
    parts = []
    if flt.actors:
        parts.append(f"actors {', '.join(flt.actors)}")
    if flt.tactics:
        parts.append(f"tactics {', '.join(flt.tactics)}")
    return " and ".join(parts)


def matches(rule: RuleSpec, event: EventMessage, event_facts: Facts | None = None) -> bool:
    """True when every check of `explain` passes (the condition over time aside), without building reasons."""
    if not rule.enabled or not event.is_event:
        return False
    c = compiled(rule)
    f = event_facts or facts(event)
    if c.needs is not None and c.needs.isdisjoint(f.codes):
        return False
    if c.any_ and not any(_hits(s, f) for s in c.any_):
        return False
    if not all(_hits(s, f) for s in c.all_):
        return False
    m = rule.match
    if event.confidence < m.min_confidence:
        return False
    if m.sources is not None and event.source_id not in m.sources:
        return False
    if m.languages is not None and (event.lang or "").lower() not in m.languages:
        return False
    place = event.place
    if m.min_place_precision is not None and (place is None or place.precision > m.min_place_precision):
        return False
    if rule.area is not None:
        return inside(rule.area, place, event.tactic_codes)[0]
    return True


def explain(rule: RuleSpec, event: EventMessage, now: datetime) -> list[Check]:
    """Every check of `rule` against `event`, in order, each with its reason, whether it passed or not.
    The rule matches when all pass (and its condition over time holds, which needs the event log)."""
    del now  # the checks here are timeless; conditions over time are counted by the pipeline
    m = rule.match
    checks = [
        Check("enabled", rule.enabled, "the rule is enabled" if rule.enabled else "the rule is disabled"),
        Check("is_event", event.is_event, "the post reports an event" if event.is_event
              else "the post is commentary or analysis, not an event"),
    ]
    if m.sources is not None:
        ok = event.source_id in m.sources
        checks.append(Check("sources", ok, f"source {event.source_id} {'is' if ok else 'is not'} one of "
                                           f"{', '.join(m.sources)}"))
    if m.languages is not None:
        lang = (event.lang or "").lower()
        ok = lang in m.languages
        checks.append(Check("languages", ok, f"language {lang or 'unknown'} {'is' if ok else 'is not'} one of "
                                             f"{', '.join(m.languages)}"))
    if m.min_confidence:
        ok = event.confidence >= m.min_confidence
        checks.append(Check("min_confidence", ok,
                            f"confidence {event.confidence:.2f} {'≥' if ok else '<'} {m.min_confidence:.2f}"))
    if m.any_:
        found = [r for r in (_filter_reasons(f, event) for f in m.any_) if r is not None]
        reasons = list(dict.fromkeys(r for rs in found for r in rs))
        checks.append(Check("actors", bool(found), "; ".join(reasons) if found else
                            "none of: " + "; ".join(_describe(f) for f in m.any_)))
    for i, flt in enumerate(m.all_):
        got = _filter_reasons(flt, event)
        checks.append(Check(f"all[{i}]", got is not None, "; ".join(got) if got is not None
                            else f"not {_describe(flt)}"))
    place = event.place
    if m.min_place_precision is not None:
        ok = place is not None and place.precision <= m.min_place_precision
        have = "no place" if place is None else \
            f"place precision {place.precision} ({PRECISION_WORDS[place.precision]})"
        want = f"{m.min_place_precision} ({PRECISION_WORDS[m.min_place_precision]})"
        checks.append(Check("min_place_precision", ok, f"{have}, {'at least' if ok else 'less precise than'} {want}"))
    if rule.area is not None:
        ok, reason, _ = inside(rule.area, place, event.tactic_codes)
        checks.append(Check("area", ok, reason))
    if rule.condition is not None:
        checks.append(Check("condition", True, f"{rule.condition.describe()}: counted over the event log by the "
                                               f"alert service when the rest matches"))
    return checks


def evaluate(rule: RuleSpec, event: EventMessage, now: datetime, event_facts: Facts | None = None) -> Match | None:
    """A Match with the human reasons when `event` satisfies `rule`, else None.

    Posts that are not events never match; an event without a place never matches a rule with an area.
    The rule's condition over time, if any, is not checked here (the pipeline counts it in the event log).
    """
    if not matches(rule, event, event_facts):
        return None
    m = rule.match
    reasons: list[str] = []
    for flt in m.any_:
        reasons.extend(r for r in _filter_reasons(flt, event) or () if r not in reasons)
    for flt in m.all_:
        reasons.extend(r for r in _filter_reasons(flt, event) or () if r not in reasons)
    if m.min_confidence:
        reasons.append(f"confidence {event.confidence:.2f} ≥ {m.min_confidence:.2f}")
    place = event.place
    if m.min_place_precision is not None and place is not None:
        reasons.append(f"place precision {place.precision} ({PRECISION_WORDS[place.precision]})")
    distance = None
    if rule.area is not None:
        _ok, reason, distance = inside(rule.area, place, event.tactic_codes)
        reasons.append(reason)
    return Match(rule_id=rule.id, reasons=reasons, distance_km=distance)
