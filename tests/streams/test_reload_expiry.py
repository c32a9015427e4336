"""An allow-list entry that expires while the worker runs stops applying without a restart."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from prometheus_client import CollectorRegistry

from accesswatch.core import Detector
from accesswatch.rules import load_rules
from streams.metrics import Metrics
from streams.reload import Reloader
from tests.core.force import build_force
from tests.rules.test_allowlist import SHARED

PAST = SHARED.replace("2026-03-31", "2020-01-31")  # expired whatever today is
LOADED_ON = date(2020, 1, 1)  # ... but the worker read the pack before that


def started(path: Path) -> tuple[Detector, Metrics, Reloader]:
    detector = Detector(load_rules(path, today=LOADED_ON), build_force())
    metrics = Metrics(CollectorRegistry())
    return detector, metrics, Reloader(detector, metrics, path, None)


def failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("accesswatch_rules_reload_failures_total")
    return value or 0.0


def test_the_pack_is_read_again_once_an_applied_entry_expires(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PAST)
    detector, _, reloader = started(path)
    assert detector.pack.lists["auditors"] == ["psd-audit-1", "u1"]
    asyncio.run(reloader.poll())  # the file is unchanged: only the date moved on
    assert detector.pack.lists["auditors"] == ["psd-audit-1"]
    assert detector.pack.rules[0].exempt.users == ["psd-audit-1"]
    assert detector.pack.next_expiry is None and len(detector.pack.warnings) == 1


def test_a_pack_that_no_longer_loads_is_tried_once_per_expiry(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PAST)
    detector, metrics, _ = started(path)
    path.write_text(PAST + "  - not a rule\n")
    reloader = Reloader(detector, metrics, path, None)  # the broken file is the baseline
    for _ in range(3):
        asyncio.run(reloader.poll())
    assert failures(metrics) == 1
    assert detector.pack.lists["auditors"] == ["psd-audit-1", "u1"]  # the last good pack
