"""The Dispatcher: alert versions become notifications owed to subscribers, then signed webhooks or emails.

    wf:alerts ─▶ on_alert ─▶ one `notifications` row per subscription (unique: subscription, alert, version;
                             body serialised once and stored, so every retry sends the same bytes); none for a
                             muted version (silenced or inhibited); due at the end of the subscription's quiet
                             hours for severity I and II, where a newer version supersedes an older one held
                             a disabled subscription's is recorded `missed` (offered on enable, sent on replay)
    run() loop ─▶ claim due rows (leased) ─▶ `deliveries` row `sending`, committed ─▶ POST ─▶ row completed
                     delivered │ retry: next = schedule[n] ± jitter (or Retry-After) │ gave_up / last attempt:
                               │                                                   │  failed, logged at ERROR,
                               ▼                                                   ▼  kept for replay
The attempt is written before the request, so a sender killed mid-request leaves its trace; the lease outlives
the request's whole deadline, so no other dispatcher sends the same notification while one is in flight.
A replay (`watchfloor delivery replay`) puts failed or missed rows back to pending with their webhook-id.
An email subscription (`mailto:`) is owed the same rows, its body the message composed for it (compose.py;
none when it takes digests only), and sent over SMTP (smtp.py) instead of POSTed: outcomes map the same way.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import compose, smtp, store_deliveries, store_rules, store_subscriptions, webhook
from services.alert.channels import EMAIL, address_of
from services.alert.paging import hold_until, routes, source_routes
from services.alert.settings import AlertSettings
from services.alert.store_subscriptions import signing_secrets
from services.alert.webhook import DeliveryOutcome, Outcome
from shared import ids, metrics
from shared.db import session_scope
from shared.messages import AlertMessage, SourceWatchMessage, to_wire
from shared.models import Notification, Subscription
from shared.outage import LoopErrors
from shared.periodic import cancel_and_wait

logger = logging.getLogger(__name__)


async def subscriptions_for(session: AsyncSession, rule_id: str, severity: str,
                            incident_severity: str | None = None, *, include_disabled: bool = False,
                            event_type: str = "alert.fired") -> list[Subscription]:
    """Enabled subscriptions an alert of `rule_id` goes to (`paging.routes`: the rule's `notify` list, each
    subscription's rule filter, minimum severity and event types). With `include_disabled`, disabled ones too
    (what they miss is recorded); never removed ones."""
    subscriptions = await store_subscriptions.list_subscriptions(session)
    return routes(subscriptions, await store_rules.rule_notify(session, rule_id), rule_id, severity,
                  incident_severity, include_disabled=include_disabled, event_type=event_type)


def alert_event_type(alert: AlertMessage) -> str:
    return f"alert.{alert.kind}"


def envelope(event_type: str, at: datetime, data: dict) -> str:
    """The Standard Webhooks payload, serialised once: `{"type", "timestamp", "data"}`."""
    body = {"type": event_type, "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"), "data": data}
    return orjson.dumps(body).decode()  # compact, UTF-8 as it is: as json.dumps(ensure_ascii=False), faster


def webhook_body(alert: AlertMessage) -> str:
    return envelope(alert_event_type(alert), alert.updated_at, to_wire(alert))


def source_webhook_body(message: SourceWatchMessage) -> str:
    """`source.silent`, `source.failing`, or either `.resolved`; data is the SourceWatchMessage."""
    return envelope(message.event_type, message.at, to_wire(message))


DELIVERY_OUTCOME = {"delivered": "delivered", "pending": "retry", "failed": "gave_up"}
"""A notification's state after an attempt -> the attempt's outcome in watchfloor_webhook_deliveries_total."""
REPORTED_TYPES = ("alert.fired", "alert.updated")
"""Webhook types a report makes (a re-page or a resolution comes from the clock): post-to-webhook latency is theirs."""


def reporting_event_id(note: Notification) -> str | None:
    """The event whose report made this alert version, for the post-to-webhook latency: the newest report of the
    incident (`event_ids` is in arrival order). None for a re-page, a resolution, a source alert, or a replay
    (its latency is the operator's, not the pipeline's)."""
    if note.replay_base:
        return None
    body = orjson.loads(note.body)
    event_ids = body.get("data", {}).get("event_ids") or []
    return str(event_ids[-1]) if body.get("type") in REPORTED_TYPES and event_ids else None


SOURCE_ALERT_VERSION = {"raised": 1, "resolved": 2}
"""An operator alert on a source is owed like an alert: its watch_id as the alert id, raised as version 1 and
resolved as version 2, so one webhook-id per state, kept across retries and replays."""


def retry_delay(attempt: int, schedule: list[float], jitter: float, retry_after: float | None,
                retry_after_cap: float, rng: random.Random) -> float | None:
    """Seconds before attempt `attempt + 1` after attempt `attempt` failed, or None when none is left."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * rng.uniform(1 - jitter, 1 + jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return delay


@dataclass(frozen=True)
class Owing:
    """One alert version (or operator alert) to owe: the subscriptions it routes to, its body, and how to
    compose an email subscription's (`None`: no email)."""

    subs: list[Subscription]
    alert_id: str
    version: int
    body: str
    incident_severity: str | None
    mail: Callable[[Subscription], str] | None = None


class Dispatcher:
    """Consumer of wf:alerts (stage `deliver`) and the loop that sends what is owed."""

    def __init__(self, settings: AlertSettings, sessions: async_sessionmaker[AsyncSession],
                 rng: random.Random | None = None) -> None:
        self.settings, self.sessions = settings, sessions
        self.rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: webhook.Client | None = None
        self._stopping = False
        # One attempt's whole deadline (httpx's timeout is per read, so a receiver dripping bytes could hold a
        # request open for ever): the lease outlives it by a margin for the writes before and after, so a
        # second dispatcher never sends a notification whose attempt is still live.
        self.deadline_s = settings.webhook_timeout_seconds
        self.lease = timedelta(seconds=max(self.deadline_s, settings.smtp_timeout_seconds) + 30)
        self.smtp = smtp_config(settings)

    async def on_alert(self, alert: AlertMessage) -> int:
        """`on_alerts` for one."""
        return await self.on_alerts([alert])

    async def on_alerts(self, alerts: list[AlertMessage]) -> int:
        """Records one notification per matching subscription for each alert version (idempotent), in one
        transaction; wakes the sender at once. A muted version is owed to no one (it is in the event log and the
        console, with why). Returns how many notifications were created."""
        owed = []
        for alert in alerts:
            if alert.muted_by:
                logger.info("muted alert=%s v=%d kind=%s reason=\"%s\"", alert.alert_id[:8], alert.version,
                            alert.kind, alert.muted_by)
            else:
                owed.append(alert)
        if not owed:
            return 0
        now = datetime.now(UTC)
        async with session_scope(self.sessions) as session:
            # read once for the batch, then routed per alert as `subscriptions_for` does
            subscriptions = await store_subscriptions.list_subscriptions(session)
            notify = {rule_id: await store_rules.rule_notify(session, rule_id) for rule_id in {a.rule_id for a in owed}}
            counts = await self.owe_all(session, [Owing(
                routes(subscriptions, notify[alert.rule_id], alert.rule_id, alert.severity, alert.incident_severity,
                       include_disabled=True, event_type=alert_event_type(alert)),
                alert.alert_id, alert.version, webhook_body(alert), alert.incident_severity,
                self._alert_mail(alert)) for alert in owed], now)
        if any(created for created, _held, _missed in counts):
            self._wake.set()
        for alert, (created, held, missed) in zip(owed, counts, strict=True):
            logger.info("queued alert=%s v=%d kind=%s notifications=%d%s%s", alert.alert_id[:8], alert.version,
                        alert.kind, created, f" held_for_quiet_hours={held}" if held else "",
                        f" missed_by_disabled={missed}" if missed else "")
        return sum(created for created, _held, _missed in counts)

    async def owe_source_alert(self, session: AsyncSession, message: SourceWatchMessage, now: datetime) -> int:
        """Records what an operator alert on a source is owed to subscribers, in the caller's transaction (which
        also records the operator alert); call `wake()` after the commit. Held by quiet hours like severity I."""
        subs = source_routes(await store_subscriptions.list_subscriptions(session), message.event_type,
                             include_disabled=True)
        version = SOURCE_ALERT_VERSION[message.state]
        public_url = self.settings.public_url

        def mail(sub: Subscription) -> str:
            return compose.source_mail(message, message_id=ids.webhook_message_id(message.watch_id, version),
                                       tz=sub.tz, public_url=public_url, subscription_id=sub.id)

        [(created, _held, _missed)] = await self.owe_all(
            session, [Owing(subs, message.watch_id, version, source_webhook_body(message), None, mail)], now)
        return created

    def _alert_mail(self, alert: AlertMessage) -> Callable[[Subscription], str]:
        msg_id, public_url = ids.webhook_message_id(alert.alert_id, alert.version), self.settings.public_url

        def mail(sub: Subscription) -> str:
            return compose.alert_mail(alert, message_id=msg_id, tz=sub.tz, public_url=public_url,
                                      subscription_id=sub.id)
        return mail

    def wake(self) -> None:
        self._wake.set()

    async def owe_all(self, session: AsyncSession, items: "list[Owing]", now: datetime) -> list[tuple[int, int, int]]:
        """For each item, one notification per subscription, all in one statement (idempotent on subscription,
        alert, version): `missed` for a disabled one, due at the end of its quiet hours if held; a newer version
        supersedes older ones held or missed. An email subscription's body is `mail(sub)`; one that takes
        digests only is owed nothing. Returns (created, held, missed) per item."""
        rows: list[dict] = []
        kinds: list[list[tuple[tuple[int, str, int], str]]] = []  # per item: (row key, "owed" | "held" | "missed")
        supersede: list[tuple[Subscription, str, int]] = []
        for item in items:
            msg_id = ids.webhook_message_id(item.alert_id, item.version)
            mine = []
            for sub in item.subs:
                body = item.body
                if sub.channel == EMAIL:
                    if item.mail is None or not sub.immediate:
                        continue
                    body = item.mail(sub)
                due = None if not sub.enabled else hold_until(sub.quiet_hours, item.incident_severity, now)
                state = "pending" if sub.enabled else "missed"  # a disabled one's is owed if ops replay it
                rows.append(store_deliveries.notification_row(
                    subscription_id=sub.id, alert_id=item.alert_id, version=item.version, message_id=msg_id,
                    body=body, due=due or now, state=state))
                mine.append(((sub.id, item.alert_id, item.version),
                             "missed" if state == "missed" else "held" if due is not None else "owed"))
                if item.version > 1:  # a first version supersedes nothing
                    supersede.append((sub, item.alert_id, item.version))
            kinds.append(mine)
        made = await store_deliveries.add_notifications(session, rows)
        for sub, alert_id, version in supersede:
            if sub.enabled:
                await store_deliveries.supersede_held(session, subscription_id=sub.id, alert_id=alert_id,
                                                      version=version, now=now)
            else:
                await store_deliveries.supersede_missed(session, subscription_id=sub.id, alert_id=alert_id,
                                                        version=version)
        out = []
        for mine in kinds:
            created = sum(key in made and kind != "missed" for key, kind in mine)
            held = sum(kind == "held" for _key, kind in mine)  # as before: held whether new or a redelivery
            missed = sum(key in made and kind == "missed" for key, kind in mine)
            out.append((created, held, missed))
        return out

    async def start(self) -> None:
        self._stopping = False
        self._client = webhook.client(self.settings.webhook_timeout_seconds, self.settings.url_policy)
        self._task = asyncio.create_task(self.run(), name="webhook-dispatcher")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Lets attempts in flight finish for up to `grace_s`, then cancels them; a cancelled attempt is
        sent again after its lease (at-least-once; receivers de-duplicate on webhook-id)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            _done, pending = await asyncio.wait({self._task}, timeout=grace_s)
            await cancel_and_wait(pending)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> None:
        """Sends due notifications until stopped; sleeps until the next one is due, a new one is queued,
        or `dispatch_poll_seconds` passes (notifications queued by another process)."""
        errors = LoopErrors("dispatcher", logger)  # an outage logged when it starts and ends, not every pass
        while not self._stopping:
            self._wake.clear()
            try:
                sent, due = await self.send_due(), None
                if not sent:  # else the next pass comes at once: no need to know when the next is due
                    async with session_scope(self.sessions) as session:
                        due = await store_deliveries.next_due_at(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors.failed(exc)
                sent, due = 0, None
            else:
                errors.ok()
            if sent:
                continue
            wait = self.settings.dispatch_poll_seconds
            if due is not None:
                wait = min(wait, max(0.0, (due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see shared/periodic.py
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def send_due(self) -> int:
        """One pass: claims what is due, records each attempt as begun (committed before any request: a crash
        cannot hide it), sends them at once, then records the outcomes in one transaction. Returns how many were
        claimed."""
        now = datetime.now(UTC)
        async with session_scope(self.sessions) as session:
            claimed = await store_deliveries.claim_due(session, now, self.lease, self.settings.dispatch_concurrency)
            if not claimed:
                return 0
            subs = await store_subscriptions.get_subscriptions(session, {n.subscription_id for n in claimed})
            # disabled since the claim: waits, pending, until enabled
            ready = [n for n in claimed if (sub := subs.get(n.subscription_id)) is not None and sub.enabled]
            begun = await store_deliveries.begin_attempts(session, [n.id for n in ready], now)
        sent = await asyncio.gather(*(self._attempt(note, subs[note.subscription_id], *begun[note.id], now)
                                      for note in ready if note.id in begun))
        async with session_scope(self.sessions) as session:
            await store_deliveries.finish_attempts(session, [a.finished for a in sent])
            for a in sent:
                if a.result.disable_subscription:
                    await store_subscriptions.disable_subscription(session, a.sub.id, a.result.reason or "disabled",
                                                                   actor="dispatcher")
            reporting = {a.note.id: event_id for a in sent if a.state == "delivered" and a.sub.channel != EMAIL
                         and (event_id := reporting_event_id(a.note)) is not None}
            fetched = await store_deliveries.posts_fetched_at(session, sorted(set(reporting.values())))
        for a in sent:
            self._log(a.note, a.sub.id, a.attempt, a.result, a.state, a.delay, channel=a.sub.channel)
            metrics.count_delivery(a.sub.id, DELIVERY_OUTCOME[a.state])
            if (reported := fetched.get(reporting.get(a.note.id, ""))) is not None:
                metrics.observe_post_to_webhook(reported, a.answered_at)
        return len(claimed)

    async def _attempt(self, note: Notification, sub: Subscription, delivery_id: int, attempt: int,
                       attempted_at: datetime) -> "_Attempt":
        """One request (webhook or email), and what follows from its outcome."""
        assert self._client is not None, "Dispatcher.start() not called"
        if sub.channel == EMAIL:
            result = await self._send_mail(address_of(sub.url), note)
        else:
            result = await self._send(sub.url, signing_secrets(sub, attempted_at), note)
        answered_at = datetime.now(UTC)
        state, next_at, delay = self._next_state(result, attempt - note.replay_base)
        finished = store_deliveries.Finished(
            delivery_id, note.id, outcome=result.outcome.value, status_code=result.status_code,
            latency_ms=round(result.latency_ms, 1), error=result.reason, state=state, next_attempt_at=next_at,
            attempted_at=attempted_at)
        return _Attempt(note, sub, attempt, result, state, delay, answered_at, finished)

    async def _send(self, url: str, secrets: list[str], note: Notification) -> DeliveryOutcome:
        """One POST within the attempt's whole deadline (see `lease`)."""
        assert self._client is not None
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.deadline_s):
                return await webhook.deliver(self._client, url, secrets, note.message_id, note.body)
        except TimeoutError:
            elapsed = (asyncio.get_running_loop().time() - started) * 1000
            return DeliveryOutcome(Outcome.RETRY, None, elapsed,
                                   f"receiver did not finish answering within {self.deadline_s:g}s")

    async def _send_mail(self, address: str, note: Notification) -> DeliveryOutcome:
        """One email within the attempt's whole deadline (see `lease`): the stored message, addressed now."""
        started = asyncio.get_running_loop().time()
        message = compose.addressed(note.body, sender=self.smtp.sender, recipient=address, now=datetime.now(UTC))
        try:
            async with asyncio.timeout(self.smtp.timeout_s):
                return await smtp.deliver(self.smtp, message, address)
        except TimeoutError:
            elapsed = (asyncio.get_running_loop().time() - started) * 1000
            return DeliveryOutcome(Outcome.RETRY, None, elapsed,
                                   f"SMTP server did not finish within {self.smtp.timeout_s:g}s")

    def _next_state(self, result: DeliveryOutcome, attempt: int) -> tuple[str, datetime | None, float | None]:
        if result.outcome is Outcome.DELIVERED:
            return "delivered", None, None
        if result.outcome is Outcome.GAVE_UP:
            return "failed", None, None
        delay = retry_delay(attempt, self.settings.retry_schedule_seconds, self.settings.retry_jitter,
                            result.retry_after_s, self.settings.retry_after_cap_seconds, self.rng)
        if delay is None:
            return "failed", None, None
        return "pending", datetime.now(UTC) + timedelta(seconds=delay), delay

    def _log(self, note: Notification, sub_id: int, attempt: int, result: DeliveryOutcome, state: str,
             delay: float | None, channel: str = "webhook") -> None:
        where = f"sub={sub_id} alert={note.alert_id[:8]} v={note.alert_version} attempt={attempt}"
        fields = {"alert_id": note.alert_id, "version": note.alert_version, "subscription_id": sub_id,
                  "attempt": attempt, "outcome": result.outcome.value, "status_code": result.status_code}
        if result.outcome is Outcome.DELIVERED:
            logger.info("%s delivered %s %s %.0fms", channel, where, result.status_code, result.latency_ms,
                        extra={**fields, "latency_ms": round(result.latency_ms, 1)})
        elif state == "pending":
            logger.warning("%s retry %s reason=\"%s\" next_in=%s", channel, where, result.reason, _seconds(delay or 0),
                           extra={**fields, "reason": result.reason, "next_in_s": delay})
        else:
            logger.error("%s failed %s reason=\"%s\" kept for replay (notification=%d)%s", channel, where,
                         result.reason, note.id, " subscription disabled" if result.disable_subscription else "",
                         extra={**fields, "reason": result.reason, "notification_id": note.id})


@dataclass(frozen=True)
class _Attempt:
    """One attempt of a pass, sent, to be recorded (`finished`), logged and counted."""

    note: Notification
    sub: Subscription
    attempt: int
    result: DeliveryOutcome
    state: str
    delay: float | None
    answered_at: datetime
    finished: store_deliveries.Finished


def smtp_config(settings: AlertSettings) -> smtp.SmtpConfig:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return smtp.SmtpConfig(host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
                           username=settings.smtp_username, password=password,
                           sender=settings.smtp_from or "watchfloor@localhost", timeout_s=settings.smtp_timeout_seconds)


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f}s"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"
