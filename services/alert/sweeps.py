"""The Sweeper: what happens to alerts with no new report, on a clock rather than on an event.

    every `sweep_interval_seconds`, in this order:
      resolution       an incident with no new report for `incident_resolve_after_seconds` is resolved; each of its
                       alerts is sent once more, kind "resolved" (a muted alert no subscriber heard of stays quiet)
      ended silences   an alert a silence muted, still firing and unacknowledged, is sent as soon as no silence
                       mutes it any more (not at the next re-page: Alertmanager #3367)
      re-pages         an unacknowledged, unmuted severity III alert of an open incident is sent again every
                       `repage_after_seconds` (kind "repaged", a new version, `page_count` + 1); an ack stops it
      shift digests    an email subscription with digest times is owed, once a shift has ended, one digest of it
                       (digest.py): a notification keyed `digest:<subscription>:<shift end>`, sent by the dispatcher
Each change is one transaction with the incident row locked and the alert's version checked, so two
sweepers (two processes) never send one re-page twice; the new versions go to wf:alerts after the commit.
A digest is inserted or ignored on the notification's unique key, so two sweepers owe it once.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import (
    commands,
    compose,
    digest,
    lifecycle,
    store_alerts,
    store_deliveries,
    store_digest,
    store_incidents,
    store_rules,
)
from services.alert.channels import digest_times
from services.alert.paging import repage_due
from services.alert.pipeline import Outbox, save_version
from services.alert.settings import AlertSettings
from services.alert.silences import SilenceView, muted_by, silence_id
from shared.db import session_scope
from shared.messages import AlertMessage
from shared.models import Alert, Subscription
from shared.outage import LoopErrors
from shared.periodic import cancel_and_wait

logger = logging.getLogger(__name__)


def next_of(row: Alert, now: datetime, kind: lifecycle.Kind, **changes: object) -> AlertMessage:
    """The stored alert's next version (`lifecycle.next_version`), of `kind`, with `changes` applied."""
    return lifecycle.next_version(AlertMessage.model_validate(row.payload), row.version, row.state, now, kind,
                                  **changes)


class Sweeper:
    def __init__(self, settings: AlertSettings, sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> None:
        self.settings, self.sessions, self.outbox = settings, sessions, outbox
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="alert-sweeper")

    async def stop(self) -> None:
        self._stopping.set()
        await cancel_and_wait(self._task)
        self._task = None

    async def run(self) -> None:
        errors = LoopErrors("sweeper", logger)  # an outage logged when it starts and ends, not every sweep
        while not self._stopping.is_set():
            try:
                await self.sweep(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors.failed(exc)
            else:
                errors.ok()
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see shared/periodic.py
                async with asyncio.timeout(self.settings.sweep_interval_seconds):
                    await self._stopping.wait()

    async def sweep(self, now: datetime) -> list[AlertMessage]:
        """One pass; returns what it published."""
        # Resolution first: an incident gone quiet is closed, not paged once more on its way out.
        out = await self._resolve(now)
        out += await self._firing(now)
        await self.outbox.publish(out)
        await self.digests(now)
        return out

    async def digests(self, now: datetime) -> int:
        """Owes each email subscription with digest times the digest of its shift that ended last, once (a
        shift that ended before the subscription was added is not owed). Returns how many were recorded."""
        async with self.sessions() as session:
            subs = await store_digest.digest_subscriptions(session)
        owed = 0
        for sub in subs:
            shift = digest.last_shift(digest_times(sub.digest), sub.tz, now)
            if shift is None or shift.end < sub.created_at:
                continue
            owed += await self._digest(sub, shift, now)
        return owed

    async def _digest(self, sub: Subscription, shift: digest.Shift, now: datetime) -> int:
        key = digest.digest_key(sub.id, shift)
        limit = self.settings.digest_section_limit
        async with session_scope(self.sessions) as session:
            if await store_digest.owed(session, sub.id, key):
                return 0
            entries, truncated = await store_digest.digest_entries(session, shift.start, shift.end,
                                                                   self.settings.digest_max_alerts)
            notify = {rule_id: await store_rules.rule_notify(session, rule_id)
                      for rule_id in {e.rule_id for e in entries}}
            mine = digest.for_recipient(entries, subscription_id=sub.id, rule_ids=sub.rule_ids,
                                        min_severity=sub.min_severity, notify=notify)
            sections = digest.sections(mine, shift)
            skip = sections.empty and bool((sub.digest or {}).get("skip_empty"))
            message_id = digest.digest_message_id(sub.id, shift)
            body = compose.digest_mail(sections, shift, message_id=message_id, public_url=self.settings.public_url,
                                       subscription_id=sub.id, limit=limit, truncated=truncated)
            created = await store_deliveries.add_notification(
                session, subscription_id=sub.id, alert_id=key, version=1, message_id=message_id, body=body,
                due=now, state="skipped" if skip else "pending",
                reason="nothing to report during the shift (digest skip-empty)" if skip else None)
        if created:
            counts = " ".join(f"{k}={n}" for k, n in sections.counts().items())
            logger.info("digest %s sub=%d shift=%s %s", "skipped" if skip else "owed", sub.id, shift.label(), counts)
        return int(created and not skip)

    async def _save(self, session: AsyncSession, row: Alert, message: AlertMessage) -> None:
        await save_version(session, message, rule_id=row.rule_id, incident_id=row.incident_id,
                           severity=row.severity, fired_at=row.fired_at)

    async def _firing(self, now: datetime) -> list[AlertMessage]:
        """Unmutes alerts whose silence ended, and re-pages unacknowledged severity III."""
        every = timedelta(seconds=self.settings.repage_after_seconds)
        async with self.sessions() as session:
            rows = await store_alerts.firing_alerts(session, paged_before=now - every)
            silences = await commands.active_silences(session, now)
        out = []
        for seen in rows:
            if seen.muted_by and silence_id(seen.muted_by) is None:
                continue  # inhibited: for the life of the incident
            payload = AlertMessage.model_validate(seen.payload)
            still = muted_by(silences, payload, now)
            if seen.muted_by is None and not repage_due(
                state=seen.state, muted_by=None, incident_severity=payload.incident_severity,
                last_paged_at=seen.last_paged_at, fired_at=seen.fired_at, now=now, every=every,
            ):
                continue
            if seen.muted_by is not None and still is not None:
                continue
            message = await self._change(seen, still, silences, now)
            if message is not None:
                out.append(message)
        return out

    async def _change(self, seen: Alert, still: str | None, silences: list[SilenceView],
                      now: datetime) -> AlertMessage | None:
        async with session_scope(self.sessions) as session:
            incident = await store_incidents.lock_incident(session, seen.incident_id)
            row = await session.get(Alert, seen.id, populate_existing=True)
            if incident is None or incident.state != "open" or row is None or row.version != seen.version \
                    or row.state != lifecycle.FIRING:
                return None  # changed meanwhile (a report, an ack, another sweeper): next pass decides
            if row.muted_by is not None:
                ended = row.muted_by
                kind = lifecycle.kind_when_unmuted(await store_deliveries.notified(session, row.id))
                message = next_of(row, now, kind, muted_by=None, change=f"{ended.split(':')[0]} ended")
                logger.info("alert unmuted alert=%s v=%d kind=%s reason=\"%s ended\"", row.id[:8],
                            message.version, kind, ended.split(":")[0])
            elif still is not None:
                row.muted_by = still  # silenced since it fired: no re-page; sent when the silence ends
                return None
            else:
                pages = row.page_count + 1
                message = next_of(row, now, "repaged", page_count=pages, muted_by=None,
                                       change=f"re-page {pages}: severity III, not acknowledged")
                logger.info("alert repaged alert=%s v=%d page=%d", row.id[:8], message.version, pages)
            await self._save(session, row, message)
            return message

    async def _resolve(self, now: datetime) -> list[AlertMessage]:
        quiet_since = now - timedelta(seconds=self.settings.incident_resolve_after_seconds)
        async with self.sessions() as session:
            incident_ids = await store_incidents.quiet_incidents(session, quiet_since)
        out = []
        for incident_id in incident_ids:
            async with session_scope(self.sessions) as session:
                incident = await store_incidents.resolve_incident(session, incident_id, now)
                if incident is None:
                    continue
                silences = await commands.active_silences(session, now)
                for row in (await store_alerts.alerts_of_incident(session, incident_id)).values():
                    if row.state not in lifecycle.LIVE:
                        continue
                    quiet_for = _hours(self.settings.incident_resolve_after_seconds)
                    message = next_of(row, now, "resolved", change=f"no new report for {quiet_for}")
                    muted = row.muted_by if row.muted_by and silence_id(row.muted_by) is None else \
                        muted_by(silences, message, now)
                    if muted is None and row.muted_by and not await store_deliveries.notified(session, row.id):
                        muted = row.muted_by  # never heard of by subscribers: no resolution either
                    message = message.model_copy(update={"muted_by": muted})
                    await self._save(session, row, message)
                    out.append(message)
                logger.info("incident resolved incident=%s alerts=%d", incident_id[:8],
                            sum(1 for m in out if m.incident_id == incident_id))
        return out


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
