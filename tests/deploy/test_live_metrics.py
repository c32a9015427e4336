"""The dashboards and alert rules against a live worker and a real Prometheus.

A worker runs on the test broker (tests/streams' fixtures and helpers) over a
small generated force with invalid lines in it. Every metric the dashboards and
rules read must be on its ``/metrics`` (a histogram by its ``_bucket``, ``_sum``
and ``_count`` samples); the one exception is ``up``, which Prometheus records
for each scrape itself. A real Prometheus, configured from
deploy/prometheus/prometheus.yml with the worker as its only target and
alerts.yml loaded, must then answer every dashboard query with data, evaluate
every rule without error, and show the events just handled on the throughput panel.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from accesswatch.generate import generate_force
from accesswatch.ops.produce import event_key
from streams.settings import Settings
from streams.topics import create_topics
from tests.deploy.conftest import PROMETHEUS, alert_rules, dashboards, load_yaml
from tests.deploy.promql import all_panels, dashboard_queries, metric_names
from tests.streams.conftest import unique_env, wait_until
from tests.streams.live import WorkerProcess, aw, kcat_produce, run_prometheus, total

pytestmark = pytest.mark.broker

RECORDED_BY_PROMETHEUS = {"up"}
# Grafana's own variables, as Grafana would fill them in; a dashboard variable means "All".
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "10m"}


@dataclass
class Live:
    worker: WorkerProcess
    prometheus: str  # base URL
    events: int
    exposition: str  # the worker's /metrics after it handled every event


@pytest.fixture(scope="module")
def live(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("deploy-live")
    env = {**unique_env(broker), "ACCESSWATCH_DATA_DIR": str(work / "faust")}
    settings = Settings.model_validate({k.removeprefix("ACCESSWATCH_").lower(): v
                                        for k, v in env.items()})
    create_topics(settings)
    generate_force(work / "force", staff=40, days=3, seed=3, invalid_lines=6)
    loaded = aw(env, "load-ref", str(work / "force"), cwd=work)
    assert loaded.returncode == 0, loaded.stderr
    lines = [ln for ln in (work / "force" / "events.jsonl").read_bytes().split(b"\n")
             if ln.strip()]

    worker = WorkerProcess(env, work)
    try:
        worker.wait_ready()
        config = prometheus_config(worker.metrics_port)
        with run_prometheus(work, worker.metrics_port, config) as base:
            # A scrape before the events, so rates over the window see them arrive.
            wait_until(lambda: value(base, 'up{job="accesswatch"}') == 1, 60,
                       "Prometheus's first scrape of the worker", every=0.2)
            kcat_produce(broker, settings.topic_events, [(event_key(ln), ln) for ln in lines])
            wait_until(lambda: total(worker.metrics(), "accesswatch_events_consumed_total")
                       >= len(lines), 120, "the worker to consume every event", every=0.2)
            # Lag is measured every 2 s, for partitions the worker has handled a batch of.
            wait_until(lambda: "accesswatch_consumer_lag{" in worker.get("/metrics")[1], 30,
                       "the worker to measure its lag", every=0.2)
            wait_until(lambda: (value(base, "sum(accesswatch_events_consumed_total)") or 0)
                       >= len(lines), 60, "Prometheus to scrape the final count", every=0.2)
            # increase() and rate() need two samples of a series, and the alert counters
            # appear only with the first alert.
            wait_until(lambda: all((value(base, f"min(count_over_time({name}[1m]))") or 0) >= 2
                                   for name in used_names()), 30,
                       "two scrapes of every series the dashboards read", every=0.2)
            yield Live(worker, base, len(lines), worker.get("/metrics")[1])
    finally:
        worker.stop()


def prometheus_config(metrics_port: int) -> str:
    """deploy/prometheus/prometheus.yml, scraping this worker every second."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS / f) for f in config["rule_files"]]
    del config["alerting"]  # no Alertmanager here
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "accesswatch"]
    del job["dns_sd_configs"]  # Docker's DNS names the replicas in compose
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = [job]
    return yaml.safe_dump(config)


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 503:
            raise  # still starting: an OSError, as when nothing listens yet
        raise AssertionError(f"{promql}: {e.read().decode(errors='replace')}") from e
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def value(base: str, promql: str) -> float | None:
    try:
        result = query(base, promql)
    except OSError:
        return None  # not listening yet
    return float(result[0]["value"][1]) if result else None


def as_grafana_sends(promql: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES.get(m.group(1), ".*"), promql)


def queries() -> list[tuple[str, str]]:
    out = [(f"{name} {where}", q) for name, board in dashboards().items()
           for where, q in dashboard_queries(board)]
    return out + [(f"alerts.yml {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def used_names() -> set[str]:
    return {name for _, q in queries() for name in metric_names(q)}


def exported(exposition: str) -> set[str]:
    """Sample names on /metrics, and each histogram's own name."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {s.name for s in family.samples}
        if family.type == "histogram":
            names.add(family.name)
    return names


def test_every_metric_the_dashboards_and_alerts_read_is_on_the_worker(live: Live) -> None:
    on_worker = exported(live.exposition)
    missing = {f"{where}: {name}" for where, q in queries()
               for name in metric_names(q) - on_worker - RECORDED_BY_PROMETHEUS}
    assert missing == set()


def test_prometheus_answers_every_dashboard_query_with_data(live: Live) -> None:
    empty = [f"{where}: {q}" for name, board in dashboards().items()
             for where, q in dashboard_queries(board)
             if not query(live.prometheus, as_grafana_sends(q))]
    assert empty == []


def test_the_throughput_panel_shows_the_events_just_handled(live: Live) -> None:
    [panel] = [p for p in all_panels(dashboards()["accesswatch-sre.json"]["panels"])
               if p["title"].startswith("Throughput")]
    consumed = panel["targets"][0]["expr"]
    assert "accesswatch_events_consumed_total" in consumed
    result = query(live.prometheus, as_grafana_sends(consumed))
    assert result and float(result[0]["value"][1]) > 0, result


def test_prometheus_evaluates_every_alert_rule_without_error(live: Live) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        with urllib.request.urlopen(f"{live.prometheus}/api/v1/rules", timeout=10) as r:
            groups = json.loads(r.read())["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else None

    rules = wait_until(evaluated, 30, "Prometheus to evaluate the alert rules", every=0.5)
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
