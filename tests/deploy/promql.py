"""The metric names a PromQL expression or a Grafana dashboard reads.

Enough of PromQL for our own queries: strings, label matchers, ranges and
grouping clauses are removed first; what remains that is neither a function,
an aggregation nor a keyword is a metric name.

>>> sorted(metric_names('sum by (le) (rate(a_bucket{job="x"}[5m])) / on (i) b'))
['a_bucket', 'b']
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VAR = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_NAME = re.compile(r"(?<![\w.:$])[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*\w+\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """Metric names in one PromQL expression (Grafana variables allowed)."""
    s = _STRING.sub('""', expr)
    s = _GRAFANA_VAR.sub("1", s)
    s = _MATCHERS.sub("", s)
    s = _RANGE.sub("", s)
    s = _GROUPING.sub("", s)
    names = set()
    for m in _NAME.finditer(s):
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group().lower() not in KEYWORDS:
            names.add(m.group())
    return names


def template_query(query: str) -> str:
    """The PromQL inside a Grafana variable query such as ``label_values(up{job="a"}, i)``."""
    m = _LABEL_VALUES.match(query)
    return m.group("selector") if m else query


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of a dashboard."""
    for panel in all_panels(dashboard.get("panels", [])):
        for t in panel.get("targets", []):
            if t.get("expr"):
                yield f"panel {panel.get('title')!r} {t.get('refId')}", t["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            yield f"variable {var['name']!r}", template_query(q)


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))
