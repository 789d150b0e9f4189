"""Stream payloads (DESIGN §2): pydantic models, JSON on the wire, each with a `schema` version.

A consumer validates every message against these models; one that does not validate is parked
in the stage's dead-letter stream with the validation error as its reason.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostMessage(_Message):
    """A new post, published once by ingest (feed poll or `POST /ingest`)."""

    schema_: Literal[1] = Field(1, alias="schema")
    post_id: str = Field(min_length=16, max_length=64)
    source_id: str = Field(min_length=1, max_length=64)
    url: str | None = None
    guid: str | None = None
    title: str = ""
    text: str = ""
    lang: str | None = None
    published_at: datetime | None = None
    fetched_at: datetime
    forwarded_from: str | None = None  # a forward's original (t.me link or name): not an independent report

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Span(_Message):
    """Where in the post a label came from: `field` is "title" or "text", offsets into that field."""

    field: Literal["title", "text"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class ActorLabel(_Message):
    code: str
    role: Literal["perpetrator", "target", "involved", "suspected", "denied", "mentioned"] = "involved"
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Span] = []


class TacticLabel(_Message):
    code: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Span] = []


class PlaceLabel(_Message):
    """Where the activity happened. precision: 1 exact or point of interest, 2 near/offset, 3 region only."""

    name: str
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    country: str | None = Field(None, min_length=2, max_length=2)
    admin1: str | None = None
    kind: str | None = None
    precision: Literal[1, 2, 3] = 1
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    reason: str | None = None
    gazetteer_id: str | None = None
    evidence: list[Span] = []


# reported and claimed are current; the others go to the event log and page no one (services/classify/status.py)
ReportStatus = Literal["reported", "claimed", "denied", "rumoured", "historical", "hypothetical"]


class UnresolvedPlace(_Message):
    """A place the post names that no gazetteer knows ("the village of Kandagou"), and what is known of where it
    is. Officers add it with `watchfloor place add`; the event's `place` stays None meanwhile, not a guess."""

    name: str
    admin1: str | None = None
    country: str | None = Field(None, min_length=2, max_length=2)
    evidence: list[Span] = []


class EventMessage(_Message):
    """A classified post. `event_id == post_id` for the post's main event: re-classification overwrites, with a
    new `classifier`. A roundup's other attacks are events of their own (`shared.ids.event_id(post_id, n)`),
    listed in the main event's `also`; their spans are offsets into the same post."""

    schema_: Literal[1] = Field(1, alias="schema")
    event_id: str
    post_id: str
    source_id: str
    url: str | None = None
    forwarded_from: str | None = None  # the post's: what it forwards (services/alert/copies.py links the two)
    title: str = ""
    text: str = ""
    lang: str | None = None
    published_at: datetime | None = None
    fetched_at: datetime | None = None
    classified_at: datetime
    is_event: bool
    actors: list[ActorLabel] = []
    perpetrator: str | None = None
    tactics: list[TacticLabel] = []
    place: PlaceLabel | None = None
    unresolved_place: UnresolvedPlace | None = None
    killed: int | None = Field(None, ge=0)
    status: ReportStatus | None = Field(
        None, description="what the post says of the attack it describes; None when it describes none"
    )
    status_reason: str | None = None
    status_evidence: list[Span] = []
    also: list[str] = Field(
        default_factory=list, description="event ids of the other attacks this post reports (a roundup)"
    )
    confidence: float = Field(ge=0.0, le=1.0)
    classifier: str
    gazetteer: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def current(self) -> bool:
        """A report of an attack that happened (reported or claimed): only these open or update an incident."""
        return self.is_event and self.status in (None, "reported", "claimed")

    @property
    def actor_codes(self) -> list[str]:
        return [a.code for a in self.actors if a.role != "denied"]

    @property
    def tactic_codes(self) -> list[str]:
        return [t.code for t in self.tactics]


class AlertMessage(_Message):
    """One version of an alert: fired (version 1), updated as its incident gathers reports or rises in
    corroboration or severity, repaged (a reminder of an unacknowledged severity III), resolved (the incident
    went quiet). Every version has a higher `version`; a muted one (`muted_by`) is recorded and shown in the
    console but sent to no subscriber.

    Receivers drop a message whose `version` is not above the last they saw for `alert_id`.
    """

    schema_: Literal[1] = Field(1, alias="schema")
    alert_id: str
    version: int = Field(ge=1)
    kind: Literal["fired", "updated", "repaged", "resolved"]
    rule_id: str
    rule_name: str
    severity: str
    state: Literal["firing", "acknowledged", "resolved"] = "firing"
    incident_id: str
    fired_at: datetime
    updated_at: datetime
    event_ids: list[str]
    source_ids: list[str]
    title: str
    actors: list[str]
    perpetrator: str | None = None
    tactics: list[str]
    place: PlaceLabel | None = None
    killed: int | None = None
    confidence: float
    matched: list[str] = Field(default_factory=list, description="why the rule matched, one line a reason")
    evidence: list[Span] = []
    url: str | None = None
    report_count: int | None = Field(None, description="reports of the incident so far")
    corroboration: Literal["single_source", "corroborated", "confirmed"] | None = None
    corroboration_reason: str | None = Field(
        None, description="why the incident has its corroboration, e.g. 'sources 3 (2 independent: 1 syndicated copy)'"
    )
    independent_source_ids: list[str] | None = Field(
        None, description="the sources of original reports: a forward, repost or syndicated copy adds none"
    )
    incident_severity: Literal["I", "II", "III"] | None = None
    severity_reasons: list[str] = Field(default_factory=list, description="why the incident has its severity")
    change: str | None = Field(None, description="what this version changed, e.g. 'sources 1→2'")
    muted_by: str | None = Field(None, description="why no subscriber is sent this version")
    page_count: int = 0
    disputed: str | None = Field(
        None, description="a later report denies the attack: why (the denial's words), else None"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeadLetterEntry(BaseModel):
    """The fields of one entry of a dead-letter stream, `wf:dlq:<stage>` (shared.deadletter.park). Written with
    XADD as plain stream fields, not as a JSON message: this model documents them, nothing validates them."""

    reason: str = Field(description="why it was parked, for a person: the validation error or the last failure")
    payload: bytes = Field(description="the original entry's body, byte for byte (cut when over 16 MiB)")
    origin_stream: str = Field(description="the stream it was read from, e.g. wf:posts")
    origin_id: str = Field(description="its entry id there")
    deliveries: int = Field(description="how many times it was delivered before it was parked")
    parked_at: datetime
    truncated: Literal["0", "1"] = Field(description="1: the payload was cut and cannot be replayed")

class SourceWatchMessage(_Message):
    """An operator alert on a source, raised or resolved, published once by ingest: `silent` (a source that
    usually posts has been quiet far longer than usual) or `failing` (its polls have failed for hours).

    `watch_id` names one raise: its resolution carries the same id, so a consumer keys on (watch_id, state) and
    a re-delivery changes nothing."""

    schema_: Literal[1] = Field(1, alias="schema")
    watch_id: str = Field(min_length=16, max_length=64)
    source_id: str = Field(min_length=1, max_length=64)
    source_name: str = Field(max_length=200)
    source_kind: str = Field(max_length=20)
    source_url: str | None = Field(None, max_length=2000)
    kind: Literal["silent", "failing"]
    state: Literal["raised", "resolved"]
    since: datetime = Field(description="when it was raised")
    at: datetime = Field(description="when this state was reached (the raise, or the resolution)")
    reason: str = Field(max_length=2000, description="why it was raised, e.g. 'quiet for 9 h; usually posts "
                        "every 40 min (learned from 120 posts)'")
    resolved_reason: str | None = Field(None, max_length=2000, description="why it was resolved, e.g. 'posted "
                                        "again', 'polled successfully', 'source disabled'")
    last_post_at: datetime | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def event_type(self) -> str:
        """The Standard Webhooks type: source.silent, source.failing, source.silent.resolved…"""
        return f"source.{self.kind}" + (".resolved" if self.state == "resolved" else "")


def to_wire(message: BaseModel) -> dict:
    """The JSON-ready dict a publisher sends (aliases on, so `schema` is spelled as on the wire)."""
    return message.model_dump(mode="json", by_alias=True)
