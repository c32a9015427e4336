"""Model files: round trip, and every kind of wrong file refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from models import AnomalyModel, ModelError, load_model, save_model


def test_round_trip_keeps_scores_and_metadata(model: AnomalyModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    version = save_model(model, path)
    loaded = load_model(path)
    assert loaded.version == version and len(version) == 12
    assert loaded.meta["rows"] == model.meta["rows"] and "sklearn_version" in loaded.meta
    x = np.random.default_rng(0).normal(size=(50, len(model.median)))
    assert np.allclose(loaded.score(x), model.score(x))
    assert loaded.threshold == model.threshold


def _tamper(model: AnomalyModel, path: Path, **changes: object) -> Path:
    save_model(model, path)
    payload = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    payload.update(changes)
    sio.dump(payload, path)
    return path


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"columns": ["opens_1h"]}, "columns"),
        ({"raw_features": ["x"]}, "raw features"),
        ({"format": 99}, "not an accesswatch model"),
        ({"meta": {"sklearn_version": "0.24.2"}}, "fitted with scikit-learn 0.24.2"),
        ({"median": [0.0]}, "wrong length"),
    ],
)
def test_mismatched_files_are_refused(
    model: AnomalyModel, tmp_path: Path, changes: dict, words: str
) -> None:
    path = _tamper(model, tmp_path / "bad.skops", **changes)
    with pytest.raises(ModelError, match=words):
        load_model(path)


def test_untrusted_types_are_refused(model: AnomalyModel, tmp_path: Path) -> None:
    from fractions import Fraction

    path = _tamper(model, tmp_path / "odd.skops", extra=Fraction(1, 3))
    with pytest.raises(ModelError, match="trusted list"):
        load_model(path)


def test_garbage_and_pickles_are_refused(tmp_path: Path) -> None:
    import pickle

    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelError, match="not a readable skops model"):
        load_model(junk)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"format": 1}))
    with pytest.raises(ModelError):
        load_model(pickled)
