"""Evaluating and sending in processes of their own, as docker-compose.yml runs them: `run alert --no-deliver`
decides the alert and sends nothing; the webhook leaves once a `run deliver` process is up, even one started
after the alert was made (the deliver group reads wf:alerts from its start).

Real processes on real Redis and SQLite/PostgreSQL: `run ingest`, `run classify`, `run alert --no-deliver`,
then `run deliver`.
"""

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import WATCHFLOOR, System, start_healthy, stream_length

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
POST = {"source": "bridge", "url": "https://example.org/niamey-airport",
        "text": "A suicide car bomb claimed by the Islamic State Sahel Province exploded at the gate of Niamey "
                "airport on Tuesday, killing four soldiers."}

pytestmark = pytest.mark.e2e


def test_alert_without_deliver_sends_nothing_until_a_deliver_process_runs(
        system: System, redis_url: str, webhook_receiver, tmp_path: Path) -> None:
    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url, "--secret", SECRET)
    started: list[subprocess.Popen] = []
    try:
        ingest, port = start_healthy(["run", "ingest", "--host", "127.0.0.1"], system.env, tmp_path / "ingest.log")
        started.append(ingest)
        started.append(start_healthy(["run", "classify", "--host", "127.0.0.1"], system.env,
                                     tmp_path / "classify.log")[0])
        alert, alert_port = start_healthy(["run", "alert", "--no-deliver", "--host", "127.0.0.1"], system.env,
                                          tmp_path / "alert.log")
        started.append(alert)
        assert "loop=uvloop" in (tmp_path / "alert.log").read_text()  # the services' event loop (pyproject.toml)

        assert httpx.post(f"http://127.0.0.1:{port}/ingest", json=POST).status_code == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stream_length(redis_url, "wf:alerts") == 0:
            time.sleep(0.1)
        assert stream_length(redis_url, "wf:alerts") == 1, (tmp_path / "alert.log").read_text()
        # The alert worker decided and published the alert; with --no-deliver it owes and sends nothing.
        assert webhook_receiver.wait_for(1, timeout=2) == []
        listed = system.cli("alerts").stdout
        assert "issp-niamey-50km" in listed, listed

        # ...and says that nobody takes what it hands on: in /health, /health/ready (a warning: still ready),
        # /metrics and its log.
        [waiting] = httpx.get(f"http://127.0.0.1:{alert_port}/health").json()["downstream"]
        assert (waiting["stream"], waiting["group"], waiting["lag"], waiting["readers"]) == (
            "wf:alerts", "deliver", 1, 0), waiting
        assert "start `watchfloor run deliver`" in waiting["problem"]
        ready = httpx.get(f"http://127.0.0.1:{alert_port}/health/ready")
        assert ready.status_code == 200 and ready.json()["warnings"] == [waiting["problem"]], ready.text
        scraped = httpx.get(f"http://127.0.0.1:{alert_port}/metrics").text
        assert 'watchfloor_stream_readers{group="deliver",stream="wf:alerts"} 0.0' in scraped
        assert 'watchfloor_stream_lag{group="deliver",stream="wf:alerts"} 1.0' in scraped
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "nobody consumes deliver" not in (tmp_path / "alert.log").read_text():
            time.sleep(0.2)
        assert "nobody consumes deliver" in (tmp_path / "alert.log").read_text()

        started.append(start_healthy(["run", "deliver", "--host", "127.0.0.1"], system.env,
                                     tmp_path / "deliver.log")[0])
        posts = webhook_receiver.wait_for(1, timeout=15)
        assert len(posts) == 1, (tmp_path / "deliver.log").read_text()
        payload = Webhook(SECRET).verify(posts[0].body, posts[0].headers)
        assert payload["type"] == "alert.fired" and payload["data"]["rule_id"] == "issp-niamey-50km"
        assert webhook_receiver.wait_for(2, timeout=1.5) == posts  # once
        [taken] = httpx.get(f"http://127.0.0.1:{alert_port}/health").json()["downstream"]
        assert taken["readers"] >= 1 and taken["lag"] == 0 and taken["problem"] is None, taken
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_no_deliver_is_refused_beside_another_service(system: System) -> None:
    done = subprocess.run([WATCHFLOOR, "run", "classify", "--no-deliver"], env=system.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--no-deliver goes with `run alert` only" in done.stderr
