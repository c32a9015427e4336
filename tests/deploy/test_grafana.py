"""Grafana: the provisioned datasource, and dashboards that show what SREs and analysts need."""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import DEPLOY, dashboards, load_yaml
from tests.deploy.promql import all_panels, dashboard_queries

PROVISIONING = DEPLOY / "grafana" / "provisioning"

# What each dashboard must show (issue 7), as a pattern some query of it matches.
SHOWS = {
    "accesswatch-sre.json": {
        "throughput": r"rate\(accesswatch_events_consumed_total",
        "lag per partition": r"by \(partition\) \(accesswatch_consumer_lag",
        "latency p50": r"histogram_quantile\(0\.5, .*accesswatch_event_to_alert_latency_seconds",
        "latency p99": r"histogram_quantile\(0\.99, .*accesswatch_event_to_alert_latency_seconds",
        "DLQ rate by reason": r"sum by \(reason\) \(rate\(accesswatch_events_rejected_total",
        "alerts by rule and severity": r"by \(rule_id, severity\) \(rate\(accesswatch_alerts_total",
        "model version": r"by \(version\) \(accesswatch_model_info",
        "reference-data sizes": r"by \(kind\) \(accesswatch_reference_records",
    },
    "accesswatch-secops.json": {
        "alerts over time by severity":
            r"sum by \(severity\) \(increase\(accesswatch_alerts_total.*\[\$__interval\]",
        "alerts over time by rule":
            r"sum by \(rule_id\) \(increase\(accesswatch_alerts_total.*\[\$__interval\]",
        "top rules": r"topk\(10, sum by \(rule_id\) \(increase\(accesswatch_alerts_total",
    },
}


def datasource_uid() -> str:
    [source] = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


def test_there_are_the_two_dashboards_with_distinct_uids() -> None:
    boards = dashboards()
    assert set(boards) == set(SHOWS)
    assert len({b["uid"] for b in boards.values()}) == len(boards)


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_each_dashboard_shows_what_it_must(name: str) -> None:
    queries = [q for _, q in dashboard_queries(dashboards()[name])]
    missing = [what for what, pattern in SHOWS[name].items()
               if not any(re.search(pattern, q) for q in queries)]
    assert missing == []


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_every_query_uses_the_provisioned_datasource(name: str) -> None:
    uid = datasource_uid()
    board = dashboards()[name]
    for panel in all_panels(board["panels"]):
        if panel["type"] in {"row", "text"}:
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    for var in board["templating"]["list"]:
        assert var["datasource"]["uid"] == uid, var["name"]


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_panels_have_unique_ids_and_do_not_overlap(name: str) -> None:
    panels = list(all_panels(dashboards()[name]["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_provider_is_read_only_in_the_ui() -> None:
    [provider] = load_yaml(PROVISIONING / "dashboards" / "accesswatch.yml")["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
