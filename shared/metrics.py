"""Every metric `/metrics` exposes, defined once (Prometheus text format, prometheus-client).

Two kinds, because they answer different questions:

    counted here, per process     messages handled per stage, polls, posts, classify time, deliveries,
      (REGISTRY)                  post-to-webhook latency: each process counts what *it* did; Prometheus
                                  scrapes every process and sums (`sum by (stage) (rate(...))`)
    read at scrape time           stream lag and pending per consumer group, dead letters, sources failing or
      (StateCollector)            silent, subscriptions disabled: shared state, the same seen from every
                                  process that reports it; aggregate with `max`, never `sum`

`watchfloor up` runs every service in one process, so one endpoint carries every series; in the compose topology
each service's process is its own target. No label carries a post, event or alert id: label values are bounded
(stages, groups, source kinds, outcomes, the few subscription ids).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What `generate_latest` writes: the classic text format every Prometheus reads (the client's own
CONTENT_TYPE_LATEST now names version 1.0.0, which older servers do not know)."""
disable_created_metrics()  # a `_created` series per counter doubles the output for a start time nobody graphs

REGISTRY = CollectorRegistry()
"""This process's counters and histograms (and the client's process_* and python_* series)."""
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

MESSAGE_OUTCOMES = ("ok", "retried", "parked")
POLL_OUTCOMES = ("ok", "not_modified", "error", "deferred")
POST_FATES = ("new", "edited", "kept_out")
DELIVERY_OUTCOMES = ("delivered", "retry", "gave_up")

messages_handled = Counter(
    "watchfloor_messages_handled_total",
    "Stream messages a stage finished with, by outcome: ok (handled and acked), retried (left pending for the "
    "reclaimer: a handler error, or the database or Redis down), parked (sent to wf:dlq:<stage>). Throughput per "
    "stage, and the first sign of a stage that fails.",
    ["stage", "outcome"], registry=REGISTRY,
)
polls = Counter(
    "watchfloor_polls_total",
    "Source polls by source kind (feed, telegram, mastodon, bluesky, gdelt) and outcome: ok (content read), "
    "not_modified (304 or nothing new from a platform), error (fetch or parse failed), deferred (its host was not "
    "free in time). A kind whose error rate rises is a platform changing under us.",
    ["kind", "outcome"], registry=REGISTRY,
)
posts = Counter(
    "watchfloor_posts_total",
    "Posts ingest took in, by source kind (push for POST /ingest) and fate: new (stored and published), edited (a "
    "stored post whose text changed, published again), kept_out (a source's keep/block patterns kept it out).",
    ["kind", "fate"], registry=REGISTRY,
)
classify_seconds = Histogram(
    "watchfloor_classify_seconds",
    "Seconds the classify stage spent on one post: classification, storing its events and publishing them (the "
    "`classified` log line's figure). Its tail is what a hostile or huge post costs.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY,
)
post_to_webhook_seconds = Histogram(
    "watchfloor_post_to_webhook_seconds",
    "Seconds from the moment watchfloor took in the post that fired or updated an alert (posts.fetched_at: the "
    "POST /ingest arrival, or the start of the poll that read it) to the 2xx of the receiver, for each alert "
    "version delivered to a subscription (first delivery only: replays are not counted; retries and quiet-hours "
    "holds are, as the receiver lived them). The watch floor's promise: <= 10 s at p95.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0), registry=REGISTRY,
)
batch_seconds = Histogram(
    "watchfloor_batch_seconds",
    "Seconds a stage spent on one batch of stream entries read together, from the read to the ack (decoding, the "
    "handler and its commit). Its rise under a steady load is a stage slowing down before its lag shows it.",
    ["stage"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY,
)
batch_entries = Histogram(
    "watchfloor_batch_entries",
    "Stream entries in each batch a stage handled (at most WATCHFLOOR_BATCH_SIZE): full batches mean a backlog.",
    ["stage"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=REGISTRY,
)
deliveries = Counter(
    "watchfloor_webhook_deliveries_total",
    "Webhook attempts by what became of their notification: delivered (2xx), retry (failed, another attempt is "
    "scheduled), gave_up (failed for good: a 4xx, 410, a refused address, or the last scheduled attempt). By "
    "subscription id: subscriptions are few, and a failing receiver is one of them.",
    ["subscription", "outcome"], registry=REGISTRY,
)


def count_message(stage: str, outcome: str, count: int = 1) -> None:
    """`count` stream messages done with by `stage`: ok, retried or parked."""
    messages_handled.labels(stage=stage, outcome=outcome).inc(count)


def observe_batch(stage: str, entries: int, seconds: float) -> None:
    """One batch handled and acked by `stage`."""
    batch_seconds.labels(stage=stage).observe(seconds)
    batch_entries.labels(stage=stage).observe(entries)


def count_poll(kind: str, outcome: str, *, new: int = 0, edited: int = 0, kept_out: int = 0) -> None:
    """One poll of a source of `kind` and the posts it took in."""
    polls.labels(kind=kind, outcome=outcome).inc()
    count_posts(kind, new=new, edited=edited, kept_out=kept_out)


def count_posts(kind: str, *, new: int = 0, edited: int = 0, kept_out: int = 0) -> None:
    for fate, n in (("new", new), ("edited", edited), ("kept_out", kept_out)):
        if n:
            posts.labels(kind=kind, fate=fate).inc(n)


def count_delivery(subscription_id: int, outcome: str) -> None:
    """One webhook attempt, by what became of its notification: delivered, retry or gave_up."""
    deliveries.labels(subscription=str(subscription_id), outcome=outcome).inc()


def observe_post_to_webhook(fetched_at: datetime, answered_at: datetime) -> None:
    post_to_webhook_seconds.observe(max(0.0, (answered_at - fetched_at).total_seconds()))


# -- read at scrape time ---------------------------------------------------------------------------------------

STATE_METRICS = {
    "watchfloor_stream_lag": "Entries of the stream not yet delivered to the consumer group (XINFO GROUPS lag): "
                             "work waiting for a stage. Growing for minutes: the stage cannot keep up.",
    "watchfloor_stream_pending": "Entries delivered to the group and not acked yet (XINFO GROUPS pending): in "
                                 "hand, or waiting for the reclaimer after a failure.",
    "watchfloor_stream_readers": "Consumers of the group that tried to read in the last minute or more (the "
                                 "reader's stuck limit), shown by the processes that feed the group: 0 with a lag "
                                 "means no process consumes it (a `run alert --no-deliver` with no `run deliver`).",
    "watchfloor_dead_letters": "Entries in the stage's dead-letter stream wf:dlq:<stage> (XLEN): messages it could "
                               "not process, kept with their reason until replayed.",
    "watchfloor_sources_failing": "Sources with an operator alert `failing` raised (their polls have failed for "
                                  "WATCHFLOOR_FAILING_AFTER_SECONDS).",
    "watchfloor_sources_silent": "Sources with an operator alert `silent` raised (quiet for much longer than their "
                                 "rhythm).",
    "watchfloor_subscriptions_disabled": "Webhook subscriptions disabled (by a 410 from the receiver, or by hand), "
                                         "not removed: alerts they miss are only recorded.",
    "watchfloor_scrape_error": "1 when this scrape could not read a dependency (redis, database) in time: the series "
                               "read from it are missing from this scrape, not zero.",
    "watchfloor_info": "1, labelled with this process's version and the services it runs.",
}


@dataclass(frozen=True)
class GroupReading:
    stage: str
    stream: str
    group: str
    lag: int | None  # None: Redis cannot tell (entries deleted past the group's position)
    pending: int | None
    dead_letters: int | None
    readers: int | None = None  # read only for the groups this process feeds (shared.health.view_downstream)


@dataclass(frozen=True)
class StateReading:
    """The shared state as read for one scrape; a None section was not read (not this process's, or failed)."""

    version: str
    services: str
    groups: list[GroupReading] = field(default_factory=list)
    sources: dict[str, int] | None = None  # watch state -> sources
    subscriptions_disabled: int | None = None
    errors: dict[str, bool] = field(default_factory=dict)  # dependency -> could not be read


class StateCollector(Collector):
    """Turns one `StateReading` into gauges. Reading is async (Redis, the database) and a Collector's `collect`
    is not, so the reading is taken first (shared.health.state_reading) and this only formats it."""

    def __init__(self, reading: StateReading) -> None:
        self.reading = reading

    def collect(self) -> Iterator[Metric]:
        r = self.reading
        info = GaugeMetricFamily("watchfloor_info", STATE_METRICS["watchfloor_info"], labels=["version", "services"])
        info.add_metric([r.version, r.services], 1)
        yield info
        errors = GaugeMetricFamily("watchfloor_scrape_error", STATE_METRICS["watchfloor_scrape_error"],
                                   labels=["dependency"])
        for dependency, failed in sorted(r.errors.items()):
            errors.add_metric([dependency], 1 if failed else 0)
        yield errors
        lag = GaugeMetricFamily("watchfloor_stream_lag", STATE_METRICS["watchfloor_stream_lag"],
                                labels=["stream", "group"])
        pending = GaugeMetricFamily("watchfloor_stream_pending", STATE_METRICS["watchfloor_stream_pending"],
                                    labels=["stream", "group"])
        readers = GaugeMetricFamily("watchfloor_stream_readers", STATE_METRICS["watchfloor_stream_readers"],
                                    labels=["stream", "group"])
        dead = GaugeMetricFamily("watchfloor_dead_letters", STATE_METRICS["watchfloor_dead_letters"],
                                 labels=["stage"])
        for g in r.groups:
            if g.lag is not None:
                lag.add_metric([g.stream, g.group], g.lag)
            if g.pending is not None:
                pending.add_metric([g.stream, g.group], g.pending)
            if g.dead_letters is not None:
                dead.add_metric([g.stage], g.dead_letters)
            if g.readers is not None:
                readers.add_metric([g.stream, g.group], g.readers)
        yield from (lag, pending, readers, dead)
        if r.sources is not None:
            for state in ("failing", "silent"):
                name = f"watchfloor_sources_{state}"
                yield GaugeMetricFamily(name, STATE_METRICS[name], value=r.sources.get(state, 0))
        if r.subscriptions_disabled is not None:
            yield GaugeMetricFamily("watchfloor_subscriptions_disabled",
                                    STATE_METRICS["watchfloor_subscriptions_disabled"], value=r.subscriptions_disabled)


def exposition(reading: StateReading) -> bytes:
    """The text `/metrics` answers: this process's counters, then the state read for this scrape."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(StateCollector(reading))
    return generate_latest(REGISTRY) + generate_latest(scraped)


def metric_names() -> set[str]:
    """Every `watchfloor_*` series name this module can expose (with `_total`, `_bucket`… suffixes), for the test
    that keeps the dashboard and the alert rules from naming a metric that does not exist."""
    names = set()
    for collector in (messages_handled, polls, posts, classify_seconds, post_to_webhook_seconds, batch_seconds,
                      batch_entries, deliveries):
        for family in collector.describe():
            suffixes = ("_total",) if family.type == "counter" else ("_bucket", "_count", "_sum")
            names |= {f"{family.name}{suffix}" for suffix in suffixes}
    return names | set(STATE_METRICS)
