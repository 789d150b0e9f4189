"""N alert workers, one incident per attack: every report of an attack reaches a different worker at once.

Each worker is what one `watchfloor run alert` process holds: its own engine (connection pool), its own Redis
connection and broker, its own pipeline. They share only the database and Redis, as in production.
"""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands
from services.alert.app import StreamOutbox, decode_entry
from services.alert.dispatch import Dispatcher
from services.alert.pipeline import AlertPipeline, Rulebook, cluster_policy
from services.alert.rules import load_rule_text
from shared import streams
from shared.consumer import make_broker
from shared.db import make_engine, make_sessionmaker, session_scope
from shared.messages import AlertMessage, EventMessage
from shared.models import Incident, IncidentReport, Notification
from tests.alert.conftest import alert_settings
from tests.alert.events import T0, event

ANYWHERE = """\
id: issp-anywhere
name: ISSP activity anywhere
match:
  any:
    - actors: [ISSP]
severity: high
"""
ATTACKS = 50


def reports(attack: int, workers: int) -> list[EventMessage]:
    """`workers` outlets report attack `attack` at the same time, as classify emits them: same actor, tactic
    and time, places ~2 km apart (so some reports of one attack fall on either side of a grid line).
    Attacks are ~110 km apart: each is its own incident."""
    lat, lon = 12.0 + (attack // 10), -4.0 + (attack % 10)
    return [
        event(f"a{attack:03d}-w{w}", source=f"src-{w}", place=(f"Town {attack}", lat + 0.02 * w, lon, "ML"),
              at=T0 + timedelta(seconds=w), killed=3)
        for w in range(workers)
    ]


async def worker(db_url: str, redis_url: str, name: str, events: list[EventMessage]) -> None:
    """One alert worker handling its share of the stream, in order."""
    engine = make_engine(db_url)
    redis = Redis.from_url(redis_url)
    broker = make_broker(redis_url)
    settings = alert_settings(redis_url, db_url, consumer_name=name)
    try:
        async with broker:
            await broker.connect()
            pipeline = AlertPipeline(make_sessionmaker(engine), StreamOutbox(broker, redis, settings),
                                     cluster_policy(25, 6 * 3600), Rulebook(0))
            for message in events:
                await pipeline.on_event(message)
    finally:
        await redis.aclose()
        await engine.dispose()


@pytest.mark.parametrize("workers", [2, 4], ids=["2 workers", "4 workers"])
async def test_simultaneous_reports_on_several_workers_make_one_incident_and_one_page(
    workers: int, redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, load_rule_text(ANYWHERE), ANYWHERE, None, actor="test")
        for name in ("desk", "duty-officer"):
            await commands.add_subscription(session, f"https://hooks.example.org/{name}", name=name)
    attacks = [reports(i, workers) for i in range(ATTACKS)]

    await asyncio.gather(*(
        worker(db_url, redis_url, f"alert-{w}", [reports_[w] for reports_ in attacks]) for w in range(workers)
    ))

    async with sessions() as session:
        incidents = (await session.scalars(sa.select(Incident))).all()
        per_incident = Counter((await session.scalars(sa.select(IncidentReport.incident_id))).all())
    assert len(incidents) == ATTACKS, f"{len(incidents) - ATTACKS} duplicate incidents for {ATTACKS} attacks"
    assert sorted(per_incident.values()) == [workers] * ATTACKS      # every report joined its attack's incident

    # What subscribers are owed: the real Dispatcher turns each version on wf:alerts into notifications.
    redis = Redis.from_url(redis_url)
    try:
        published = [AlertMessage.model_validate_json(decode_entry(fields[b"__data__"]))
                     for _, fields in await redis.xrange(streams.ALERTS)]
    finally:
        await redis.aclose()
    dispatcher = Dispatcher(alert_settings(redis_url, db_url), sessions)
    for message in published:
        await dispatcher.on_alert(message)
    async with sessions() as session:
        owed = (await session.execute(sa.select(Notification.subscription_id, Notification.body))).all()
    pages = Counter(sub for sub, body in owed if '"type":"alert.fired"' in body)
    assert sorted(pages.values()) == [ATTACKS, ATTACKS], "one page per attack per subscription"
