"""A database outage as users and ops see it: 503 with Retry-After on HTTP, and two log lines, not a storm."""

import asyncio
import logging
import shutil
from pathlib import Path

import httpx
import pytest

from services.alert.dispatch import Dispatcher
from services.alert.settings import AlertSettings
from shared.db import make_engine, make_sessionmaker, migrate
from watchfloor.runtime import build_app


@pytest.fixture(params=["sqlite", "postgresql"])
async def down_db(request: pytest.FixtureRequest, tmp_path: Path):
    """(url, sessions, bring_back) for a database that cannot be reached: a SQLite file whose volume is gone,
    or PostgreSQL on a port nothing listens on (the shared server cannot be stopped)."""
    if request.param == "sqlite":
        volume = tmp_path / "volume"
        url = f"sqlite+aiosqlite:///{volume / 'watchfloor.db'}"
        engine = make_engine(url)  # creates the folder...
        shutil.rmtree(volume)  # ...which goes away, as an unmounted volume would

        async def bring_back() -> None:
            volume.mkdir()
            restored = make_engine(url)
            await migrate(restored)
            await restored.dispose()
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/watchfloor"
        engine = make_engine(url)
        bring_back = None
    yield url, make_sessionmaker(engine), bring_back
    await engine.dispose()


def _outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database unavailable")]
    ended = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database back after")]
    return started, ended


async def test_http_answers_503_with_retry_after_and_logs_the_outage_once(down_db, redis_url, caplog) -> None:
    caplog.set_level(logging.INFO)
    _url, sessions, _back = down_db
    app, _services = build_app(("ingest",), {}, redis_url, sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as http:
        answers = [await http.post("/ingest", json={"source": "sms-relay", "text": f"Tirs à Gao {n}"})
                   for n in range(3)]
        live = await http.get("/health")
        ready = await http.get("/health/ready")
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["detail"] == "database unavailable, retry later"
    assert live.status_code == 200  # the process lives: do not restart it for the database's sake
    assert ready.status_code == 503
    assert ready.json()["problems"][0].startswith("database unavailable: ")
    started, _ended = _outage_lines(caplog)
    assert len(started) == 1, started
    assert "noticed_by=POST /ingest" in started[0]
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per request


async def test_the_dispatcher_logs_an_outage_once_when_it_starts_and_once_when_it_ends(down_db, caplog) -> None:
    caplog.set_level(logging.INFO)
    _url, sessions, bring_back = down_db
    dispatcher = Dispatcher(AlertSettings(dispatch_poll_seconds=0.05), sessions)
    await dispatcher.start()
    try:
        await asyncio.sleep(1.0)  # some twenty passes, every one failing
        started, ended = _outage_lines(caplog)
        assert len(started) == 1 and ended == [], started
        assert not [r for r in caplog.records if r.exc_info]
        if bring_back is None:
            return
        await bring_back()
        for _ in range(100):
            if _outage_lines(caplog)[1]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await dispatcher.stop()
    started, ended = _outage_lines(caplog)
    assert len(started) == 1 and len(ended) == 1, (started, ended)
    assert ended[0].startswith("database back after ") and ended[0].endswith(" s")
