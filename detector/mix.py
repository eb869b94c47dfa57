"""The status-mix model: an IsolationForest over each minute's shares, scored fast enough per tick.

scikit-learn scores one row in about 10 ms; the live tick has 5 ms for everything, so the fitted
trees are copied into padded arrays and walked with numpy for all trees at once (about 0.1 ms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _avg_path(n: float) -> float:
    """Average path length of an unsuccessful BST search among `n` points (Liu et al.)."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return float(2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n)


def features(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Square-root shares of a minute's counts: stabilises the variance of small shares."""
    arr = np.asarray(counts, dtype=float)
    total = arr.sum()
    if total <= 0:
        return np.zeros_like(arr)
    return np.asarray(np.sqrt(arr / total))


class MixModel:
    """An IsolationForest fitted on normal minutes' status shares; `score` in [0, 1]."""

    def __init__(self, statuses: Sequence[str], rows: np.ndarray, *, seed: int = 0) -> None:
        from sklearn.ensemble import IsolationForest  # heavy: only when a model is fitted

        self.statuses = tuple(statuses)
        forest = IsolationForest(
            n_estimators=50, max_samples=min(256, len(rows)), random_state=seed
        )
        forest.fit(rows)
        trees = forest.estimators_
        width = max(t.tree_.node_count for t in trees)
        count = len(trees)
        self._left = np.zeros((count, width), dtype=np.int64)
        self._right = np.zeros((count, width), dtype=np.int64)
        self._feature = np.zeros((count, width), dtype=np.int64)
        self._threshold = np.zeros((count, width))
        self._value = np.zeros((count, width))
        depth = 0
        for i, (tree, feats) in enumerate(zip(trees, forest.estimators_features_, strict=True)):
            t = tree.tree_
            n = t.node_count
            leaf = t.children_left[:n] == -1
            idx = np.arange(n)
            self._left[i, :n] = np.where(leaf, idx, t.children_left[:n])
            self._right[i, :n] = np.where(leaf, idx, t.children_right[:n])
            self._feature[i, :n] = np.asarray(feats)[np.maximum(t.feature[:n], 0)]
            self._threshold[i, :n] = np.where(leaf, np.inf, t.threshold[:n])
            # sklearn keeps each node's depth and the expected extra path below it
            self._value[i, :n] = (
                forest._decision_path_lengths[i][:n]
                + forest._average_path_length_per_tree[i][:n]
                - 1.0  # path lengths there count nodes, not edges
            )
            depth = max(depth, int(t.max_depth))
        self._depth = depth
        self._norm = _avg_path(float(forest.max_samples_))
        self._rows = np.arange(count)
        train = self.score_many(rows)
        # what counts as unusual: beyond nearly all of the normal minutes it learned from
        self.threshold = float(np.quantile(train, 0.999)) + 0.03

    def score_many(self, rows: np.ndarray) -> np.ndarray:
        """Anomaly scores (0.5 is ordinary, near 1 isolated at once) of many rows."""
        nodes = np.zeros((len(rows), len(self._rows)), dtype=np.int64)
        trees = self._rows[None, :]
        for _ in range(self._depth):
            feat = self._feature[trees, nodes]
            go_left = rows[np.arange(len(rows))[:, None], feat] <= self._threshold[trees, nodes]
            nodes = np.where(go_left, self._left[trees, nodes], self._right[trees, nodes])
        mean_path = self._value[trees, nodes].mean(axis=1)
        return np.asarray(2.0 ** (-mean_path / self._norm))

    def score(self, row: np.ndarray) -> float:
        """Anomaly score of one row of `features`."""
        node = np.zeros(len(self._rows), dtype=np.int64)
        for _ in range(self._depth):
            feat = self._feature[self._rows, node]
            go_left = row[feat] <= self._threshold[self._rows, node]
            node = np.where(go_left, self._left[self._rows, node], self._right[self._rows, node])
        return float(2.0 ** (-self._value[self._rows, node].mean() / self._norm))
