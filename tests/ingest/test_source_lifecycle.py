"""`watchfloor source disable|enable|edit|remove` against the real poller, both databases and a real feed
server: a disabled or removed source is not polled, a removed source's posts stay, every change is audited."""


import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import IngestService
from shared.models import AuditEntry, Post
from tests.ingest.conftest import feed_bytes
from tests.servers import FeedServer


async def _posts(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int((await session.execute(sa.select(sa.func.count()).select_from(Post))).scalar_one())


async def test_a_disabled_source_is_not_polled_until_enabled(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, wf
) -> None:
    url = feed_server.route("/rss", feed_bytes("sahel_fr_ar.rss.xml"))
    await wf("source", "add", url, "--name", "veille-sahel", "--as-is")  # no discovery probe: hits count polls
    await wf("source", "disable", "veille-sahel")
    assert await service.drain() == []
    assert feed_server.hits("/rss") == []
    listed = await wf("source", "list")
    assert "veille-sahel" in listed.output and "disabled" in listed.output
    refused = await wf("source", "poll", "veille-sahel", ok=False)
    assert "is disabled; `watchfloor source enable veille-sahel`" in refused.output

    await wf("source", "enable", "veille-sahel")
    reports = await service.drain()
    assert [(r.source_id, r.new) for r in reports] == [("veille-sahel", 3)]
    assert len(feed_server.hits("/rss")) == 1


async def test_edit_moves_a_feed_and_remove_keeps_its_posts(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], feed_server: FeedServer, wf
) -> None:
    old = feed_server.route("/old", feed_bytes("sahel_fr_ar.rss.xml"), headers={"ETag": '"o1"'})
    new = feed_server.route("/new", feed_bytes("sahel_fr_ar.rss.xml"))
    await wf("source", "add", old, "--name", "veille-sahel", "--as-is")
    await service.drain()
    assert await _posts(sessions) == 3

    edited = await wf("source", "edit", "veille-sahel", "--url", new, "--interval", "600")
    assert f"veille-sahel {new} every 600s" in edited.output
    await service.drain()                                   # polled at the new address, at once
    assert len(feed_server.hits("/new")) == 1 and len(feed_server.hits("/old")) == 1
    assert "if-none-match" not in feed_server.hits("/new")[0].headers   # the old feed's ETag is forgotten
    assert await _posts(sessions) == 3                      # the same entries: not stored twice

    bad = await wf("source", "edit", "veille-sahel", "--interval", "1", ok=False)
    assert "too short" in bad.output

    removed = await wf("source", "remove", "veille-sahel")
    assert "its posts stay in the log" in removed.output
    assert "veille-sahel" not in (await wf("source", "list")).output
    await wf("source", "poll", "veille-sahel", ok=False)
    assert await service.drain() == []
    assert await _posts(sessions) == 3                      # the log keeps what it said

    await wf("source", "enable", "veille-sahel")            # restored
    assert "veille-sahel" in (await wf("source", "list")).output
    async with sessions() as session:
        audit = (await session.scalars(sa.select(AuditEntry).where(AuditEntry.target_kind == "source")
                                       .order_by(AuditEntry.id))).all()
    assert [a.action for a in audit] == ["source.edited", "source.removed", "source.enabled"]
    assert audit[2].detail == {"restored": True}


async def test_a_disabled_push_source_is_refused_until_enabled(
    service: IngestService, sessions: async_sessionmaker[AsyncSession], wf, redis_url: str
) -> None:
    import httpx
    from fastapi import FastAPI

    from tests.ingest.conftest import posts_on_stream

    app = FastAPI()
    app.include_router(service.router)
    post = {"source": "old-bridge", "text": "Tirs entendus à Gao ce matin"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as http:
        assert (await http.post("/ingest", json=post)).status_code == 202
        await wf("source", "disable", "old-bridge")
        refused = await http.post("/ingest", json={**post, "text": "Explosion à Gao"})
        assert refused.status_code == 409 and "source old-bridge is disabled" in refused.json()["detail"]
        await wf("source", "enable", "old-bridge")
        assert (await http.post("/ingest", json={**post, "text": "Explosion à Gao"})).status_code == 202
    assert len(await posts_on_stream(redis_url)) == 2
