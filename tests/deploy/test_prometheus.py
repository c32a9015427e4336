"""Prometheus and Alertmanager configuration: valid for the real tools, every alert tested."""

from __future__ import annotations

import re
from collections import defaultdict

from tests.deploy.conftest import DEPLOY, PROMETHEUS, ROOT, alert_rules, load_yaml, run, tool

OPERATIONS = ROOT / "docs" / "operations.md"


def test_promtool_accepts_the_config() -> None:
    done = run(tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules() -> None:
    done = run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_unit_tests_pass() -> None:
    done = run(tool("promtool"), "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_in_a_unit_test_and_stays_quiet_in_another() -> None:
    fired: dict[str, int] = defaultdict(int)
    quiet: dict[str, int] = defaultdict(int)
    for case in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet)[check["alertname"]] += 1
    names = {rule["alert"] for rule in alert_rules()}
    assert names - set(fired) == set(), "alerts no unit test fires"
    assert names - set(quiet) == set(), "alerts no unit test shows quiet"
    assert set(fired) | set(quiet) <= names, "unit tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    anchors = {_slug(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines()
               if line.startswith("#")}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {page}"


def test_alertmanager_accepts_its_config() -> None:
    done = run(tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_routes_and_inhibitions_name_real_alerts_and_severities() -> None:
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    rules = alert_rules()
    named = set(re.findall(r"\bAccesswatch[A-Z]\w*", text))
    assert named <= {rule["alert"] for rule in rules}
    routed = {m for route in config["route"]["routes"] for m in route["matchers"]}
    assert 'severity="critical"' in routed  # pages; warnings go to the default receiver


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
