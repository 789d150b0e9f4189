"""The classify service on real Redis and both databases: posts in, events rows and wf:events out, poison parked."""

import asyncio
import json
from datetime import UTC, datetime

import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.classify.app import ClassifyService
from services.classify.settings import ClassifySettings
from shared import deadletter, streams
from shared.consumer import make_broker, publish
from shared.messages import EventMessage, PostMessage
from shared.models import Event

NOW = datetime(2026, 1, 29, 7, 10, tzinfo=UTC)


def make_post(n: int, title: str) -> PostMessage:
    return PostMessage(post_id=f"{n:064x}", source_id="test", title=title, fetched_at=NOW)


async def wait_for(predicate, within: float = 10.0):
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_post_becomes_event_row_and_message_and_poison_is_parked(
    redis_url: str,
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = ClassifySettings(
        database_url=db_url, redis_url=redis_url, claim_idle_ms=300, max_deliveries=2, consumer_name="t1"
    )
    broker = make_broker(redis_url)
    redis = aioredis.Redis.from_url(redis_url)
    svc = ClassifyService(settings, broker, redis, sessions)
    try:
        async with broker:
            await broker.start()
            await svc.start()
            await redis.xadd(streams.POSTS, {"__data__": b"{not json"})
            await redis.xadd(streams.POSTS, {"__data__": json.dumps({"post_id": "x"}).encode()})
            good = make_post(1, "Suicide car bomb hits army post near Niamey airport; IS Sahel claims it")
            await publish(broker, streams.POSTS, good, settings)

            async def stored() -> Event | None:
                async with sessions() as session:
                    return await session.get(Event, good.post_id)

            row = await wait_for(stored)
            assert row.is_event and row.perpetrator == "ISSP" and row.country == "NE"
            assert {t["code"] for t in row.tactics} >= {"vbied", "suicide_attack"}

            async def published() -> list:
                return await redis.xrange(streams.EVENTS)

            entries = await wait_for(published)
            raw = entries[0][1][b"__data__"]
            body = raw[raw.index(b"{") :]
            event = EventMessage.model_validate_json(body)
            assert event.event_id == good.post_id and event.perpetrator == "ISSP"

            parked = await deadletter.list_parked(redis, streams.CLASSIFY)
            reasons = sorted(p.reason for p in parked)
            assert len(parked) == 2
            assert reasons[0].startswith("invalid PostMessage") and reasons[1].startswith("not JSON")

            # Re-classifying the same post overwrites its row, never a second one.
            await publish(broker, streams.POSTS, good, settings)
            await wait_for(lambda: _count(redis))
            async with sessions() as session:
                assert (await session.execute(sa.select(sa.func.count()).select_from(Event))).scalar_one() == 1
            await svc.stop()
    finally:
        await redis.aclose()


async def _count(redis: aioredis.Redis) -> bool:
    return await redis.xlen(streams.EVENTS) >= 2


async def test_a_batch_is_stored_in_one_transaction_and_a_post_failing_it_is_parked_alone(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession], monkeypatch
) -> None:
    """Issue 11: posts read together are classified, upserted in one transaction and published together; one
    the database refuses fails alone (retried, then parked with the reason), the others are stored once."""
    from services.classify import store

    # Reclaimed after 1 s: sooner, on a busy machine (tests in parallel), the reclaimer takes entries the reader is
    # still handling one by one after the batch failed, and handles them a second time.
    settings = ClassifySettings(database_url=db_url, redis_url=redis_url, claim_idle_ms=1000, max_deliveries=2,
                                consumer_name="t1")
    posts = [make_post(100 + n, f"Suicide car bomb hits army post near Niamey, report {n}") for n in range(12)]
    bad = posts[5].post_id
    real, batches = store.upsert_events, []

    async def upsert_events(session, events):  # type: ignore[no-untyped-def]
        batches.append(len(events))
        if any(e.post_id == bad for e in events):
            raise ValueError("value too long for type character varying(64)")
        await real(session, events)

    monkeypatch.setattr(store, "upsert_events", upsert_events)
    broker = make_broker(redis_url)
    redis = aioredis.Redis.from_url(redis_url)
    svc = ClassifyService(settings, broker, redis, sessions)
    try:
        pipe = redis.pipeline(transaction=False)  # all on the stream before the consumer starts: read together
        for post in posts:
            pipe.xadd(streams.POSTS, {"__data__": post.model_dump_json(by_alias=True).encode()})
        await pipe.execute()
        async with broker:
            from shared.consumer import start_broker

            await start_broker(broker, redis)
            await svc.start()
            await wait_for(lambda: _parked(redis))

            async def stored() -> set[str]:
                async with sessions() as session:
                    return set((await session.scalars(sa.select(Event.post_id))).all())

            # The reclaimer parks the bad one while the reader may still be storing the others one by one.
            others = {p.post_id for p in posts} - {bad}
            await wait_for(lambda: _equals(stored, others))
            assert await stored() == others
            assert batches[0] == 12  # the whole batch in one upsert (then one by one after it failed)
            assert len(await redis.xrange(streams.EVENTS)) == 11
            [letter] = await deadletter.list_parked(redis, streams.CLASSIFY)
            assert letter.reason == "failed 2 times: ValueError: value too long for type character varying(64)"
            await svc.on_posts(posts[:3])  # a redelivered batch overwrites its rows, never adds
            async with sessions() as session:
                assert await session.scalar(sa.select(sa.func.count()).select_from(Event)) == 11
            await svc.stop()
    finally:
        await redis.aclose()


async def _equals(read, expected) -> bool:  # type: ignore[no-untyped-def]
    return await read() == expected


async def _parked(redis) -> bool:  # type: ignore[no-untyped-def]
    return bool(await deadletter.list_parked(redis, streams.CLASSIFY))
