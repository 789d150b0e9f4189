"""Stream and consumer-group names: the only place they are spelled (DESIGN §2)."""

POSTS = "wf:posts"
"""ingest -> classify: one PostMessage per new post."""
EVENTS = "wf:events"
"""classify -> alert: one EventMessage per classified post."""
ALERTS = "wf:alerts"
"""alert -> deliver and console: one AlertMessage per alert version."""
ALERTS_PUBLISHED = "wf:alerts:published"
"""A hash beside wf:alerts: alert id -> the last version put on the stream (the alert outbox's mark)."""

INGEST = "ingest"
CLASSIFY = "classify"
ALERT = "alert"
DELIVER = "deliver"
STAGES = (CLASSIFY, ALERT, DELIVER)
"""Stages that consume a stream and may park messages."""

GROUP_FOR_STAGE = {CLASSIFY: "classify", ALERT: "alert", DELIVER: "deliver"}
STREAM_FOR_STAGE = {CLASSIFY: POSTS, ALERT: EVENTS, DELIVER: ALERTS}


def dlq_stream(stage: str) -> str:
    """The dead-letter stream of a stage: `wf:dlq:classify`."""
    return f"wf:dlq:{stage}"
