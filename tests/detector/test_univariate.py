"""`detect`'s streaming scorer: causal, bounded, finds spikes and level shifts."""

from __future__ import annotations

import numpy as np

from detector.univariate import score_stream


def test_score_at_t_ignores_everything_after_t() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(50, 3, 2000)
    y = x.copy()
    y[1500:] += 400
    sx, _ = score_stream(x)
    sy, _ = score_stream(y)
    assert np.array_equal(sx[:1500], sy[:1500])


def test_spike_and_level_shift_are_labelled_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(100, 5, 5000)
    x[3000] += 80
    x[4000:] -= 60
    score, label = score_stream(x)
    assert ((score >= 0) & (score <= 1)).all()
    assert label[3000] == 1 and label[4000] == 1
    assert label[200:2990].sum() == 0


def test_nan_and_constant_series_do_not_break_it() -> None:
    x = np.array([1.0] * 100 + [np.nan] * 5 + [1.0] * 100)
    score, label = score_stream(x)
    assert np.isfinite(score).all() and label.sum() == 0
