"""`watchfloor up` on embedded defaults: SQLite and an embedded Redis under the data dir, no server
installed by hand. Ctrl-C stops it cleanly; started again it goes on where it stopped."""

import os
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import System, free_port, fresh_feed

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"

pytestmark = pytest.mark.e2e


@pytest.fixture
def embedded(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    # its record (watchfloor.locate) in a folder of its own, not the user's ~/.local/state nor another test's
    env.update({"WATCHFLOOR_DATA_DIR": str(tmp_path / "var"), "WATCHFLOOR_STATE_DIR": str(tmp_path / "state"),
                "WATCHFLOOR_LOG_FORMAT": "console",
                "WATCHFLOOR_RETRY_SCHEDULE_SECONDS": "[0.3, 0.6]", "WATCHFLOOR_MIN_INTERVAL_SECONDS": "1",
                # the feed and receiver below are on this machine: opted in as the README says for a local lab
                "WATCHFLOOR_ALLOW_PRIVATE_URLS": "127.0.0.1/32"})
    sys_ = System(env=env, port=free_port(), log=tmp_path / "up.log")
    yield sys_
    if sys_.process is not None and sys_.process.poll() is None:
        sys_.stop()


def test_up_runs_embedded_and_resumes_after_ctrl_c(embedded: System, feed_server, webhook_receiver) -> None:
    feed_url = feed_server.route("/sahel.xml", fresh_feed("niamey_vbied.rss.xml"))
    embedded.start()
    data_dir = Path(embedded.env["WATCHFLOOR_DATA_DIR"])
    assert (data_dir / "watchfloor.db").exists()
    assert (data_dir / "redis.sock").exists()

    console = httpx.get(embedded.base_url + "/", timeout=5)
    assert console.status_code == 200 and "text/html" in console.headers["content-type"]

    embedded.cli("rule", "add", str(RULE))
    embedded.cli("subscription", "add", webhook_receiver.url)
    embedded.cli("source", "add", feed_url, "--name", "sahel-wire", "--interval", "1")
    assert len(webhook_receiver.wait_for(1, timeout=10)) == 1, embedded.logs()
    # The CLI finds the embedded Redis of the running `up` through the data dir.
    assert embedded.cli("dlq", "list", "classify").returncode == 0

    assert embedded.stop() == 0, embedded.logs()
    assert not (data_dir / "redis.sock").exists(), "the embedded Redis was not stopped"

    embedded.start()
    hits = len(feed_server.hits("/sahel.xml"))
    webhook_receiver.wait_for(2, timeout=3)
    assert len(feed_server.hits("/sahel.xml")) > hits, "the source was not polled after the restart"
    assert len(webhook_receiver.posts()) == 1, "a restart re-sent an alert"
    assert [line.split()[0] for line in embedded.cli("rule", "list").stdout.splitlines()] == ["issp-niamey-50km"]
    assert len(httpx.get(embedded.base_url + "/api/alerts", timeout=5).json()) == 1
    assert embedded.stop() == 0, embedded.logs()
