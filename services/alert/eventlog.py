"""The event log as ops query and export it (pure: records in, text out; no I/O).

    LogQuery ─▶ store_eventlog (SQL: time, country, rule, state) ─▶ keep() (actor with sub-units, tactic, near)
             ─▶ records (one dict per event or alert) ─▶ Exporter: csv | geojson | jsonl

CSV follows RFC 4180 (header row, CRLF, fields quoted when they hold a comma, quote or line break; lists joined
with "; "). GeoJSON (RFC 7946) is a FeatureCollection of Points whose coordinates are [longitude, latitude], in
that order; a record without a place has `"geometry": null`. JSON lines: one object per line, UTF-8.
`explanation` puts together why each rule did or did not fire for one post (`watchfloor explain POST_ID`).
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.alert.geofence import distance_km
from services.alert.rules import with_subunits
from shared.errors import ReasonError
from shared.gazetteer import load_gazetteer

Kind = Literal["events", "alerts"]
FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "geojson": ("application/geo+json", "geojson"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}
EVENT_COLUMNS = (
    "event_id", "at", "source_id", "title", "url", "lang", "is_event", "status", "actors", "perpetrator", "tactics",
    "place", "admin1", "country", "lat", "lon", "precision", "killed", "confidence", "classifier",
    "incident_id", "rules", "alert_states",
)
ALERT_COLUMNS = (
    "alert_id", "fired_at", "updated_at", "rule_id", "rule_name", "severity", "state", "version", "incident_id",
    "corroboration", "incident_severity", "report_count", "sources", "title", "url", "actors", "tactics",
    "place", "country", "lat", "lon", "killed", "confidence", "acknowledged_by", "acknowledged_at", "ack_note",
    "muted_by", "matched",
)
STATES = ("firing", "acknowledged", "resolved")
MAX_SEARCH_CHARS = 200
"""Longest text search (`q`): a search is a LIKE over every stored post, kept to what a person types."""


class QueryError(ReasonError):
    """A query that cannot run as asked (an unknown place, a radius without a place). `reason` is shown as-is."""


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    label: str
    radius_km: float


@dataclass(frozen=True)
class LogQuery:
    """What to take from the event log. Every filter is optional; given filters are ANDed."""

    kind: Kind = "events"
    since: datetime | None = None
    until: datetime | None = None
    actors: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    rule: str | None = None
    state: str | None = None
    country: str | None = None
    near: Near | None = None
    limit: int | None = None
    text: str | None = None
    """A case-insensitive substring of the post's title or text (events only); `%` and `_` are literal."""
    is_event: bool | None = None
    _actor_codes: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.since and self.until and self.until <= self.since:
            raise QueryError("until must be later than since")
        if self.state is not None and self.state not in STATES:
            raise QueryError(f"unknown state {self.state!r}: choose {', '.join(STATES)}")
        if self.text is not None and len(self.text) > MAX_SEARCH_CHARS:
            raise QueryError(f"q: at most {MAX_SEARCH_CHARS} characters")
        if (self.text is not None or self.is_event is not None) and self.kind != "events":
            raise QueryError("q and is_event search events only (of=events)")
        object.__setattr__(self, "_actor_codes", with_subunits(list(self.actors)))


def resolve_near(place: str | None, radius_km: float | None, country: str | None = None) -> Near | None:
    """`--near Niamey --radius-km 50` as a circle, from the gazetteer; QueryError naming the place otherwise."""
    if place is None:
        if radius_km is not None:
            raise QueryError("radius_km needs near: a place to measure from, e.g. near=Niamey")
        return None
    if radius_km is None or radius_km <= 0:
        raise QueryError("near needs radius_km greater than 0, e.g. radius_km=50")
    found = load_gazetteer().best(place, country.upper() if country else None)
    if found is None:
        raise QueryError(f"unknown place {place!r} (not in the gazetteer)")
    return Near(found.lat, found.lon, found.name, radius_km)


def like_pattern(text: str) -> str:
    """A LIKE pattern finding `text` anywhere, `%`, `_` and the escape character itself taken literally (use
    with `escape="\\"`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def snippet(text: str, needle: str, width: int = 240) -> str:
    """About `width` characters of `text` around the first case-insensitive occurrence of `needle` (the start
    of the text when there is none), with "…" where it was cut."""
    at = text.casefold().find(needle.casefold()) if needle else -1
    if len(text) <= width:
        return text
    start = 0 if at < 0 else max(0, min(at - width // 3, len(text) - width))
    cut = text[start:start + width]
    return ("…" if start else "") + cut + ("…" if start + width < len(text) else "")


def keep(record: dict[str, Any], query: LogQuery) -> bool:
    """The filters SQL cannot apply portably: actor (with sub-units), tactic, distance from a place."""
    if query.actors and not set(_codes(record.get("actors"))) & query._actor_codes \
            and record.get("perpetrator") not in query._actor_codes:
        return False
    if query.tactics and not set(record.get("tactics") or []) & set(query.tactics):
        return False
    if query.near is not None:
        lat, lon = record.get("lat"), record.get("lon")
        if lat is None or lon is None:
            return False
        if distance_km(query.near.lat, query.near.lon, lat, lon) > query.near.radius_km:
            return False
    return True


def _codes(actors: Any) -> list[str]:
    """Actor codes from "ISSP:perpetrator" strings or plain codes."""
    return [str(a).split(":", 1)[0] for a in actors or []]


# --- records -----------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def event_record(event: dict[str, Any], post: dict[str, Any] | None, incident_id: str | None,
                 alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """One classified post as an event-log record. `event` and `post` are column dicts of their rows;
    `alerts` the alerts of the post's incident ({rule_id, state})."""
    post = post or {}
    place = event.get("place") or {}
    return {
        "event_id": event["id"],
        "at": _iso(event.get("published_at") or post.get("published_at") or event.get("classified_at")),
        "source_id": event.get("source_id"),
        "title": post.get("title") or "",
        "url": post.get("url"),
        "lang": post.get("lang"),
        "is_event": bool(event.get("is_event")),
        "status": event.get("status"),
        "actors": [f"{a['code']}:{a.get('role', 'involved')}" for a in event.get("actors") or []],
        "perpetrator": event.get("perpetrator"),
        "tactics": [t["code"] for t in event.get("tactics") or []],
        "place": place.get("name"),
        "admin1": place.get("admin1"),
        "country": event.get("country") or place.get("country"),
        "lat": event.get("lat"),
        "lon": event.get("lon"),
        "precision": place.get("precision"),
        "killed": event.get("killed"),
        "confidence": event.get("confidence"),
        "classifier": event.get("classifier"),
        "incident_id": incident_id,
        "rules": sorted({a["rule_id"] for a in alerts}),
        "alert_states": sorted({a["state"] for a in alerts}),
    }


def alert_record(alert: dict[str, Any], incident: dict[str, Any] | None) -> dict[str, Any]:
    """One alert as an event-log record. `alert` holds the row's columns and its `payload`."""
    payload = alert.get("payload") or {}
    incident = incident or {}
    place = payload.get("place") or {}
    return {
        "alert_id": alert["id"],
        "fired_at": _iso(alert.get("fired_at")),
        "updated_at": _iso(alert.get("updated_at")),
        "rule_id": alert.get("rule_id"),
        "rule_name": payload.get("rule_name"),
        "severity": alert.get("severity"),
        "state": alert.get("state"),
        "version": alert.get("version"),
        "incident_id": alert.get("incident_id"),
        "corroboration": payload.get("corroboration") or incident.get("corroboration"),
        "incident_severity": payload.get("incident_severity") or incident.get("severity"),
        "report_count": payload.get("report_count") or incident.get("report_count")
        or len(payload.get("event_ids") or []),
        "sources": list(payload.get("source_ids") or []),
        "title": payload.get("title") or "",
        "url": payload.get("url"),
        "actors": list(payload.get("actors") or []),
        "perpetrator": payload.get("perpetrator"),
        "tactics": list(payload.get("tactics") or []),
        "place": place.get("name"),
        "country": place.get("country"),
        "lat": place.get("lat"),
        "lon": place.get("lon"),
        "killed": payload.get("killed"),
        "confidence": payload.get("confidence"),
        "acknowledged_by": alert.get("acknowledged_by"),
        "acknowledged_at": _iso(alert.get("acknowledged_at")),
        "ack_note": alert.get("ack_note"),
        "muted_by": alert.get("muted_by"),
        "matched": list(payload.get("matched") or []),
    }


def alert_country(record: dict[str, Any]) -> str | None:
    return (record.get("country") or "").upper() or None


# --- formats -----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


class Exporter:
    """Writes one export piece by piece (`head`, one `item` per record, `tail`), so that a year of the event
    log streams in constant memory, from a sync or an async source alike."""

    def __init__(self, fmt: str, kind: Kind) -> None:
        if fmt not in FORMATS:
            raise QueryError(f"unknown format {fmt!r}: choose {', '.join(FORMATS)}")
        self.fmt, self.kind = fmt, kind
        self.columns = EVENT_COLUMNS if kind == "events" else ALERT_COLUMNS
        self.id_field = "event_id" if kind == "events" else "alert_id"
        self._count = 0
        self._buffer = io.StringIO()
        # RFC 4180: CRLF line ends, fields quoted only when they hold a comma, a quote or a line break.
        self._csv = csv.writer(self._buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def _row(self, values: list[str]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(values)
        return self._buffer.getvalue()

    def head(self) -> str:
        if self.fmt == "csv":
            return self._row(list(self.columns))
        return '{"type":"FeatureCollection","features":[\n' if self.fmt == "geojson" else ""

    def item(self, record: dict[str, Any]) -> str:
        self._count += 1
        if self.fmt == "csv":
            return self._row([_cell(record.get(c)) for c in self.columns])
        if self.fmt == "geojson":
            return ("" if self._count == 1 else ",\n") + json.dumps(feature(record, self.id_field),
                                                                    ensure_ascii=False)
        return json.dumps(record, ensure_ascii=False) + "\n"

    def tail(self) -> str:
        return "\n]}\n" if self.fmt == "geojson" else ""


def feature(record: dict[str, Any], id_field: str) -> dict[str, Any]:
    """A GeoJSON Feature: Point [lon, lat] (RFC 7946 §3.1.1: longitude first), every other field a property."""
    lat, lon = record.get("lat"), record.get("lon")
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lat is not None and lon is not None else None
    properties = {k: v for k, v in record.items() if k not in ("lat", "lon")}
    return {"type": "Feature", "id": record.get(id_field), "geometry": geometry, "properties": properties}


def render(records: Iterable[dict[str, Any]], fmt: str, kind: Kind) -> Iterator[str]:
    """The whole export of `records` in `fmt` (csv, geojson or jsonl)."""
    exporter = Exporter(fmt, kind)
    yield exporter.head()
    for record in records:
        yield exporter.item(record)
    yield exporter.tail()


# --- explain -----------------------------------------------------------------------------------------


@dataclass
class RuleVerdict:
    """Why one rule did or did not fire for one post."""

    rule_id: str
    rule_name: str
    fired: bool
    summary: str
    checks: list[dict[str, Any]]
    alert: dict[str, Any] | None = None


def verdict(rule_id: str, rule_name: str, checks: list[Any], alert: dict[str, Any] | None,
            in_alert: bool) -> RuleVerdict:
    """Puts the rule's checks (evaluate.explain) beside what the alert service did (the alert row, if any).

    `in_alert`: the post is one of the alert's reports. A rule whose checks all pass without an alert was held
    back by its condition over time, its window, or it did not exist yet when the post came in."""
    rows = [{"condition": c.condition, "passed": bool(c.passed), "reason": c.reason} for c in checks]
    failed = [r for r in rows if not r["passed"]]
    if alert is not None:
        muted = alert.get("muted_by")
        how = "fired" if in_alert else "fired for this incident (from another report)"
        summary = f"{how}: alert {alert['id'][:12]} v{alert.get('version')} {alert.get('state')}"
        if muted:
            summary += f", muted ({muted})"
        return RuleVerdict(rule_id, rule_name, True, summary, rows, alert)
    if failed:
        first = failed[0]
        return RuleVerdict(rule_id, rule_name, False, f"did not fire: {first['condition']}: {first['reason']}", rows)
    return RuleVerdict(rule_id, rule_name, False,
                       "did not fire although every check passes: its condition over time was not met, its window "
                       "had passed, or the rule was added after the post was evaluated (dry-run it to see)", rows)


def labels(event: dict[str, Any], text: dict[str, str]) -> list[dict[str, Any]]:
    """The post's labels with their evidence: what the classifier read, and where (field, offsets, words)."""
    out: list[dict[str, Any]] = []

    def spans(label: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for span in label.get("evidence") or []:
            source = text.get(span.get("field", "text"), "")
            words = span.get("text") or source[span.get("start", 0):span.get("end", 0)]
            found.append({"field": span.get("field"), "start": span.get("start"), "end": span.get("end"),
                          "text": words})
        return found

    for actor in event.get("actors") or []:
        out.append({"kind": "actor", "code": actor["code"], "role": actor.get("role"),
                    "confidence": actor.get("confidence"), "evidence": spans(actor)})
    for tactic in event.get("tactics") or []:
        out.append({"kind": "tactic", "code": tactic["code"], "confidence": tactic.get("confidence"),
                    "evidence": spans(tactic)})
    place = event.get("place")
    if place:
        out.append({"kind": "place", "code": place.get("name"), "country": place.get("country"),
                    "precision": place.get("precision"), "confidence": place.get("confidence"),
                    "reason": place.get("reason"), "evidence": spans(place)})
    return out


def _why_not(event: dict[str, Any]) -> str:
    status = event.get("status")
    if status and status not in ("reported", "claimed"):
        return f"no (the attack it describes is {status}: it pages no one)"
    return "no (commentary or analysis)"


def explanation_text(post_id: str, event: dict[str, Any], label_rows: list[dict[str, Any]],
                     verdicts: list[RuleVerdict]) -> Iterator[str]:
    """`watchfloor explain` as text: the post, its labels with evidence, then one block per rule."""
    yield f"post {post_id}  source={event.get('source_id')}  classifier={event.get('classifier')}"
    if event.get("title"):
        yield f"  title: {event['title']}"
    yield f"  is an event: {'yes' if event.get('is_event') else _why_not(event)}  " \
          f"confidence {event.get('confidence', 0):.2f}"
    if event.get("status"):
        words = ", ".join(f"“{s['text']}” [{s['field']} {s['start']}-{s['end']}]"
                          for s in event.get("status_evidence") or [])
        yield f"  report status: {event['status']}" + (f"  ← {words}" if words else "") + \
              (f"  ({event['status_reason']})" if event.get("status_reason") else "")
    yield "labels:"
    if not label_rows:
        yield "  (none)"
    for row in label_rows:
        what = f"{row['kind']} {row['code']}" + (f" ({row['role']})" if row.get("role") else "")
        conf = f" conf {row['confidence']:.2f}" if isinstance(row.get("confidence"), int | float) else ""
        words = ", ".join(f"“{s['text']}” [{s['field']} {s['start']}-{s['end']}]" for s in row["evidence"])
        yield f"  {what}{conf}" + (f"  ← {words}" if words else "") + \
              (f"  ({row['reason']})" if row.get("reason") else "")
    yield "rules:"
    if not verdicts:
        yield "  (no enabled rule)"
    for v in verdicts:
        yield f"  {'FIRED ' if v.fired else 'no    '} {v.rule_id}: {v.summary}"
        for check in v.checks:
            yield f"      {'✓' if check['passed'] else '✗'} {check['condition']}: {check['reason']}"
