"""The metric-name reader the deploy tests rely on finds names and nothing else."""

from __future__ import annotations

import pytest

from tests.deploy.promql import metric_names, template_query

CASES = [
    ('up{job="accesswatch"} == 0', {"up"}),
    ("absent(up{job=\"accesswatch\"} == 1)", {"up"}),
    ('sum(rate(a_total{instance=~"$instance"}[$__rate_interval]))', {"a_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(lat_bucket[5m]))) > 0.25", {"lat_bucket"}),
    ("sum(rate(x[10m])) / sum(rate(y[10m])) > 0.01", {"x", "y"}),
    ("a == 0 and on (instance) sum by (instance) (b) > 0", {"a", "b"}),
    ("a * on (instance) group_left (version) info_metric", {"a", "info_metric"}),
    ('topk(10, sum by (rule_id) (increase(alerts_total{s=~"by|on"}[$__range])))',
     {"alerts_total"}),
    ("deriv(lag[10m]) > 1e3 and lag offset 5m > 0", {"lag"}),
    ("sum without (instance) (inf_metric) > Inf", {"inf_metric"}),
]


@pytest.mark.parametrize(("expr", "names"), CASES)
def test_metric_names_are_found_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_label_values_queries_give_their_selector() -> None:
    assert template_query('label_values(up{job="accesswatch"}, instance)') == \
        'up{job="accesswatch"}'
    assert template_query("up") == "up"
