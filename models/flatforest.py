"""An isolation forest scored with numpy over all trees at once.

scikit-learn scores a batch tree by tree (a Python call per tree, ~50 µs each):
for a few hundred rows that overhead is most of the cost.  Here every tree's
nodes sit in flat arrays and a batch walks all trees together, one vectorised
step per level (an isolation tree of 256 samples is at most 8 deep).  Scores
equal scikit-learn's ``score_samples`` (tested to 1e-12), and a row's score is
the same to the bit in any batch, which scikit-learn's is not against ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

# Rows walked at once: the walk holds rows × trees node indices.  Larger batches go in
# chunks, never to scikit-learn's scorer: its sums come out in another order, and a
# row scored exactly at the threshold (a training row met again) would then alert or
# not depending on how the stream was cut into batches.
FLAT_MAX_ROWS = 400
# The arrays a flat forest is, besides two numbers: what a worker holds (models/served.py).
ARRAYS = ("roots", "left", "right", "feature", "threshold", "path")


class FlatForest:
    def __init__(self, forest: IsolationForest) -> None:
        from sklearn.ensemble._iforest import _average_path_length

        self.forest: IsolationForest | None = forest
        trees = [est.tree_ for est in forest.estimators_]
        sizes = [t.node_count for t in trees]
        offsets = np.cumsum([0, *sizes[:-1]])
        self.roots = offsets.astype(np.intp)
        left, right, feature, threshold, path = [], [], [], [], []
        for tree, off, features in zip(trees, offsets, forest.estimators_features_, strict=True):
            leaf = tree.children_left == -1
            left.append(np.where(leaf, np.arange(tree.node_count), tree.children_left) + off)
            right.append(np.where(leaf, np.arange(tree.node_count), tree.children_right) + off)
            # Map the tree's feature index back to the column it was fitted on.
            feature.append(np.where(leaf, 0, np.asarray(features)[np.maximum(tree.feature, 0)]))
            threshold.append(np.where(leaf, np.inf, tree.threshold))
            depth = _depths(tree.children_left, tree.children_right)
            # scikit-learn counts the root as depth 1 and subtracts 1: the same thing.
            path.append(depth + _average_path_length(tree.n_node_samples))
        self.left = np.concatenate(left).astype(np.intp)
        self.right = np.concatenate(right).astype(np.intp)
        self.feature = np.concatenate(feature).astype(np.intp)
        self.threshold = np.concatenate(threshold)
        self.path = np.concatenate(path)
        self.depth = int(max(_depths(t.children_left, t.children_right).max() for t in trees))
        self.denominator = len(trees) * float(_average_path_length([forest._max_samples])[0])

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], depth: int,
                    denominator: float) -> FlatForest:
        """A forest from ``arrays()`` output, with no scikit-learn object behind it."""
        flat = cls.__new__(cls)
        flat.forest = None
        for name in ARRAYS:
            setattr(flat, name, arrays[name])
        flat.depth, flat.denominator = int(depth), float(denominator)
        return flat

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Same as ``IsolationForest.score_samples``: lower is stranger."""
        if len(x) > FLAT_MAX_ROWS:
            return np.concatenate([self._walk(x[i:i + FLAT_MAX_ROWS])
                                   for i in range(0, len(x), FLAT_MAX_ROWS)])
        return self._walk(x)

    def _walk(self, x: np.ndarray) -> np.ndarray:
        # Trees compare in float32, as scikit-learn's apply() does.
        x32 = np.asarray(x, dtype=np.float32)
        n = x32.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x32[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        depths = self.path[node].sum(axis=1)
        return -(2.0 ** (-depths / self.denominator))


def _depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each node's depth (the root's 0)."""
    depth = np.zeros(len(left), dtype=np.float64)
    for node in range(len(left)):  # parents precede children in sklearn trees
        if left[node] != -1:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return depth
