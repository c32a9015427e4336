"""Setup shared across the test tree: one small generated force for the tuning tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from accesswatch.generate import generate_force
from accesswatch.reference import ReferenceData, load_reference_dir


@pytest.fixture(scope="session")
def small_force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 staff over 3 days with every scenario: events.jsonl, the reference files, labels.json."""
    out = tmp_path_factory.mktemp("small-force")
    generate_force(out, staff=60, days=3, seed=11)
    return out


@pytest.fixture(scope="session")
def small_ref(small_force: Path) -> ReferenceData:
    data, problems = load_reference_dir(small_force)
    assert not problems
    return data
