"""`/metrics` of a running `watchfloor up` under a burst: 300 posts pushed at once through POST /ingest, /metrics
scraped all along. The lag of the classify or alert group rises above 0 while the burst is in, and is back to 0
after; each stage has handled every message; the post-to-webhook histogram counted each webhook the receiver got."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

RULE = Path(__file__).parent.parent.parent / "rules" / "issp-niamey-50km.yaml"
BURST = 300
WORDS = ("market", "road", "convoy", "patrol", "village", "school", "bridge", "river", "truck", "mosque", "clinic",
         "checkpoint", "harvest", "cattle", "well", "radio", "border", "camp", "fuel", "motorbike")


def _scrape(base_url: str, client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get(base_url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _lag(samples: dict, group: str) -> float:
    return max((v for (name, labels), v in samples.items()
                if name == "watchfloor_stream_lag" and ("group", group) in labels), default=0.0)


def _report(n: int, rng: random.Random) -> dict[str, str]:
    """Every tenth post an ISSP attack near Niamey from its own source, with words of its own: an independent report
    (not a copy, services/alert/copies.py), so it updates the incident's alert and a webhook goes out. The others
    report no attack: classified and passed on like any post, they cost the alert stage little."""
    tail = " ".join(rng.choice(WORDS) for _ in range(14))
    if n % 10:
        # each post its own source: concurrent pushes to one push source can deadlock on PostgreSQL (a separate
        # issue in ingest's store, reported), which this test is not about
        return {"source": f"wire-{n}", "text": f"Market day {n} in Dosso: prices of {tail} were discussed."}
    return {"source": f"wire-{n}",
            "text": f"IS Sahel fighters attacked an army post near Niamey, Niger; ISSP claimed the attack. "
                    f"Report {n}: {tail}."}


def test_metrics_show_the_lag_rise_under_a_burst_and_fall_after(system: System, webhook_receiver) -> None:
    # The default reclaim delay: the fixture's 1 s would have entries waiting in a batch reclaimed and handled
    # twice under the burst (at-least-once, harmless), and the handled counters would count those twice.
    system.env["WATCHFLOOR_CLAIM_IDLE_MS"] = "30000"
    system.start()
    system.cli("rule", "add", str(RULE))
    system.cli("subscription", "add", webhook_receiver.url)
    rng = random.Random(11)
    reports = [_report(n, rng) for n in range(BURST)]

    peaks = {"classify": 0.0, "alert": 0.0, "deliver": 0.0}
    stop = threading.Event()

    def scrape_all_along() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                samples = _scrape(system.base_url, client)
                for group in peaks:
                    peaks[group] = max(peaks[group], _lag(samples, group))
                time.sleep(0.05)

    scraper = threading.Thread(target=scrape_all_along)
    scraper.start()
    started = time.monotonic()
    try:
        with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda r: client.post(system.base_url + "/ingest", json=r, timeout=30).status_code,
                                    reports))
        assert answers == [202] * BURST
        pushed_in = time.monotonic() - started
        # Drained: every stage handled what it was given, nothing waits, every webhook sent is counted.
        with httpx.Client() as client:
            deadline = time.monotonic() + 60
            while True:
                samples = _scrape(system.base_url, client)
                handled = {stage: _get(samples, "watchfloor_messages_handled_total", stage=stage, outcome="ok")
                           for stage in ("classify", "alert", "deliver")}
                waiting = sum(v for (name, _), v in samples.items()
                              if name in ("watchfloor_stream_lag", "watchfloor_stream_pending"))
                delivered = _get(samples, "watchfloor_webhook_deliveries_total", subscription="1", outcome="delivered")
                if (handled["classify"] == handled["alert"] == BURST and not waiting and delivered
                        and delivered == len(webhook_receiver.posts()) == handled["deliver"]):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"not drained: handled={handled} waiting={waiting} delivered={delivered} "
                                         f"receiver={len(webhook_receiver.posts())}\n{system.logs()[-3000:]}")
                time.sleep(0.2)
    finally:
        stop.set()
        scraper.join()
    drained_in = time.monotonic() - started

    assert max(peaks["classify"], peaks["alert"]) > 0, f"no lag seen under the burst: {peaks}"
    assert all(_lag(samples, group) == 0 for group in peaks), samples
    assert _get(samples, "watchfloor_posts_total", kind="push", fate="new") == BURST
    assert _get(samples, "watchfloor_messages_handled_total", stage="classify", outcome="parked") == 0
    assert _get(samples, "watchfloor_dead_letters", stage="classify") == 0
    assert _get(samples, "watchfloor_classify_seconds_count") == BURST
    # every post went through a batch read and counted (a batch of one too), fewer batches than posts under load
    assert _get(samples, "watchfloor_batch_entries_sum", stage="classify") == BURST
    assert 1 <= _get(samples, "watchfloor_batch_seconds_count", stage="classify") < BURST
    webhooks = len(webhook_receiver.posts())
    assert _get(samples, "watchfloor_post_to_webhook_seconds_count") == webhooks > 1
    # Every latency counted ends at a 2xx within the test: none is longer than the whole burst.
    assert _get(samples, "watchfloor_post_to_webhook_seconds_bucket", le="60.0") == webhooks
    print(f"burst of {BURST}: peak lag {peaks}, {webhooks} webhooks, pushed in {pushed_in:.1f}s, "
          f"drained in {drained_in:.1f}s")
