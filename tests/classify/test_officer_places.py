"""The watch floor's own gazetteer: a village no package has, added by an officer, applies at once and places
the recent posts that named it, through the running classify service on real Redis and both databases."""

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.classify.app import ClassifyService
from services.classify.settings import ClassifySettings
from shared import placebook, streams
from shared.consumer import make_broker, publish
from shared.db import session_scope
from shared.messages import EventMessage, PostMessage
from shared.models import AuditEntry, Event, Post, Source
from tests.classify.test_app import wait_for

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
TITLE = "Gunmen kill 9 in Tillabéri village"
TEXT = ("Gunmen on motorbikes attacked the village of Kandagou in the Tillabéri region on Friday, killing nine "
        "civilians, local officials said.")
KANDAGOU = placebook.NewPlace("Kandagou", 14.62, 1.21, "NE", "officer's map, test fixture", admin1="Tillabéri")


def test_a_place_needs_a_reference_and_sane_fields() -> None:
    with pytest.raises(placebook.PlaceError, match="source"):
        placebook.NewPlace("Kandagou", 14.6, 1.2, "NE", " ").checked()
    with pytest.raises(placebook.PlaceError, match="lat"):
        placebook.NewPlace("Kandagou", 140.0, 1.2, "NE", "map").checked()
    with pytest.raises(placebook.PlaceError, match="country"):
        placebook.NewPlace("Kandagou", 14.6, 1.2, "Niger", "map").checked()
    assert placebook.NewPlace(" Kandagou ", 14.6, 1.2, "ne", "map", aliases=("Kandagu", "")).checked().aliases == (
        "Kandagu",)


@pytest.mark.parametrize("redis_blips", [False, True])
async def test_an_added_place_applies_without_restart_and_places_the_posts_that_named_it(
    redis_url: str, db_url: str, sessions: async_sessionmaker[AsyncSession], redis_blips: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `redis_blips`, re-publishing the re-resolved event fails once: the next round of the place watch
    publishes it, rather than taking the new place as done."""
    if redis_blips:
        from services.classify import app as classify_app

        real, failures = classify_app.publish, [ConnectionError("Connection closed by server.")]

        async def flaky(*args: object, **kwargs: object) -> None:
            message = args[2]
            if failures and getattr(message, "place", None) is not None:
                raise failures.pop()
            await real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(classify_app, "publish", flaky)
    settings = ClassifySettings(database_url=db_url, redis_url=redis_url, consumer_name="places-1",
                                places_reload_seconds=0.1)
    broker = make_broker(redis_url)
    redis = aioredis.Redis.from_url(redis_url)
    svc = ClassifyService(settings, broker, redis, sessions)
    post = PostMessage(post_id="c" * 64, source_id="relay", title=TITLE, text=TEXT, lang="en", published_at=NOW,
                       fetched_at=NOW)
    async with session_scope(sessions) as session:
        session.add(Source(id="relay", name="relay", kind="push", interval_seconds=0, enabled=True,
                           consecutive_failures=0, posts_seen=0))
        await session.flush()
        session.add(Post(id=post.post_id, source_id="relay", dedup_key="k", title=TITLE, text=TEXT, lang="en",
                         published_at=NOW, fetched_at=NOW))
    try:
        async with broker:
            await broker.start()
            await svc.start()
            await publish(broker, streams.POSTS, post, settings)

            async def first() -> Event | None:
                async with sessions() as session:
                    return await session.get(Event, post.post_id)

            row = await wait_for(first)
            assert row.is_event and row.place is None
            assert row.unresolved_place["name"] == "Kandagou"
            async with sessions() as session:
                todo = await placebook.unresolved(session, since=NOW - timedelta(days=1))
            assert [(u.name, u.admin1, u.country, u.mentions) for u in todo] == [("Kandagou", "Tillabéri", "NE", 1)]

            async with session_scope(sessions) as session:
                await placebook.add_place(session, KANDAGOU, actor="officer-ada")
            with pytest.raises(placebook.PlaceError, match="already"):
                async with session_scope(sessions) as session:
                    await placebook.add_place(session, KANDAGOU, actor="officer-ada")

            async def placed() -> Event | None:
                async with sessions() as session:
                    found = await session.get(Event, post.post_id)
                    await session.refresh(found) if found else None
                    return found if found and found.place else None

            row = await wait_for(placed)
            assert row.place["name"] == "Kandagou" and abs(row.place["lat"] - 14.62) < 1e-6
            assert row.unresolved_place is None

            # The event goes out again on wf:events, with its place, for the alert stage to place the incident.
            async def on_stream() -> list[str | None] | None:
                entries = await redis.xrange(streams.EVENTS)
                events = [EventMessage.model_validate_json(e[1][b"__data__"][e[1][b"__data__"].index(b"{"):])
                          for e in entries]
                names = [e.place.name if e.place else None for e in events if e.event_id == post.post_id]
                return names if names and names[-1] == "Kandagou" else None

            placed_on_stream = await wait_for(on_stream)
            assert placed_on_stream[0] is None and placed_on_stream[-1] == "Kandagou", placed_on_stream

            # A new post that names it is placed at once, and the place is audited and no longer to do.
            later = post.model_copy(update={"post_id": "d" * 64, "title": "Kandagou attacked again"})
            await publish(broker, streams.POSTS, later, settings)

            async def second() -> Event | None:
                async with sessions() as session:
                    return await session.get(Event, later.post_id)

            assert (await wait_for(second)).place["name"] == "Kandagou"
            async with sessions() as session:
                assert await placebook.unresolved(session, since=NOW - timedelta(days=1)) == []
                audit = (await session.scalars(sa.select(AuditEntry).where(AuditEntry.target_kind == "place"))).all()
            assert [(a.actor, a.action) for a in audit] == [("officer-ada", "place.added")]
    finally:
        await svc.stop()
        await redis.aclose()
