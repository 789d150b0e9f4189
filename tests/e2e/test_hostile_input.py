"""Hostile input through the running system (`watchfloor up` in a subprocess, real Redis and databases):
a 1 MB post leaves `/health` answering within a second the whole time and is classified; an oversize body
gets 413 and a body with invalid text a 422, neither a 500, and the system goes on."""

import asyncio
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from shared.db import make_engine
from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

SENTENCE = "Gunmen attacked an army post near Ouallam, Niger, killing 12 soldiers; IS Sahel claimed the attack. "


EVENTS = "SELECT count(*) FROM events WHERE post_id = :p"
INCIDENT_REPORTS = "SELECT count(*) FROM incident_reports WHERE event_id = :p"  # event_id = post_id


async def _count(db_url: str, post_id: str, query: str = EVENTS) -> int:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(query), {"p": post_id})).scalar_one()
    finally:
        await engine.dispose()


def _event_count(db_url: str, post_id: str) -> int:
    return asyncio.run(_count(db_url, post_id))


def test_a_1mb_post_leaves_health_answering_and_is_classified(system: System, db_url: str) -> None:
    system.start()
    waits: list[float] = []
    stop = threading.Event()

    def watch_health() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                status = client.get(system.base_url + "/health").status_code
                waits.append(time.monotonic() - started if status == 200 else 99.0)
                time.sleep(0.05)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        text = (SENTENCE * (1_000_000 // len(SENTENCE) + 1))[:1_000_000]
        pushed = httpx.post(system.base_url + "/ingest", timeout=30,
                            json={"source": "flood", "title": "A very long post", "text": text})
        assert pushed.status_code == 202, pushed.text
        post_id = pushed.json()["post_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _event_count(db_url, post_id):
            time.sleep(0.2)
        assert _event_count(db_url, post_id) == 1
        # Watched a second more, and until it has answered more than 10 times: on a busy machine (tests in
        # parallel) each answer takes longer, and a second may hold fewer answers than the check below wants.
        settled = time.monotonic() + 1
        while time.monotonic() < settled or (len(waits) <= 10 and time.monotonic() < settled + 10):
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()
    assert len(waits) > 10 and max(waits) < 1.0, f"slowest /health answer {max(waits):.2f} s"

    too_big = httpx.post(system.base_url + "/ingest", timeout=30, content=b"x" * (9 * 1024 * 1024),
                         headers={"content-type": "application/json"})
    assert too_big.status_code == 413
    surrogate = httpx.post(system.base_url + "/ingest", timeout=5, headers={"content-type": "application/json"},
                           content=b'{"source": "flood", "text": "\\ud800"}')
    assert surrogate.status_code == 422 and "\\ud800" not in surrogate.text
    assert httpx.get(system.base_url + "/health/ready", timeout=5).status_code == 200


STOP_WITHIN_S = 10.0
"""Ctrl-C to exit, at most, while a message is being handled (normally 1-2 s; a handler gets 5 s to finish)."""


def test_ctrl_c_while_a_1mb_post_is_handled_stops_up_promptly_and_loses_nothing(system: System, db_url: str) -> None:
    """Ctrl-C right after the 202, while classify and alert handle the post: `up` exits 0 within STOP_WITHIN_S
    (it used to hang on a background loop that lost its cancellation: shared/periodic.py), and started again it
    has the post classified, once: what was not acked was handled again."""
    system.start()
    text = (SENTENCE * (1_000_000 // len(SENTENCE) + 1))[:1_000_000]
    pushed = httpx.post(system.base_url + "/ingest", timeout=30,
                        json={"source": "flood", "title": "A very long post", "text": text})
    assert pushed.status_code == 202, pushed.text
    post_id = pushed.json()["post_id"]
    started = time.monotonic()
    assert system.stop() == 0, system.logs()[-5000:]
    took = time.monotonic() - started
    assert took < STOP_WITHIN_S, f"`watchfloor up` took {took:.1f} s to stop:\n{system.logs()[-5000:]}"

    system.start()

    def handled() -> tuple[int, int]:  # the post's event (classify), and the event in an incident (alert)
        return _event_count(db_url, post_id), asyncio.run(_count(db_url, post_id, INCIDENT_REPORTS))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and handled() != (1, 1):
        time.sleep(0.2)
    assert handled() == (1, 1), system.logs()[-5000:]
