"""The model as a worker serves it: the same verdicts as the file loaded in full,
the same refusals, and no scikit-learn in the serving process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accesswatch.core import Detector
from models import AnomalyModel, ModelError, load_model, save_model
from models.served import load_served_model
from models.train import feature_rows


def test_served_model_gives_the_loaded_models_verdicts(
    model: AnomalyModel, force: Path, ref: object, tmp_path: Path
) -> None:
    path = tmp_path / "m.skops"
    version = save_model(model, path)
    full, served = load_model(path), load_served_model(path)
    assert served.forest is None and served.version == version == full.version
    assert (served.threshold, served.odd_threshold, served.peer_median, served.meta) == (
        full.threshold, full.odd_threshold, full.peer_median, full.meta)
    rows = feature_rows(force / "events.jsonl", Detector(None, ref))  # type: ignore[arg-type]
    x = full.columns(rows)
    assert np.array_equal(served.score(x), full.score(x))  # to the bit
    want, got = full.judge(rows), served.judge(rows)
    assert any(v is not None and v.alert for v in want), "the rows raise no alert to compare"
    assert got == want


def test_refused_files_say_why_as_loading_does(model: AnomalyModel, tmp_path: Path) -> None:
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelError, match=r"junk\.skops: not a readable skops model"):
        load_served_model(junk)
    with pytest.raises(ModelError, match=r"missing\.skops"):
        load_served_model(tmp_path / "missing.skops")


def test_serving_never_imports_scikit_learn(model: AnomalyModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(model, path)
    code = ("import sys, streams.worker, streams.app\n"
            "from models.served import load_served_model\n"
            f"m = load_served_model(__import__('pathlib').Path({str(path)!r}))\n"
            "print(m.version, sorted(n for n in sys.modules if n.split('.')[0] in "
            "('sklearn', 'scipy', 'skops')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[2])
    version, modules = done.stdout.split(" ", 1)
    assert len(version) == 12 and modules.strip() == "[]"


def test_numpy_values_in_a_files_fields_come_through(model: AnomalyModel, tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "np.skops"
    save_model(model, path)
    payload = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    payload["meta"] = {**payload["meta"], "rows": np.int64(7), "alert_rate": np.float64(0.002)}
    sio.dump(payload, path)
    served = load_served_model(path)
    assert served.meta["rows"] == 7 and served.meta["alert_rate"] == 0.002
