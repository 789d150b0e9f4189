"""The alert service's HTTP routes served by uvicorn on 127.0.0.1, and API tokens made as `watchfloor token add`
makes them: helpers shared by the API, access and event-log tests."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.classify import store as classify_store
from shared import access, store_access
from shared.db import session_scope
from shared.messages import EventMessage
from shared.models import Post, Source
from tests.alert.conftest import Running, eventually


async def make_token(sessions: async_sessionmaker[AsyncSession], name: str, role: str) -> str:
    """A token for `name` with `role`, stored as the CLI stores it; returns the secret."""
    made = access.new_token(role)
    async with session_scope(sessions) as session:
        await store_access.create_token(session, name=name, role=role, digest=made.digest, prefix=made.prefix,
                                        created_by="test")
    return made.secret


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def server(running: Running) -> AsyncIterator[uvicorn.Server]:
    app = FastAPI()
    app.include_router(running.service.router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server))
    yield server
    server.should_exit = True
    await running.service.stop()            # ends open streams, so uvicorn can finish
    await asyncio.wait_for(task, 10)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@pytest.fixture
def base_url(server: uvicorn.Server) -> str:
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


async def log_event(sessions: async_sessionmaker[AsyncSession], event: EventMessage) -> None:
    """Writes what ingest and classify write for a post before the alert service sees its event: the source,
    the post (title, text, link) and the `events` row."""
    async with session_scope(sessions) as session:
        if await session.get(Source, event.source_id) is None:
            session.add(Source(id=event.source_id, name=event.source_id, url=None, kind="push"))
            await session.flush()
        if await session.get(Post, event.post_id) is None:
            session.add(Post(id=event.post_id, source_id=event.source_id, dedup_key=event.post_id, url=event.url,
                             title=event.title, text=event.text, lang=event.lang, published_at=event.published_at,
                             fetched_at=event.fetched_at or event.classified_at))
        await classify_store.upsert_event(session, event)


async def publish_logged(running: Running, event: EventMessage) -> bytes:
    """The event in the event log, then on wf:events: as it happens in the running system."""
    await log_event(running.sessions, event)
    return await running.publish_event(event)
