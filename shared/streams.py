"""Stream and consumer-group names: the only place they are spelled (DESIGN §2)."""

POSTS = "wf:posts"
EVENTS = "wf:events"
ALERTS = "wf:alerts"
SOURCE_WATCH = "wf:source-watch"
ABOUT = {
    POSTS: "ingest -> classify: one PostMessage per new post (a feed poll or POST /ingest), published once; an "
           "edited post (a Telegram message edited) again under the same post_id.",
    EVENTS: "classify -> alert: one EventMessage per attack a post reports (event_id == post_id for the main one, "
            "a roundup's others listed in `also`), and one for a post that reports none (is_event false).",
    ALERTS: "alert -> deliver and the console: one AlertMessage per alert version (fired, updated, repaged, "
            "resolved); the console reads it with XREAD from `$`, outside any consumer group.",
    SOURCE_WATCH: "ingest -> alert: one SourceWatchMessage per operator alert on a source raised or resolved "
                  "(silent, failing), published once through ingest's outbox.",
}
"""What each stream carries, for the AsyncAPI document (`watchfloor asyncapi`, /asyncapi.json)."""
ALERTS_PUBLISHED = "wf:alerts:published"
"""A hash beside wf:alerts: alert id -> the last version put on the stream (the alert outbox's mark)."""

INGEST = "ingest"
CLASSIFY = "classify"
ALERT = "alert"
DELIVER = "deliver"
SOURCE_ALERTS = "source-alerts"
STAGES = (CLASSIFY, ALERT, DELIVER, SOURCE_ALERTS)
"""Stages that consume a stream and may park messages."""

GROUP_FOR_STAGE = {CLASSIFY: "classify", ALERT: "alert", DELIVER: "deliver", SOURCE_ALERTS: "source-alerts"}
STREAM_FOR_STAGE = {CLASSIFY: POSTS, ALERT: EVENTS, DELIVER: ALERTS, SOURCE_ALERTS: SOURCE_WATCH}
COMMAND_FOR_STAGE = {CLASSIFY: "watchfloor run classify", ALERT: "watchfloor run alert",
                     DELIVER: "watchfloor run deliver", SOURCE_ALERTS: "watchfloor run deliver"}
"""The process that consumes a stage's stream, to name in a warning when none does."""


def dlq_stream(stage: str) -> str:
    """The dead-letter stream of a stage: `wf:dlq:classify`."""
    return f"wf:dlq:{stage}"


def about(stream: str) -> str:
    """What `stream` carries, in a sentence (a dead-letter stream's too)."""
    if stream.startswith("wf:dlq:"):
        stage = stream.removeprefix("wf:dlq:")
        return (f"the {stage} stage's dead letters: each entry a message it could not process (invalid, or failed "
                f"max_deliveries times) with the reason and the raw payload, as plain stream fields, not JSON; "
                f"`watchfloor dlq list {stage}` shows them, `watchfloor dlq replay {stage}` puts them back.")
    return ABOUT.get(stream, "")
