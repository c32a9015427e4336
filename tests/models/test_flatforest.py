from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from models.flatforest import FLAT_MAX_ROWS, FlatForest


@pytest.mark.parametrize("n", [1, 3, 100, FLAT_MAX_ROWS, FLAT_MAX_ROWS + 1, 2000])
def test_scores_equal_scikit_learn(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(3000, 6))
    x[:, 2] = np.round(x[:, 2])  # ties on thresholds
    forest = IsolationForest(n_estimators=60, max_samples=256, random_state=n).fit(x)
    y = rng.normal(size=(n, 6)) * 3
    y[:, 2] = np.round(y[:, 2])
    assert np.allclose(
        FlatForest(forest).score_samples(y), forest.score_samples(y), rtol=0, atol=1e-12
    )


def test_a_row_scores_the_same_to_the_bit_in_any_batch() -> None:
    # A row met again exactly at the alert threshold (thresholds are quantiles of the
    # training scores) must alert or not whatever batch it arrives in.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 6))
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=5).fit(x)
    flat = FlatForest(forest)
    batch = x[: 3 * FLAT_MAX_ROWS + 17]
    whole = flat.score_samples(batch)
    for i in range(0, len(batch), 7):
        assert flat.score_samples(batch[i : i + 1])[0] == whole[i], i
