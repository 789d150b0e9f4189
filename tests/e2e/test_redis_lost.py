"""Redis back without its data: what ingest had published and nobody had handled is published again.

Real processes on real Redis and SQLite/PostgreSQL: `watchfloor run ingest` alone (so posts wait on the stream
unhandled), then the Redis database is flushed, as a restart on a new volume would leave it.
"""

import time
from pathlib import Path

import httpx
import redis

from tests.e2e.conftest import System, start_healthy, stream_length


def test_posts_redis_lost_are_published_again(system: System, redis_url: str, tmp_path: Path) -> None:
    env = {**system.env, "WATCHFLOOR_CONSUMER_NAME": "ingest-1"}

    def log() -> str:
        return (tmp_path / "ingest.log").read_text()

    ingest, port = start_healthy(["run", "ingest", "--host", "127.0.0.1"], env, tmp_path / "ingest.log")
    try:
        for n in range(3):
            pushed = httpx.post(f"http://127.0.0.1:{port}/ingest",
                                json={"source": "bridge", "text": f"Explosion entendue à Gao, rapport {n}"})
            assert pushed.status_code == 202
        assert stream_length(redis_url, "wf:posts") == 3
        # The watch has seen its marker at least once (it sets it at its first look, every 2 s; later under load).
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not client.exists("wf:epoch:ingest"):
            time.sleep(0.1)
        client.close()
        assert time.monotonic() < deadline, "the ingest process never set its Redis epoch marker"
        redis.Redis.from_url(redis_url).flushdb()
        assert stream_length(redis_url, "wf:posts") == 0
        # The replay publishes, then logs how many it published: under load the line may come a moment later.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
                stream_length(redis_url, "wf:posts") < 3 or "published again" not in log()):
            time.sleep(0.2)
        assert stream_length(redis_url, "wf:posts") == 3
        logged = log()
        assert "Redis came back without its data" in logged and "published again 3 ingest messages" in logged
    finally:
        ingest.terminate()
        ingest.wait(20)
