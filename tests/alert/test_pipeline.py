"""The pipeline's outbox: a version committed but not published (Redis hiccup) still reaches wf:alerts, once."""

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands
from services.alert.app import StreamOutbox, decode_entry
from services.alert.pipeline import AlertPipeline, Rulebook, cluster_policy
from services.alert.rules import load_rule_text
from shared import streams
from shared.consumer import make_broker
from shared.db import session_scope
from shared.messages import AlertMessage
from tests.alert.conftest import alert_settings
from tests.alert.events import GAO, T0, event, vbied_niamey_en, vbied_niamey_fr
from tests.alert.test_rules import FIRST_RULE


class FlakyOutbox(StreamOutbox):
    """The real outbox, except that the first publish fails as when Redis drops the connection."""

    failures = 1

    async def publish(self, messages: list[AlertMessage], headers: list[dict[str, str]] | None = None) -> None:
        if self.failures and messages:
            self.failures -= 1
            raise ConnectionError("Redis connection reset")
        await super().publish(messages, headers)


async def test_version_committed_but_not_published_goes_out_once(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, None, actor="test")
    settings = alert_settings(redis_url, db_url)
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)
    try:
        async with broker:
            await broker.connect()
            pipeline = AlertPipeline(sessions, FlakyOutbox(broker, redis, settings),
                                     cluster_policy(25, 6 * 3600), Rulebook(0))
            with pytest.raises(ConnectionError):
                await pipeline.on_event(vbied_niamey_en())     # committed, not published: left for redelivery
            assert await redis.xlen(streams.ALERTS) == 0

            same_source = event("vbied-niamey-en-2", source="src-en", at=T0 + timedelta(minutes=20), killed=3)
            sent = await pipeline.on_event(same_source)         # the next report of the incident sends it
            assert [(m.kind, m.version) for m in sent] == [("fired", 1)]
            assert await pipeline.on_event(vbied_niamey_en()) == []     # the redelivery: nothing more
            rows = await redis.xrange(streams.ALERTS)
            assert [AlertMessage.model_validate_json(decode_entry(f[b"__data__"])).version
                    for _, f in rows] == [1]
    finally:
        await redis.aclose()


async def test_reports_after_the_rules_window_do_not_update_the_alert(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    short = FIRST_RULE + "window: 1s\n"
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(short), short, None, actor="test")
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)
    try:
        async with broker:
            await broker.connect()
            pipeline = AlertPipeline(sessions, StreamOutbox(broker, redis, alert_settings(redis_url, db_url)),
                                     cluster_policy(25, 6 * 3600), Rulebook(0))
            assert [m.version for m in await pipeline.on_event(vbied_niamey_en())] == [1]
            await asyncio.sleep(1.1)
            late = event("late-fr", source="src-fr", at=T0 + timedelta(hours=2), actors=())
            assert await pipeline.on_event(late) == []       # same incident, but the alert's window is over
    finally:
        await redis.aclose()


async def test_a_batch_decides_its_events_in_order_in_one_transaction_and_sends_each_alert_once(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Issue 11: three reports of one attack read together make one incident and one alert, whose versions all
    go out in order, as one by one; a report of another place makes its own incident."""
    import sqlalchemy as sa

    from shared.models import Incident

    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, None, actor="test")
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)
    try:
        async with broker:
            await broker.connect()
            pipeline = AlertPipeline(sessions, StreamOutbox(broker, redis, alert_settings(redis_url, db_url)),
                                     cluster_policy(25, 6 * 3600), Rulebook(0))
            batch = [vbied_niamey_en(),
                     event("vbied-niamey-fr", source="src-fr", at=T0 + timedelta(minutes=10), killed=3),
                     event("vbied-niamey-ar", source="src-ar", at=T0 + timedelta(minutes=20), killed=5)]
            sent = await pipeline.on_events(batch)
            assert len({m.alert_id for m in sent}) == 1  # one alert
            assert [m.version for m in sent] == list(range(1, len(sent) + 1)) and len(sent) > 1  # each version
            async with session_scope(sessions) as session:
                assert await session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 1
            rows = await redis.xrange(streams.ALERTS)
            assert [AlertMessage.model_validate_json(decode_entry(f[b"__data__"])).version
                    for _, f in rows] == [m.version for m in sent]
            assert await pipeline.on_events(batch) == []  # the batch redelivered: nothing more
    finally:
        await redis.aclose()


async def test_a_batch_ends_where_the_same_events_one_by_one_end(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Issue 11: an incident the batch opens is read from memory by the batch's later reports (joins, copies, an
    earlier original that takes the origin over, a toll that rises): the incidents, reports and alerts stored,
    and the versions published, are those that the same events handled one at a time leave."""
    import sqlalchemy as sa

    from shared.models import Alert, Incident, IncidentReport

    same = "Car bomb hits checkpoint on the outskirts of Niamey, witnesses say dozens were wounded"
    events = [
        event("a-en", source="src-en", killed=3, title=same),
        vbied_niamey_fr(),                                                                     # joins, no claim
        event("copy-of-a", source="src-copy", at=T0 + timedelta(minutes=30), killed=3, title=same),  # a copy
        event("original", source="src-orig", at=T0 - timedelta(minutes=20), killed=3, title=same),  # earlier
        event("gao", source="src-ml", place=GAO, tactics=("ied",), title="IED strikes convoy near Gao"),
        event("later", source="src-x", at=T0 + timedelta(hours=2), killed=7, title="Niamey toll rises to 7"),
    ]
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, None, actor="test")
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)

    async def stored() -> dict[str, list[tuple]]:
        async with session_scope(sessions) as session:
            def rows(stmt: sa.Select) -> list[tuple]:
                return sorted(tuple(r) for r in result[stmt])
            result = {}
            for stmt in (
                sa.select(Incident.id, Incident.report_count, Incident.source_count, Incident.severity,
                          Incident.corroboration, Incident.killed, Incident.version, Incident.actors),
                sa.select(IncidentReport.event_id, IncidentReport.incident_id, IncidentReport.origin_id,
                          IncidentReport.via),
                sa.select(Alert.id, Alert.rule_id, Alert.incident_id, Alert.version, Alert.state, Alert.muted_by),
            ):
                result[stmt] = (await session.execute(stmt)).all()
            return {name: rows(stmt) for name, stmt in zip(("incidents", "reports", "alerts"), result, strict=True)}

    async def wipe() -> None:
        async with session_scope(sessions) as session:
            for table in (Alert, IncidentReport, Incident):
                await session.execute(sa.delete(table))
        await redis.delete(streams.ALERTS, StreamOutbox.PUBLISHED)

    async def published() -> list[tuple]:
        out = []
        for _, f in await redis.xrange(streams.ALERTS):
            m = AlertMessage.model_validate_json(decode_entry(f[b"__data__"]))
            out.append((m.alert_id, m.version, m.change, m.source_ids, m.independent_source_ids, m.corroboration,
                        m.killed, m.report_count, m.event_ids))
        return out

    try:
        async with broker:
            await broker.connect()
            pipeline = AlertPipeline(sessions, StreamOutbox(broker, redis, alert_settings(redis_url, db_url)),
                                     cluster_policy(25, 6 * 3600), Rulebook(0))
            for e in events:
                await pipeline.on_event(e)
            one_by_one, sent_one_by_one = await stored(), await published()
            await wipe()
            await pipeline.on_events(events)
            assert await stored() == one_by_one
            assert await published() == sent_one_by_one
            assert len(one_by_one["incidents"]) == 2 and max(r[1] for r in one_by_one["incidents"]) == 5
            origins = {r[0].rstrip("0"): r[2].rstrip("0") for r in one_by_one["reports"]}
            assert origins["copy-of-a"] == origins["a-en"] == "original"  # the earlier one took the origin over
            assert max(v[1] for v in sent_one_by_one) > 1  # the alert was updated within the batch
    finally:
        await redis.aclose()
