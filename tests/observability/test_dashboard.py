"""The Grafana dashboard: its datasource is a variable, it has one row per stage with the panels
an SRE scales by, and what it shows is what the rules record."""

from __future__ import annotations

import json

from deploy.k8s.monitoring import dashboard, rules
from deploy.k8s.monitoring.generate import DASHBOARD_FILE


def test_the_datasource_is_a_variable_used_by_every_panel() -> None:
    board = json.loads(DASHBOARD_FILE.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_one_row_per_stage_with_rate_errors_latency() -> None:
    board = json.loads(DASHBOARD_FILE.read_text())
    rows: dict[str, list[str]] = {}
    current = ""
    for panel in board["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel["title"])
    for row in ("Gateway: Assess", "ASR", "Alignment", "Tajweed"):
        assert {"Rate", "Errors", "Latency p50 / p95 / p99"} <= set(rows[row]), row
    assert {"Queue depth", "Batch size"} <= set(rows["ASR"])
    assert "Cache hit ratio" in rows["Reference cache"]
    assert "Live sessions open" in rows["Live sessions"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_latency_panels_show_three_quantiles_the_rules_record() -> None:
    recorded = {
        rule["labels"]["quantile"]
        for group in rules.groups()
        for rule in group["rules"]
        if rule.get("record") == "service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m"
    }
    assert recorded == {"0.5", "0.95", "0.99"}
    latency = [e for e in dashboard.expressions() if "quantile_rate5m" in e]
    assert len(latency) == 5  # one per stage row
