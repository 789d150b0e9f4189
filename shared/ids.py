"""Deterministic ids (DESIGN §2): a retry can never create a second copy of anything."""

import hashlib


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def post_id(source_id: str, guid_or_link: str) -> str:
    """sha256 of the source and the entry's dedup key (guid, else canonical link, else content hash)."""
    return _sha(source_id, guid_or_link)


def event_id(post_id_: str, part: int = 0) -> str:
    """The main event of a post is the post (`event_id == post_id`); the other attacks of a roundup are its parts."""
    return post_id_ if part == 0 else _sha("event", post_id_, str(part))


def alert_id(rule_id: str, incident_id: str) -> str:
    """One alert per rule and incident, however many reports the incident gathers."""
    return _sha(rule_id, incident_id)


def incident_id(first_event_id: str) -> str:
    """An incident is named after the report that opened it."""
    return _sha("incident", first_event_id)


def source_id(url: str) -> str:
    """A source's id when the operator gives no name: short, stable, derived from its URL."""
    return _sha("source", url)[:16]


def watch_id(source_id: str, kind: str, since_iso: str) -> str:
    """One operator alert on a source: its kind and when it was raised (the resolution keeps the id)."""
    return _sha("watch", source_id, kind, since_iso)


def watch_event_id(watch_id_: str, state: str) -> str:
    """The raise or the resolution of one operator alert: ingest's outbox row."""
    return _sha(watch_id_, state)


def webhook_message_id(alert_id_: str, version: int) -> str:
    """Standard Webhooks `webhook-id`: the same on every retry of one alert version, never containing '.'."""
    return f"msg_{alert_id_[:32]}_v{version}"
