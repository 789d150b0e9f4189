"""Redis back without its data: what ingest had published and nobody had handled is published again.

Real processes on real Redis and SQLite/PostgreSQL: `watchfloor run ingest` alone (so posts wait on the stream
unhandled), then the Redis database is flushed, as a restart on a new volume would leave it.
"""

import time
from pathlib import Path

import httpx
import redis

from tests.e2e.conftest import System, start_healthy


def _posts_on_stream(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return client.xlen("wf:posts") if client.exists("wf:posts") else 0
    finally:
        client.close()


def test_posts_redis_lost_are_published_again(system: System, redis_url: str, tmp_path: Path) -> None:
    env = {**system.env, "WATCHFLOOR_CONSUMER_NAME": "ingest-1"}
    ingest, port = start_healthy(["run", "ingest", "--host", "127.0.0.1"], env, tmp_path / "ingest.log")
    try:
        for n in range(3):
            pushed = httpx.post(f"http://127.0.0.1:{port}/ingest",
                                json={"source": "bridge", "text": f"Explosion entendue à Gao, rapport {n}"})
            assert pushed.status_code == 202
        assert _posts_on_stream(redis_url) == 3
        time.sleep(2.5)  # the watch has seen its marker at least once
        redis.Redis.from_url(redis_url).flushdb()
        assert _posts_on_stream(redis_url) == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _posts_on_stream(redis_url) < 3:
            time.sleep(0.2)
        assert _posts_on_stream(redis_url) == 3
        logged = (tmp_path / "ingest.log").read_text()
        assert "Redis came back without its data" in logged and "published again 3 ingest messages" in logged
    finally:
        ingest.terminate()
        ingest.wait(20)
