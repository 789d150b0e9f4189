"""Stream and consumer-group names: the only place they are spelled (DESIGN §2)."""

POSTS = "wf:posts"
"""ingest -> classify: one PostMessage per new post."""
EVENTS = "wf:events"
"""classify -> alert: one EventMessage per classified post."""
ALERTS = "wf:alerts"
"""alert -> deliver and console: one AlertMessage per alert version."""
SOURCE_WATCH = "wf:source-watch"
"""ingest -> alert: one SourceWatchMessage per operator alert on a source raised or resolved (silent, failing)."""
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


def dlq_stream(stage: str) -> str:
    """The dead-letter stream of a stage: `wf:dlq:classify`."""
    return f"wf:dlq:{stage}"
