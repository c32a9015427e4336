from __future__ import annotations

from pathlib import Path

import pytest

from accesswatch.core import Detector
from accesswatch.generate import generate_force
from accesswatch.reference import ReferenceData, load_reference_dir
from models import AnomalyModel
from models.train import feature_rows, fit


@pytest.fixture(scope="session")
def force(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model-force")
    generate_force(out, staff=800, days=7, seed=5, variants=True)
    return out


@pytest.fixture(scope="session")
def ref(force: Path) -> ReferenceData:
    return load_reference_dir(force)[0]


@pytest.fixture(scope="session")
def model(force: Path, ref: ReferenceData) -> AnomalyModel:
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))
    return fit(rows, seed=1)
