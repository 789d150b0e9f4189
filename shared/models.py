"""The event log (DESIGN §3): every table, on one metadata for Alembic.

Nothing here is deleted by the pipeline. Times are timezone-aware UTC on both PostgreSQL and SQLite.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy import text as sa_text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC; SQLite hands back naive values, so they are made aware again on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the event log; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def state_is(column: Any, state: str) -> Any:
    """`column = '<state>'` with the state written in the SQL, not sent as a parameter. A partial index
    (`WHERE state = 'open'`) serves a prepared statement's generic plan, which PostgreSQL switches to after
    five runs, only when the query spells its predicate's constant: with a parameter the sender's claim became
    a scan of every notification (52 ms at 150,000 rows). `state` is one of this module's own words."""
    assert state.isidentifier(), state
    return column == literal_column(f"'{state}'")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Source(Base):
    """A feed or push source, its polling state and its health as ops see it."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2000), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="feed")  # feed | push | telegram
    # What a platform kind's adapter polls (a Telegram channel name) and the newest item it gave (a message id).
    handle: Mapped[str | None] = mapped_column(String(200))
    cursor: Mapped[str | None] = mapped_column(String(200))
    interval_seconds: Mapped[int] = mapped_column(Integer, default=300)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    next_poll_at: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # What the last poll that read the feed wants ops to know (items dropped over the cap); None if nothing.
    last_warning: Mapped[str | None] = mapped_column(Text)
    last_warning_at: Mapped[datetime | None]
    posts_seen: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Soft delete: a removed source is never polled and not listed, but its posts stay in the log.
    removed_at: Mapped[datetime | None]
    # A push source's owner: the name of the token that first pushed to it; only tokens of that name push to it.
    pushed_by: Mapped[str | None] = mapped_column(String(200))
    # Per-source settings, as a feed reader's: the language of its posts that declare none (an ISO 639 code), and
    # RE2 patterns a new post must match one of (keep, if any) and none of (block) to be published.
    lang: Mapped[str | None] = mapped_column(String(8))
    keep_patterns: Mapped[list[Any] | None]
    block_patterns: Mapped[list[Any] | None]
    # Posts kept out by those patterns (each recorded once in filtered_posts), and the last poll's account of it.
    posts_filtered: Mapped[int] = mapped_column(Integer, default=0)
    last_filtered: Mapped[str | None] = mapped_column(Text)
    last_filtered_at: Mapped[datetime | None]
    # Its rhythm, learned from its own posts (services/ingest/cadence.py), O(1) a post: when a new post was last
    # stored, how many posts were learned, the running mean gap between them, the longest gap of each of the last
    # days it posted ([["2026-12-04", 28800], ...], bounded), and the time of the newest post learned.
    last_post_at: Mapped[datetime | None]
    posts_learned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gap_mean_seconds: Mapped[float | None] = mapped_column(Float)
    daily_longest_gaps: Mapped[list[Any] | None] = mapped_column(JSON)
    learned_until: Mapped[datetime | None]
    # The first failure of the current run of failures (None after a success).
    failing_since: Mapped[datetime | None]
    # The operator alert raised on it now: None | silent | failing, since when, why, and the raise's stable id.
    # `watch_version` counts decisions: a decision is written only if the version is still the one it read, so two
    # ingest processes sweeping at once raise it once.
    watch_state: Mapped[str | None] = mapped_column(String(10))
    watch_since: Mapped[datetime | None]
    watch_reason: Mapped[str | None] = mapped_column(Text)
    watch_id: Mapped[str | None] = mapped_column(String(64))
    watch_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SourceWatchEvent(Base):
    """Ingest's outbox of operator alerts on sources: one row per raise or resolution, published once to
    wf:source-watch (`queued_at`), published again if Redis was away."""

    __tablename__ = "source_watch_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(watch_id, state)
    watch_id: Mapped[str] = mapped_column(String(64), index=True)
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # silent | failing
    state: Mapped[str] = mapped_column(String(10))  # raised | resolved
    at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]]
    queued_at: Mapped[datetime | None] = mapped_column(index=True)


class SourceAlert(Base):
    """An operator alert on a source as the alert service recorded it from wf:source-watch: one row per raise,
    resolved in place."""

    __tablename__ = "source_alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the raise's watch_id
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    source_name: Mapped[str] = mapped_column(String(200))
    source_kind: Mapped[str] = mapped_column(String(20))
    source_url: Mapped[str | None] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(10))  # silent | failing
    state: Mapped[str] = mapped_column(String(10), index=True)  # raised | resolved
    reason: Mapped[str] = mapped_column(Text)
    resolved_reason: Mapped[str | None] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None]


class Post(Base):
    """A post as fetched: raw text kept so it can be classified again."""

    __tablename__ = "posts"
    __table_args__ = (
        # The outbox's walk (`unqueued_posts`): posts stored and never published, oldest first. The index of every
        # post's `queued_at` serves the replay after Redis lost its data (`queued_at >= since`).
        Index("ix_posts_unqueued", "fetched_at",
              postgresql_where=sa_text("queued_at IS NULL"), sqlite_where=sa_text("queued_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(2000))
    guid: Mapped[str | None] = mapped_column(String(2000))
    url: Mapped[str | None] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    lang: Mapped[str | None] = mapped_column(String(8))
    published_at: Mapped[datetime | None]
    fetched_at: Mapped[datetime] = mapped_column(index=True)
    forwarded_from: Mapped[str | None] = mapped_column(String(2000))  # the original a forward repeats
    # Outbox: set once the post is on wf:posts. A post committed but not queued (crash between the
    # commit and the publish) is queued again by ingest, so nothing stored is left unclassified.
    queued_at: Mapped[datetime | None] = mapped_column(index=True)


class FilteredPost(Base):
    """A post a source's keep or block patterns kept out: never published, and recorded so that it is seen once
    (its id is taken, as a stored post's is) and ops can tell what was kept out and why."""

    __tablename__ = "filtered_posts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the post_id it would have had
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(2000))
    reason: Mapped[str] = mapped_column(Text)  # "by block pattern 'football'", "matching no keep pattern"
    filtered_at: Mapped[datetime]


class Event(Base):
    """One classification per attack a post reports (the main one has `id == post_id`); re-classification
    overwrites it."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # the post it comes from: its id for the post's main event, the same post for a roundup's other attacks
    post_id: Mapped[str] = mapped_column(String(64), index=True)
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    is_event: Mapped[bool] = mapped_column(Boolean)
    actors: Mapped[list[Any]] = mapped_column(default=list)
    perpetrator: Mapped[str | None] = mapped_column(String(40))
    tactics: Mapped[list[Any]] = mapped_column(default=list)
    place: Mapped[dict[str, Any] | None]
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    country: Mapped[str | None] = mapped_column(String(2))
    killed: Mapped[int | None] = mapped_column(Integer)
    # reported | claimed | denied | rumoured | historical | hypothetical; None: no attack described
    status: Mapped[str | None] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_evidence: Mapped[list[Any] | None]
    unresolved_place: Mapped[dict[str, Any] | None]  # {name, admin1, country, evidence}: in no gazetteer
    confidence: Mapped[float] = mapped_column(Float)
    classifier: Mapped[str] = mapped_column(String(40))
    gazetteer: Mapped[str | None] = mapped_column(String(80))
    published_at: Mapped[datetime | None]
    classified_at: Mapped[datetime] = mapped_column(index=True)


class Incident(Base):
    """Reports of one attack, clustered across sources (same actor or tactic, close in space and time)."""

    __tablename__ = "incidents"
    # The sweeper's "quiet since" walk reads open incidents only, oldest report first: bounded by what it
    # resolves, not by every incident ever opened.
    # Partial indexes of the open incidents (a few thousand at most, against every incident ever recorded): the
    # alert stage's candidates, those active near an event's time; the sweeper's "quiet since", oldest report
    # first. Both are walks bounded by what they return, and plain enough that a planner without statistics
    # (autovacuum off) takes them.
    __table_args__ = (
        Index("ix_incidents_open_last_seen", "last_seen_at",
              postgresql_where=sa_text("state = 'open'"), sqlite_where=sa_text("state = 'open'")),
        Index("ix_incidents_open_quiet", "last_report_at",
              postgresql_where=sa_text("state = 'open'"), sqlite_where=sa_text("state = 'open'")),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved
    first_seen_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    country: Mapped[str | None] = mapped_column(String(2))
    place: Mapped[dict[str, Any] | None]
    actors: Mapped[list[Any]] = mapped_column(default=list)
    perpetrator: Mapped[str | None] = mapped_column(String(40))
    tactics: Mapped[list[Any]] = mapped_column(default=list)
    killed: Mapped[int | None] = mapped_column(Integer)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # single_source -> corroborated (independent sources) -> confirmed (an official or known-wire source)
    corroboration: Mapped[str] = mapped_column(String(20), default="single_source")
    severity: Mapped[str | None] = mapped_column(String(8))  # I, II, III (Samdesk-style, may only rise)
    resolved_at: Mapped[datetime | None]
    # A later report denies the attack: the incident stays (ops decide), its alerts say it is disputed.
    disputed_at: Mapped[datetime | None]
    disputed_by: Mapped[str | None] = mapped_column(String(64))  # the denying event
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    # When its severity or corroboration last rose (both only rise): the shift digest's "escalating" section.
    escalated_at: Mapped[datetime | None] = mapped_column(index=True)
    # When its latest report was recorded (arrival, not the event's time): it resolves this long after.
    last_report_at: Mapped[datetime | None]


class IncidentReport(Base):
    """Which event belongs to which incident: unique per event, so a redelivered event is not counted twice."""

    __tablename__ = "incident_reports"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the report was published (else fetched): the earliest report of a text is the origin of its copies.
    reported_at: Mapped[datetime | None]
    # MinHash of its text (services/alert/copies.py); None: no text, never a copy.
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The report it comes from (a forward, repost or syndicated copy of it); None or its own id: an original.
    origin_id: Mapped[str | None] = mapped_column(String(64))
    # Estimated Jaccard similarity to the report it copies (None for an original).
    similarity: Mapped[float | None] = mapped_column(Float)
    # How a copy was found: "text" (near-duplicate words) or "forward" (it forwards or links to its origin).
    via: Mapped[str | None] = mapped_column(String(10))
    # Its own address, what it forwards and the links it cites (copies.canonical_url, forward_of, citations),
    # so that a later report is linked to it whichever comes first.
    url: Mapped[str | None] = mapped_column(String(2000))
    forward_of: Mapped[str | None] = mapped_column(String(2000))
    cites: Mapped[list[Any] | None] = mapped_column(JSON)


class Rule(Base):
    """An alert rule as ops wrote it (`body`, YAML) and as validated (`spec`, JSON)."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    body: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]]
    origin: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Alert(Base):
    """One per rule and incident. State machine: firing -> acknowledged -> resolved."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="firing")
    severity: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    fired_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    ack_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]]
    last_paged_at: Mapped[datetime | None]
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    muted_by: Mapped[str | None] = mapped_column(Text)  # "silence 4: ..." or "inhibited by alert ...": why not sent


class Subscription(Base):
    """A webhook endpoint or an email recipient (`mailto:`). The secret signs every webhook payload (Standard
    Webhooks, `whsec_...`); an email subscription has one too, unused."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2000))
    name: Mapped[str | None] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    min_severity: Mapped[str | None] = mapped_column(String(20))
    rule_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    quiet_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"start": "22:00", "end": "06:00", "tz": ...}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    # Secret rotation: until `previous_secret_until`, payloads carry a signature with each secret.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_until: Mapped[datetime | None]
    # Soft delete: a removed subscription gets nothing more; its notifications and attempts stay auditable.
    removed_at: Mapped[datetime | None]
    # Webhook event types it wants, as patterns (["alert.*", "source.silent"]); None: every type.
    events: Mapped[list[Any] | None] = mapped_column(JSON)
    # webhook (an http(s) URL) | email (a mailto: URL): derived from the URL's scheme when added.
    channel: Mapped[str] = mapped_column(String(10), default="webhook", server_default="webhook")
    # Email: each alert as it fires (True) or only the shift digest (False).
    immediate: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # Email: a shift digest at these local times, {"times": ["06:00", "18:00"], "skip_empty": false}; None: none.
    digest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The recipient's time zone (IANA): digest times are read in it, and emails show times in it beside UTC.
    tz: Mapped[str | None] = mapped_column(String(64))


class Notification(Base):
    """What is owed to one subscriber: one alert version, its exact signed body, its delivery state."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("subscription_id", "alert_id", "alert_version"),
        # The sender's queue: pending rows only, in the order it claims them. Delivered rows, and the versions
        # each send leaves behind until a vacuum, stay out of its walk.
        Index("ix_notifications_due", "next_attempt_at", "id",
              postgresql_where=sa_text("state = 'pending'"), sqlite_where=sa_text("state = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No index of its own: the unique constraint's leading column serves a subscription's notifications.
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    alert_id: Mapped[str] = mapped_column(String(64), index=True)
    alert_version: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    # pending | delivered | failed | missed (fired while the subscription was disabled) | superseded | cancelled |
    # skipped (an empty shift digest its recipient skips)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # `attempts` when last replayed: a replay starts the retry schedule afresh, attempt numbers keep counting
    replay_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """Every webhook attempt, successful or not: status, latency, error."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    subscription_id: Mapped[int] = mapped_column(Integer, index=True)
    alert_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    # sending (written before the request) -> delivered | retry | gave_up; interrupted: the sender died mid-send
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class Silence(Base):
    """Mutes alerts that match its matchers between starts_at and ends_at, with a reason and a creator."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    expired_at: Mapped[datetime | None]
    expired_by: Mapped[str | None] = mapped_column(String(200))


class ApiToken(Base):
    """An API token: only its sha256 is stored; `prefix` lets ops tell tokens apart without the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # viewer | officer | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class OfficerPlace(Base):
    """A place the watch floor added to the gazetteer (a village no package has), with the reference its point
    comes from. Classify reads these on top of the packaged gazetteer, without a restart."""

    __tablename__ = "places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200), index=True)  # normalised name: one place per key and country
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    country: Mapped[str] = mapped_column(String(2))
    admin1: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="village")
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who changed a rule, a subscription or a source, or acknowledged an alert, and when."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_target", "target_kind", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    target_kind: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None]
