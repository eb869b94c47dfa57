"""The status-mix model scores exactly as scikit-learn's IsolationForest would."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from detector.mix import MixModel, features


def test_fast_scores_equal_sklearn_and_flag_an_unusual_mix() -> None:
    rng = np.random.default_rng(0)
    normal = np.vstack([features(rng.poisson([200, 18, 2, 1])) for _ in range(800)])
    model = MixModel(["approved", "denied", "reversed", "failed"], normal)
    forest = IsolationForest(n_estimators=50, max_samples=256, random_state=0).fit(normal)
    probe = np.vstack([normal[:50], features([100, 100, 0, 0])[None, :]])
    assert np.allclose(model.score_many(probe), -forest.score_samples(probe))
    # half of the minute denied and no reversal or failure: a mix the forest never saw
    assert model.score(probe[-1]) > model.threshold
    assert (model.score_many(normal) <= model.threshold).all()
