"""The `Poller`: every tick, poll the due sources concurrently (bounded), each poll one line in the log.

    poll = host's turn ─▶ fetch ─▶ parse ─▶ normalise ─▶ screen ─▶ store new posts + source health + rhythm and watch
             (Redis)                       (lang hint)  (keep/block: kept out = recorded, not published)
                                                        │  (one transaction: source_watch.py)
                                                        └─▶ outbox: publish each new post once ─▶ mark queued

Politeness per host (politeness.py): at most `per_host_concurrency` fetches at once from this process, a
minimum spacing between requests to one host across every process, and a 429/503 Retry-After holds the
whole host. A poll whose host is not free for longer than `host_max_wait_seconds` is deferred, not failed.

A failing source never stops the loop: its reason goes into `sources.last_error`, it is logged at WARNING
when it changes (a repeated identical failure is not logged again), and it is retried with backoff.
"""

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.fetch import FeedFetchError, HttpClient, fetch_feed, make_client
from services.ingest.filters import PatternError, SourceFilter, kept_out_note, screen, source_filter
from services.ingest.normalise import dedup_keys, to_post
from services.ingest.outbox import PostOutbox
from services.ingest.parse import Entry, FeedParseError, parse_feed
from services.ingest.politeness import HostGate, host_of
from services.ingest.schedule import BackoffPolicy, PollOutcome, next_poll
from services.ingest.settings import IngestSettings
from services.ingest.source_watch import SourceWatch
from services.ingest.sources import KINDS, KindPage
from shared import metrics
from shared.db import session_scope
from shared.messages import PostMessage
from shared.models import Source
from shared.outage import LoopErrors, outage, unavailable
from shared.periodic import cancel_and_wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollReport:
    """What one poll did, as the log line and the CLI show it."""

    source_id: str
    new: int = 0
    seen: int = 0
    edited: int = 0  # stored posts whose text changed at the source (an edited Telegram message)
    not_modified: bool = False
    error: str | None = None
    next_poll_at: datetime | None = None
    elapsed_ms: float = 0.0
    deferred: bool = False  # not fetched: its host was not free soon enough; due again at next_poll_at
    dropped: int = 0  # items over max_entries_per_poll, not read
    kept_out: int = 0  # new posts the source's keep/block patterns kept out (recorded, not published)


def _utcnow() -> datetime:
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def kept_entries(entries: list[Entry], cap: int) -> tuple[list[Entry], str | None]:
    """At most `cap` entries, the newest: by date when every entry has one (some feeds list oldest first),
    else the first `cap` (feeds list newest first). With a warning for ops when some were dropped."""
    if len(entries) <= cap:
        return entries, None
    if all(e.published_at is not None for e in entries):
        order = sorted(range(len(entries)), key=lambda i: entries[i].published_at or _EPOCH, reverse=True)
        keep = sorted(order[:cap])  # newest, in the feed's own order
        kept = [entries[i] for i in keep]
    else:
        kept = entries[:cap]
    warning = (f"feed had {len(entries):,} items, kept the newest {cap:,}; raise WATCHFLOOR_MAX_ENTRIES_PER_POLL "
               "or poll more often")
    return kept, warning


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class Poller:
    """Polls due feed sources until stopped. `poll_once` and `drain` poll now (CLI, tests)."""

    def __init__(
        self,
        settings: IngestSettings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: PostOutbox,
        gate: HostGate,
        watch: SourceWatch,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._outbox = outbox
        self._watch = watch
        self._gate = gate
        self._policy = BackoffPolicy(cap_seconds=settings.backoff_cap_seconds)
        self._rng = rng or random.Random()
        self._client: HttpClient | None = None
        self._inflight: dict[str, asyncio.Task[PollReport]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._warned: dict[str, str] = {}
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._tick_lock = asyncio.Lock()
        self._requeued_at = float("-inf")  # monotonic time of the last outbox requeue
        self._tick_full = False  # the last tick claimed every free slot: more sources may be due

    # -- lifecycle --------------------------------------------------------------------------------------

    def _http(self) -> HttpClient:
        if self._client is None:
            self._client = make_client(self._settings)
        return self._client

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self.run(), name="ingest-poller")

    async def stop(self) -> None:
        """Stops the loop and any poll in flight (a cancelled poll's transaction rolls back; its lease
        expires and the source is polled again later), then closes the HTTP client."""
        await cancel_and_wait([self._loop_task, *self._inflight.values()])
        self._loop_task = None
        self._inflight.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client: HttpClient | None = None

    async def __aenter__(self) -> "Poller":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        errors = LoopErrors("poller", logger)  # the database down, say: keep ticking, log start and end once
        while True:
            try:
                await self.tick()
            except Exception as exc:
                errors.failed(exc)
                self._tick_full = False
            else:
                errors.ok()
            await self._until_next_tick()

    async def _until_next_tick(self) -> None:
        """Sleeps one tick, or, if the last tick filled every slot (a backlog), only until a poll ends and
        frees one: throughput is bounded by the polls, not by the tick."""
        inflight = list(self._inflight.values())
        if not (self._tick_full and inflight):
            await asyncio.sleep(self._settings.poll_tick_seconds)
            return
        await asyncio.wait(inflight, timeout=self._settings.poll_tick_seconds, return_when=asyncio.FIRST_COMPLETED)

    @property
    def _lease(self) -> timedelta:
        # Long enough for one whole fetch and the writes after it.
        return timedelta(seconds=self._settings.fetch_timeout_seconds + 60)

    async def tick(self, now: datetime | None = None) -> list[asyncio.Task[PollReport]]:
        """Re-publishes stranded posts (at most once per `poll_tick_seconds`), then starts polls for due
        sources, up to the free slots. One tick at a time per poller: a source claimed is in `_inflight` before
        another tick (or `drain`) looks."""
        async with self._tick_lock:
            now = now or _utcnow()
            if time.monotonic() - self._requeued_at >= self._settings.poll_tick_seconds:
                self._requeued_at = time.monotonic()
                await self._outbox.requeue(now, timedelta(seconds=self._settings.requeue_after_seconds))
            free = self._settings.poll_concurrency - len(self._inflight)
            if free <= 0:
                return []
            async with session_scope(self._sessions) as session:
                claimed = await store.claim_due_sources(session, now, now + self._lease, free)
            self._tick_full = len(claimed) == free
            started = []
            for source in claimed:
                task = asyncio.create_task(self._poll_guarded(source), name=f"poll-{source.id}")
                self._inflight[source.id] = task
                task.add_done_callback(lambda _t, sid=source.id: self._inflight.pop(sid, None))
                started.append(task)
            return started

    async def drain(self) -> list[PollReport]:
        """Polls every due source, and again while any is due, then publishes stranded posts: arq's burst
        mode. Returns one report per poll. A poll's slot is freed by its task's done-callback, so each round
        yields to the loop first; a round that starts nothing ends the drain only if no source is still due."""
        reports: dict[asyncio.Task[PollReport], PollReport] = {}
        for _round in range(10_000):  # bounded: sources back off or wait their interval, so this ends
            await asyncio.sleep(0)
            started = await self.tick()
            pending = [t for t in {*started, *self._inflight.values()} if t not in reports]
            if pending:
                for task, report in zip(pending, await asyncio.gather(*pending), strict=True):
                    reports[task] = report
                continue
            async with session_scope(self._sessions) as session:
                if not await store.due_sources(session, _utcnow(), 1):
                    break
            await asyncio.sleep(self._settings.poll_tick_seconds)
        await self._outbox.requeue(_utcnow(), timedelta(0))
        return list(reports.values())

    async def poll_once(self, source_id: str) -> PollReport:
        """Polls one source now, due or not. Raises `store.SourceError` if there is no such feed source."""
        async with session_scope(self._sessions) as session:
            source = await store.get_source(session, source_id)
        if source is None or source.kind == "push" or not source.url:
            raise store.SourceError(f"no feed source {source_id!r}; `watchfloor source list` shows them")
        running = self._inflight.get(source_id)
        if running is not None:
            return await running
        return await self._poll_guarded(source)

    async def _poll_kind(self, source: Source, client: HttpClient) -> KindPage:
        """A platform source's poll, through its kind's adapter (the caller holds the host's slot and turn)."""
        kind = KINDS.get(source.kind)
        if kind is None or not source.handle:
            raise FeedFetchError(source.url or source.id, f"unknown source kind {source.kind!r} (this ingest is older"
                                 " than the source; upgrade it)", retryable=False)
        return await kind.poll(client, source.handle, source.cursor, source.etag, source.last_modified,
                               self._settings)

    def _host(self, source: Source) -> str:
        """The host a poll of `source` asks: the feed's, or the platform's for a platform source."""
        kind = KINDS.get(source.kind)
        if kind is not None and source.handle:
            return host_of(kind.host_url(source.handle, self._settings))
        return host_of(source.url or "")

    # -- one poll ---------------------------------------------------------------------------------------

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        """Politeness: at most `per_host_concurrency` fetches at once to one host, however many of its feeds
        are due (hosts block pollers that open many connections at once: miniflux#3289)."""
        if host not in self._per_host:
            self._per_host[host] = asyncio.Semaphore(self._settings.per_host_concurrency)
        return self._per_host[host]

    async def _poll_guarded(self, source: Source) -> PollReport:
        try:
            return await self._poll(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a store failure: the lease expires and the source is polled again
            if (what := unavailable(exc)) is not None:
                outage(what).failed(exc, where=f"poll {source.id}")
            else:
                logger.exception("poll crashed source=%s reason=%r", source.id, f"{type(exc).__name__}: {exc}")
            return PollReport(source_id=source.id, error=f"{type(exc).__name__}: {exc}")

    async def _poll(self, source: Source) -> PollReport:
        started = time.perf_counter()
        now = _utcnow()
        assert source.url is not None  # push sources, the only ones without a URL, are never claimed
        outcome = PollOutcome(ok=True)
        error: str | None = None
        warning: str | None = None
        posts = []
        not_modified = False
        etag, last_modified = source.etag, source.last_modified
        seen = dropped = 0
        dropped_warning: str | None = None
        content_read = False
        revisions: list[PostMessage] = []
        patterns: SourceFilter | None = None
        cursor: str | None = None
        host = self._host(source)
        try:
            client = self._http()  # built before the turn: the request goes out as soon as the turn is taken
            async with self._host_slot(host):
                turn = await self._gate.wait_turn(host)
                if turn.deferred:
                    return await self._defer(source, turn.wait, started)
                now = _utcnow()  # after the wait: the poll happens now, and the interval counts from here
                if source.kind == "feed":
                    result = await fetch_feed(client, source.url, source.etag, source.last_modified,
                                              self._settings)
                else:
                    page = await self._poll_kind(source, client)
            entries: list[Entry] = []
            if source.kind == "feed":
                etag, last_modified, not_modified = result.etag, result.last_modified, result.not_modified
                if result.body is not None:
                    parsed = parse_feed(result.body, result.url, result.headers)
                    warning = parsed.warning
                    entries, dropped_warning = kept_entries(parsed.entries, self._settings.max_entries_per_poll)
                    dropped, content_read = len(parsed.entries) - len(entries), True
            else:
                etag, last_modified, not_modified = page.etag, page.last_modified, page.not_modified
                entries, dropped_warning = kept_entries(page.new, self._settings.max_entries_per_poll)
                dropped, content_read, cursor = len(page.new) - len(entries), True, page.cursor
                revisions = [to_post(e, source.id, now, lang_hint=source.lang) for e in page.seen]
            seen = len(entries) + len(revisions)
            keys = dedup_keys(entries)
            posts = [(to_post(e, source.id, now, k, lang_hint=source.lang), k) for e, k in zip(entries, keys,
                                                                                             strict=True)]
            patterns = source_filter(source.keep_patterns, source.block_patterns)
        except FeedFetchError as exc:
            error, outcome = exc.reason, PollOutcome(ok=False, retryable=exc.retryable, retry_after=exc.retry_after)
            if exc.retry_after is not None:  # the host asked every client to wait, not only this feed's
                await self._gate.hold(host, min(exc.retry_after, self._settings.backoff_cap_seconds))
        except (FeedParseError, PatternError) as exc:  # a stored pattern this RE2 refuses: fix it with source edit
            error, outcome = exc.reason, PollOutcome(ok=False, retryable=False)
            posts, revisions = [], []
        except Exception as exc:  # a parser bug on hostile bytes must not stop the other sources
            error, outcome = f"could not read feed: {type(exc).__name__}: {exc}", PollOutcome(ok=False)
            logger.exception("poll error source=%s", source.id)

        due = next_poll(source, outcome, now, self._policy, self._rng)
        kept_out: list[tuple[PostMessage, str, str]] = []
        note: str | None = None
        async with session_scope(self._sessions) as session:
            if posts and patterns is not None:
                # Only posts never seen are decided: one kept out or published before stays so, whatever the
                # patterns are now, and is not matched again on every poll.
                screened = screen(await store.unseen_posts(session, posts), patterns, self._settings.filter_max_chars)
                posts, kept_out = screened.kept, screened.kept_out
            new = await store.insert_new_posts(session, posts) if posts else []
            recorded = await store.insert_kept_out(session, kept_out, now) if kept_out else 0
            if recorded:
                note = kept_out_note([reason for _, _, reason in kept_out])
            edited = await store.update_changed_posts(session, revisions) if revisions else []
            await store.record_poll(
                session, source.id, now=now, next_poll_at=due, error=error, etag=etag,
                last_modified=last_modified, keep_validators=not_modified, new_posts=len(new), cursor=cursor,
                warning=dropped_warning, content_read=content_read, kept_out=recorded, kept_out_note=note,
            )
            # Only a poll that can change the watch looks (an uneventful 304 costs no more than before): new posts
            # to learn, an alert to resolve, or a run of failures that may have lasted long enough.
            eventful = new or source.watch_state is not None or (error is not None and source.failing_since)
            watched = await self._watch.after_activity(session, source.id, now, new) if eventful else []
        # After the commit: a crash here leaves the posts unqueued, and the outbox publishes them later.
        if new or edited:
            await self._outbox.publish([*new, *edited], now)
        await self._watch.publish(watched, now)
        elapsed = (time.perf_counter() - started) * 1000
        report = PollReport(source_id=source.id, new=len(new), seen=seen, not_modified=not_modified,
                            error=error, next_poll_at=due, elapsed_ms=elapsed, edited=len(edited), dropped=dropped,
                            kept_out=recorded)
        metrics.count_poll(source.kind, "error" if error is not None else "not_modified" if not_modified else "ok",
                           new=len(new), edited=len(edited), kept_out=recorded)
        if recorded:  # one line per pattern that decided, e.g. kept out source=x posts=2 by block pattern 'sport'
            for reason, count in Counter(reason for _, _, reason in kept_out).most_common():
                logger.info("kept out source=%s posts=%d %s", source.id, count, reason)
        if dropped_warning and source.last_warning is None:  # once, when it starts; health shows it meanwhile
            logger.warning("poll dropped items source=%s dropped=%d warning=%r", source.id, dropped, dropped_warning)
        self._log(source, report, warning, now)
        return report

    async def _defer(self, source: Source, wait: float, started: float) -> PollReport:
        """Gives the claimed source back, due when its host is free: waiting for a host is not a failure."""
        due = _utcnow() + timedelta(seconds=wait)
        async with session_scope(self._sessions) as session:
            await store.defer_poll(session, source.id, due)
        metrics.count_poll(source.kind, "deferred")
        logger.debug("poll deferred source=%s host_free_in=%s", source.id, _duration(wait))
        return PollReport(source_id=source.id, next_poll_at=due, deferred=True,
                          elapsed_ms=(time.perf_counter() - started) * 1000)

    def _log(self, source: Source, report: PollReport, warning: str | None, now: datetime) -> None:
        next_in = _duration(((report.next_poll_at or now) - now).total_seconds())
        if report.error is not None:
            failures = source.consecutive_failures + 1
            repeated = source.consecutive_failures > 0 and source.last_error == report.error
            logger.log(
                logging.DEBUG if repeated else logging.WARNING,
                "poll failed source=%s failures=%d next_in=%s reason=%r %.0fms",
                source.id, failures, next_in, report.error, report.elapsed_ms,
            )
            return
        if source.consecutive_failures:
            logger.info("poll recovered source=%s after=%d failures", source.id, source.consecutive_failures)
        if warning and self._warned.get(source.id) != warning:
            # not well-formed but read, or read in a guessed charset
            logger.warning("feed read with a warning source=%s warning=%r", source.id, warning)
        if warning:
            self._warned[source.id] = warning
        else:
            self._warned.pop(source.id, None)
        logger.info(
            "polled source=%s new=%d seen=%d 304=%s%s%s %.0fms",
            source.id, report.new, report.seen, "yes" if report.not_modified else "no",
            f" edited={report.edited}" if report.edited else "",
            f" kept_out={report.kept_out}" if report.kept_out else "", report.elapsed_ms,
        )
