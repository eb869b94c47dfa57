"""`detect` and its peers on the labelled corpus (`detector.corpus`), scored the windowed way.

    python -m bench.corpus [SEED]

Every detector sees each series row by row as `detect` does (timestamps and values) and returns
0/1 labels; `detector.evaluation.score_windows` scores them with the standard profile (a true
positive +1 at a window's start, a miss -1, a false positive -0.11), normalised so that flagging
nothing scores 0 and a perfect detector 100. The peers' flags are folded into episodes by the
same rule as `detect`'s (`detector.episodes.onsets`: only the first row of a run of flags counts),
which can only help them: raw, every flagged row of a run would be a false positive.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.corpus import Labelled, corpus, probation
from detector.episodes import onsets
from detector.evaluation import WindowScore, score_windows
from detector.univariate import RESOLVE, score_series

Detector = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (timestamps, values) -> 0/1 flags


def nightshift(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    return score_series(values, stamps).label


def _fold(flags: np.ndarray) -> np.ndarray:
    flags = np.asarray(flags, dtype=np.bool_)
    return onsets(flags, flags, RESOLVE).astype(np.int8)


def _beyond(values: np.ndarray, mean: pd.Series, sd: pd.Series, limit: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat past has no deviation
        z = np.abs(values - mean.to_numpy()) / sd.to_numpy()
    return _fold(np.nan_to_num(z, nan=0.0, posinf=0.0) > limit)


def windowed_gaussian(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """NAB's baseline: mean and deviation of the last 6,400 values, |z| beyond 3.72 (p < 2e-4)."""
    past = pd.Series(values).shift(1).rolling(6400, min_periods=10)
    return _beyond(values, past.mean(), past.std(), 3.72)


def three_sigma(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean and deviation of everything before, |z| beyond 3."""
    past = pd.Series(values).shift(1).expanding(min_periods=10)
    return _beyond(values, past.mean(), past.std(), 3.0)


def _lagged(values: np.ndarray, width: int = 8) -> np.ndarray:
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    return np.lib.stride_tricks.sliding_window_view(padded, width)


def pyod_ecod(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """PyOD's ECOD on windows of 8 values, fitted on the whole series (hindsight), 1% flagged."""
    from pyod.models.ecod import ECOD

    if len(values) < 20:
        return np.zeros(len(values), dtype=np.int8)
    model = ECOD(contamination=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(_lagged(values))
    return _fold(model.labels_)


def stumpy_discords(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """stumpy's matrix profile over windows of 16 values (whole series): a window whose nearest
    neighbour is further than 3 deviations above the profile's mean is a discord."""
    import stumpy

    m = 16
    if len(values) < 4 * m or float(np.std(values)) == 0.0:
        return np.zeros(len(values), dtype=np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flat stretches: stumpy says so, and copes
        profile = np.asarray(stumpy.stump(values.astype(float), m)[:, 0], dtype=float)
    profile[~np.isfinite(profile)] = 0.0
    flags = np.zeros(len(values), dtype=np.bool_)
    flags[m - 1 :] = profile > profile.mean() + 3 * profile.std()
    return _fold(flags)


def ruptures_binseg(stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """ruptures' binary segmentation (least-squares cost, whole series, values in units of their
    robust step-to-step deviation, at least 5% of their spread), penalty 20 log n: each change
    point is a detection."""
    import ruptures

    if len(values) < 20:
        return np.zeros(len(values), dtype=np.int8)
    steps = np.diff(values)
    spread = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    scale = max(spread, 0.05 * float(np.std(values))) or 1.0
    algo = ruptures.Binseg(model="l2", min_size=5, jump=5).fit(values / scale)
    found = algo.predict(pen=20 * math.log(len(values)))
    flags = np.zeros(len(values), dtype=np.int8)
    flags[[b for b in found if b < len(values)]] = 1
    return flags


PEERS: dict[str, Detector] = {
    "windowed Gaussian (last 6,400 values)": windowed_gaussian,
    "3-sigma (all values before)": three_sigma,
    "PyOD ECOD (windows of 8, whole series)": pyod_ecod,
    "stumpy matrix-profile discords (windows of 16, whole series)": stumpy_discords,
    "ruptures binary segmentation (whole series)": ruptures_binseg,
}


@dataclass(frozen=True, slots=True)
class Result:
    detector: str
    score: WindowScore
    seconds: float
    clean_labels: int  # labels after the learning period on the series with no anomaly


def run(detector: Detector, series: list[Labelled]) -> tuple[WindowScore, float, int]:
    total = WindowScore(0.0, 0.0, 0.0, 0, 0, 0)
    took = 0.0
    clean = 0
    for s in series:
        started = time.perf_counter()
        labels = detector(s.timestamps, s.values)
        took += time.perf_counter() - started
        learning = probation(len(s.values))
        total = total + score_windows(labels, s.anomalies, learning)
        if not s.anomalies:
            clean += int(np.count_nonzero(labels[learning:]))
    return total, took, clean


def results(seed: int = 0, count: int = 60) -> list[Result]:
    series = corpus(seed, count)
    out = []
    for name, fn in {"nightshift `detect`": nightshift, **PEERS}.items():
        score, took, clean = run(fn, series)
        out.append(Result(name, score, took, clean))
    return out


def table(seed: int = 0, count: int = 60) -> str:
    """The comparison as a markdown table (what `make bench` embeds)."""
    series = corpus(seed, count)
    rows = results(seed, count)
    windows = sum(len(s.anomalies) for s in series)
    lines = [
        f"{len(series)} series (seed {seed}), {sum(len(s.values) for s in series):,} rows, "
        f"{windows} labelled anomalies; standard profile.",
        "",
        "| detector | standard score (0 = flags nothing, 100 = perfect) | windows found "
        "| false positives | labels on the clean series | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.score
        norm = s.normalised
        lines.append(
            f"| {r.detector} | {'–' if math.isnan(norm) else f'{norm:.1f}'} | "
            f"{s.hits}/{s.windows} | {s.false} | {r.clean_labels} | {r.seconds:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    print(table(seed))


if __name__ == "__main__":
    main()
