"""A silent source is news, on real Redis, both databases and real HTTP servers on 127.0.0.1: a feed that posts
every 40 minutes goes quiet (then fails) and exactly one signed `source.silent` (`source.failing`) webhook reaches
the receiver, and one resolution when it speaks again; two ingest processes sweeping at once send nothing twice;
a subscription for `alert.*` hears none of it. Ingest and the alert service run in this process, as `watchfloor
up` runs them, so the clock can be moved by setting the source's columns."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import redis.asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from services.alert import commands
from services.ingest import store
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from shared import ids, streams
from shared.consumer import make_broker
from shared.db import session_scope
from shared.models import Notification, Source, SourceAlert, SourceWatchEvent
from tests.alert.conftest import Running, alert_settings, eventually, run_service
from tests.servers import FeedServer, Request, WebhookReceiver

GAP = timedelta(minutes=40)


def rss(count: int, newest: datetime) -> str:
    items = "".join(
        f"<item><title>Bulletin {n}</title><link>https://veille.example/b/{n}</link><guid>b-{n}</guid>"
        f"<pubDate>{format_datetime(newest - GAP * (count - 1 - n))}</pubDate><description>Point de situation "
        f"{n}.</description></item>" for n in range(count))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Veille</title>{items}</channel></rss>'


@dataclass
class Floor:
    ingest: IngestService
    second_ingest: IngestService
    alert: Running
    sessions: async_sessionmaker[AsyncSession]
    everything: WebhookReceiver
    secret: str
    alerts_only: WebhookReceiver

    async def set_source(self, source_id: str, **values: object) -> None:
        async with session_scope(self.sessions) as s:
            await s.execute(sa.update(Source).where(Source.id == source_id).values(**values))

    async def source(self, source_id: str) -> Source:
        async with session_scope(self.sessions) as s:
            found = await s.get(Source, source_id)
        assert found is not None
        return found

    async def sweep_twice_at_once(self) -> list:
        now = datetime.now(UTC)
        first, second = await asyncio.gather(self.ingest.watch.sweep(now), self.second_ingest.watch.sweep(now))
        return [*first, *second]

    async def webhooks(self, count: int) -> list[dict]:
        async def enough() -> list[Request]:
            posts = self.everything.posts()
            return posts if len(posts) >= count else []
        posts = await eventually(enough, within=10.0)
        return [Webhook(self.secret).verify(p.body, p.headers) | {"id": p.headers["webhook-id"]} for p in posts]

    async def settle(self) -> None:
        """Long enough for a duplicate to be sent, were one owed."""
        await asyncio.sleep(self.alert.settings.dispatch_poll_seconds * 6)


def ingest_settings(db_url: str, redis_url: str) -> IngestSettings:
    return IngestSettings(database_url=db_url, redis_url=redis_url, poll_tick_seconds=0.05,
                          fetch_timeout_seconds=2.0, requeue_after_seconds=0.0, source_watch_interval_seconds=3600)


@pytest.fixture
async def floor(db_url: str, redis_url: str, sessions: async_sessionmaker[AsyncSession],
                webhook_receiver: WebhookReceiver) -> AsyncIterator[Floor]:
    alerts_only = WebhookReceiver()
    async with AsyncExitStack() as stack:
        stack.callback(alerts_only.close)
        running = await stack.enter_async_context(run_service(alert_settings(redis_url, db_url), sessions))
        async with session_scope(sessions) as s:
            _sub, secret = await commands.add_subscription(s, webhook_receiver.url, name="ops")
            await commands.add_subscription(s, alerts_only.url, name="pager", events=["alert.*"],
                                            rule_ids=["issp-niamey-50km"])
        services = []
        for _ in range(2):  # two ingest processes on one database and one Redis
            broker = make_broker(redis_url)
            client = redis.asyncio.Redis.from_url(redis_url)
            await stack.enter_async_context(broker)
            await broker.start()
            svc = IngestService(ingest_settings(db_url, redis_url), broker, client, sessions)
            stack.push_async_callback(client.aclose)
            stack.push_async_callback(svc.stop)
            services.append(svc)
        yield Floor(services[0], services[1], running, sessions, webhook_receiver, secret, alerts_only)


async def _feed(floor: Floor, feed_server: FeedServer, name: str) -> str:
    url = feed_server.route(f"/{name}.rss", rss(20, datetime.now(UTC) - timedelta(minutes=5)))
    async with session_scope(floor.sessions) as s:
        src = await store.add_source(s, url, name=name)
    report = await floor.ingest.poll_once(src.id)
    assert (report.new, report.error) == (20, None)
    learned = await floor.source(src.id)
    assert learned.posts_learned == 20 and learned.gap_mean_seconds == pytest.approx(GAP.total_seconds())
    assert learned.last_post_at is not None and learned.watch_state is None
    return src.id


async def test_a_quiet_feed_raises_one_signed_source_silent_and_one_resolution_when_it_posts_again(
    floor: Floor, feed_server: FeedServer,
) -> None:
    source_id = await _feed(floor, feed_server, "veille-sahel")
    assert await floor.sweep_twice_at_once() == []                    # posting as usual

    # Ten hours without a new post, though polled all along (its last poll found nothing new).
    now = datetime.now(UTC)
    await floor.set_source(source_id, last_post_at=now - timedelta(hours=10), last_success_at=now)
    decided = await floor.sweep_twice_at_once()
    assert [(m.kind, m.state) for m in decided] == [("silent", "raised")]      # two sweepers, one decision
    raised = (await floor.webhooks(1))[0]
    assert raised["type"] == "source.silent"
    data = raised["data"]
    assert (data["source_id"], data["kind"], data["state"], data["source_url"]) == (
        source_id, "silent", "raised", feed_server.base_url + "/veille-sahel.rss")
    assert data["reason"] == ("quiet for 10 h; usually posts every 40 min, its longest daily gap typically 40 min "
                              "(learned from 20 posts)")
    assert raised["id"] == ids.webhook_message_id(data["watch_id"], 1)
    health = await floor.source(source_id)
    assert (health.watch_state, health.watch_id, health.watch_reason) == ("silent", data["watch_id"], data["reason"])

    assert await floor.sweep_twice_at_once() == []                    # still silent: nothing new
    await floor.ingest.poll_once(source_id)                           # polled, still nothing new
    await floor.settle()
    assert len(floor.everything.posts()) == 1

    # It speaks again: the poll that stores the post resolves it, at once.
    feed_server.route("/veille-sahel.rss", rss(21, datetime.now(UTC)))
    assert (await floor.ingest.poll_once(source_id)).new == 1
    both = await floor.webhooks(2)
    assert both[1]["type"] == "source.silent.resolved"
    assert both[1]["data"]["watch_id"] == data["watch_id"] and both[1]["data"]["resolved_reason"] == "posted again"
    assert both[1]["id"] == ids.webhook_message_id(data["watch_id"], 2)
    assert await floor.sweep_twice_at_once() == []
    await floor.settle()
    assert len(floor.everything.posts()) == 2
    assert floor.alerts_only.posts() == []                            # --events alert.*: no source.* webhook

    async with floor.sessions() as s:
        recorded = (await s.scalars(sa.select(SourceAlert))).all()
        owed = (await s.scalars(sa.select(Notification).order_by(Notification.id))).all()
    assert [(r.kind, r.state, r.resolved_reason) for r in recorded] == [("silent", "resolved", "posted again")]
    assert [(n.alert_id, n.alert_version, n.state) for n in owed] == [
        (data["watch_id"], 1, "delivered"), (data["watch_id"], 2, "delivered")]


async def test_a_feed_failing_for_hours_raises_one_source_failing_resolved_by_its_next_success(
    floor: Floor, feed_server: FeedServer,
) -> None:
    source_id = await _feed(floor, feed_server, "lake-chad")
    feed_server.route("/lake-chad.rss", "oops", status=500, content_type="text/plain")
    assert (await floor.ingest.poll_once(source_id)).error is not None
    first_failure = (await floor.source(source_id)).failing_since
    assert first_failure is not None
    await floor.ingest.poll_once(source_id)
    assert (await floor.source(source_id)).failing_since == first_failure   # the run's first failure stays
    assert await floor.sweep_twice_at_once() == []                          # failing, not for long

    await floor.set_source(source_id, failing_since=datetime.now(UTC) - timedelta(hours=4))
    decided = await floor.sweep_twice_at_once()
    assert [(m.kind, m.state) for m in decided] == [("failing", "raised")]
    raised = (await floor.webhooks(1))[0]
    assert raised["type"] == "source.failing"
    assert raised["data"]["reason"].startswith("failing for 4 h (2 polls failed): ")
    assert "500" in raised["data"]["reason"]
    await floor.ingest.poll_once(source_id)                                 # failing on: nothing new
    await floor.settle()
    assert len(floor.everything.posts()) == 1

    feed_server.route("/lake-chad.rss", rss(20, datetime.now(UTC) - timedelta(minutes=5)))
    report = await floor.ingest.poll_once(source_id)
    assert report.error is None
    both = await floor.webhooks(2)
    assert both[1]["type"] == "source.failing.resolved"
    assert both[1]["data"]["resolved_reason"] == "polled successfully"
    health = await floor.source(source_id)
    assert (health.watch_state, health.failing_since) == (None, None)
    assert await floor.sweep_twice_at_once() == []
    await floor.settle()
    assert len(floor.everything.posts()) == 2 and floor.alerts_only.posts() == []


async def test_a_disabled_source_never_alerts_and_its_raised_alert_is_resolved_by_the_next_sweep(
    floor: Floor, feed_server: FeedServer,
) -> None:
    source_id = await _feed(floor, feed_server, "gog-watch")
    now = datetime.now(UTC)
    await floor.set_source(source_id, last_post_at=now - timedelta(hours=10), last_success_at=now)
    assert len(await floor.sweep_twice_at_once()) == 1
    async with session_scope(floor.sessions) as s:
        await store.set_source_enabled(s, source_id, False, actor="test", now=now)
    resolved = await floor.sweep_twice_at_once()
    assert [(m.state, m.resolved_reason) for m in resolved] == [("resolved", "source disabled")]
    assert await floor.sweep_twice_at_once() == []
    kinds = [w["type"] for w in await floor.webhooks(2)]
    assert kinds == ["source.silent", "source.silent.resolved"]


async def test_a_watch_event_not_published_while_redis_was_away_is_published_by_the_next_sweep(
    floor: Floor, feed_server: FeedServer,
) -> None:
    source_id = await _feed(floor, feed_server, "ng-brief")
    now = datetime.now(UTC)
    await floor.set_source(source_id, last_post_at=now - timedelta(hours=10), last_success_at=now)
    published = floor.ingest.watch.outbox.publish

    async def redis_away(messages: list, at: datetime) -> int:
        return 0

    floor.ingest.watch.outbox.publish = redis_away  # type: ignore[method-assign]
    floor.second_ingest.watch.outbox.publish = redis_away  # type: ignore[method-assign]
    assert len(await floor.sweep_twice_at_once()) == 1
    async with floor.sessions() as s:
        assert [e.queued_at for e in (await s.scalars(sa.select(SourceWatchEvent))).all()] == [None]
    floor.ingest.watch.outbox.publish = published  # type: ignore[method-assign]
    assert await floor.ingest.watch.sweep(datetime.now(UTC)) == []       # nothing decided, the stranded one sent
    assert [w["type"] for w in await floor.webhooks(1)] == ["source.silent"]


async def test_a_poisoned_source_watch_message_is_parked_with_its_reason(floor: Floor) -> None:
    await floor.alert.broker.publish({"watch_id": "x", "kind": "asleep"}, stream=streams.SOURCE_WATCH)
    parked = await eventually(lambda: floor.alert.parked(streams.SOURCE_ALERTS))
    assert parked[0][b"reason"].startswith(b"invalid SourceWatchMessage")
    assert json.loads(parked[0][b"payload"])["kind"] == "asleep"
    assert parked[0][b"origin_stream"] == streams.SOURCE_WATCH.encode()
