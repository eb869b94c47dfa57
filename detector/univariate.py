"""Streaming scores for any univariate series: the score at row t uses rows up to t only.

Robust and causal: each value is compared with the median and the median absolute deviation of
the `window` values before it (pandas' rolling windows, so a million rows take well under a
second). Both the level and the step from the previous value are judged, so spikes and level
shifts both stand out; the score is a squashed robust z in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _robust_z(values: pd.Series, window: int, min_periods: int) -> np.ndarray:
    prev = values.shift(1)
    med = prev.rolling(window, min_periods=min_periods).median()
    resid = (values - med).abs()
    mad = resid.shift(1).rolling(window, min_periods=min_periods).median()
    scale = 1.4826 * mad
    floor = 1e-6 + 0.01 * med.abs()
    denom = np.maximum(scale.to_numpy(dtype=float), floor.to_numpy(dtype=float))
    z = (values - med).to_numpy(dtype=float) / denom
    return np.asarray(np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0))


def score_stream(
    values: np.ndarray | pd.Series,
    *,
    window: int = 120,
    threshold: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly score in [0, 1] and a 0/1 label (score >= threshold) per value, causally.

    NaN values score 0. The first `window // 4` rows score 0 while the scale is learned.
    """
    series = pd.Series(np.asarray(values, dtype=float))
    series = series.ffill().fillna(0.0)
    min_periods = max(window // 4, 8)
    z_level = _robust_z(series, window, min_periods)
    z_step = _robust_z(series.diff().fillna(0.0), window, min_periods)
    z = np.maximum(np.abs(z_level), 0.7 * np.abs(z_step))
    score = 1.0 - np.exp(-np.maximum(z - 2.0, 0.0) / 4.0)
    score[:min_periods] = 0.0
    labels = (score >= threshold).astype(np.int8)
    return score, labels
