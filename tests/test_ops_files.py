"""The Grafana dashboard and the Prometheus alert rules in ops/ load, have what Grafana and Prometheus need, and name
only metrics that exist (shared/metrics.py): renaming a metric without them fails here, not on the floor."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from shared import metrics

OPS = Path(__file__).resolve().parent.parent / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "watchfloor.json"
NAME = re.compile(r"\bwatchfloor_\w+")


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_each_alert_rule_has_an_expression_a_duration_labels_and_annotations() -> None:
    rules = _rules()
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule.get("alert")
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    names = {rule["alert"] for rule in rules}
    assert len(names) == len(rules), "two rules of one name"
    # What the issue asks the rules to catch: lag growing, dead letters, a failing source, a failing receiver,
    # and the scrape itself failing.
    assert {"WatchfloorLagGrowing", "WatchfloorDeadLetters", "WatchfloorSourceFailing", "WatchfloorReceiverFailing",
            "WatchfloorScrapeError"} <= names


def test_promtool_accepts_the_rules_where_it_is_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:  # not shipped with the project; CI images with Prometheus run this check
        return
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_is_importable_json_with_a_query_in_every_panel() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["uid"] == "watchfloor" and board["schemaVersion"] >= 36
    assert [v["type"] for v in board["templating"]["list"]] == ["datasource"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["gridPos"]["w"] > 0, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}
    wanted = {  # the list: throughput, lag, dead letters, latency quantiles, deliveries, sources, classify
        "Messages handled per stage": "watchfloor_messages_handled_total",
        "Lag per consumer group": "watchfloor_stream_lag",
        "Dead letters": "watchfloor_dead_letters",
        "Post to webhook latency": "watchfloor_post_to_webhook_seconds_bucket",
        "Webhook deliveries by outcome": "watchfloor_webhook_deliveries_total",
        "Sources failing": "watchfloor_sources_failing",
        "Classify latency": "watchfloor_classify_seconds_bucket",
    }
    for title, metric in wanted.items():
        assert metric in exprs[title], title
    assert all(f"histogram_quantile({q}" in exprs["Post to webhook latency"] for q in ("0.5", "0.95", "0.99"))


def test_the_dashboard_and_the_rules_name_only_metrics_that_exist() -> None:
    known = metrics.metric_names()
    for path in (RULES, DASHBOARD):
        named = set(NAME.findall(path.read_text(encoding="utf-8")))
        assert named, path
        assert named <= known, f"{path.name} names metrics shared/metrics.py does not define: {named - known}"
