"""Operator alerts on sources: wf:source-watch in (ingest raises `silent` or `failing`, and resolves it), an
operator alert recorded (`source_alerts`, the console's strip, GET /api/source-alerts) and webhooks owed in the same
transaction, through the notifications the alert webhooks use: signed, retried, recorded, replayable.

    source.silent / source.failing                   raised   (notification version 1 of the watch_id)
    source.silent.resolved / source.failing.resolved resolved (version 2)

Which subscriptions: those whose `events` patterns take the type (all, when a subscription names none); a rule
filter or a minimum severity is about alert rules and does not hold these back.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import store_source_alerts
from services.alert.dispatch import Dispatcher
from shared.db import session_scope
from shared.messages import SourceWatchMessage

logger = logging.getLogger(__name__)


class SourceAlerts:
    """Consumer of wf:source-watch (stage `source-alerts`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher) -> None:
        self.sessions, self.dispatcher = sessions, dispatcher

    async def on_watch(self, message: SourceWatchMessage) -> int:
        """Records the operator alert and what its webhook is owed, once however often it is delivered; returns
        how many notifications were queued."""
        async with session_scope(self.sessions) as session:
            changed = await store_source_alerts.record(session, message)
            created = await self.dispatcher.owe_source_alert(session, message, datetime.now(UTC))
        if created:
            self.dispatcher.wake()
        if changed:
            logger.log(logging.WARNING if message.state == "raised" else logging.INFO,
                       "source alert %s source=%s watch=%s notifications=%d reason=%r", message.event_type,
                       message.source_id, message.watch_id[:8], created,
                       message.reason if message.state == "raised" else message.resolved_reason)
        return created
