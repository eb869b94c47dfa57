"""Detection quality of nightshift's engine next to off-the-shelf peers, on the same data.

`python -m bench.quality` prints a markdown table: precision, recall, F1 and median time to detect
for (a) `simulate` over 10 seeds, (b) the labeled CloudWalk transaction files, (c) the checkout
hours; for the engine, a plain trailing 3-sigma rule, PyOD's ECOD and IForest and ADTK's
InterQuartileRangeAD. The peers get an advantage the engine does not have: PyOD and ADTK are fitted
on the whole file (hindsight), the way they are normally used.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from detector.checkout import REFERENCES, analyze_checkout, read_checkout
from detector.estimators import dense_counts
from detector.evaluation import Detection, Incident, Score, evaluate, from_findings
from detector.offline import analyze_transactions
from detector.simulate import simulate
from storage.parsing import load_file
from tests.detector import labels as known  # the labeled incidents live with the tests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

MINUTE = timedelta(minutes=1)
Peer = Callable[[pd.DataFrame], list[Detection]]
Case = tuple[pd.DataFrame, pd.DataFrame | None, list[Incident]]  # counts, auth codes, truth


@dataclass(frozen=True, slots=True)
class Row:
    data: str
    detector: str
    score: Score
    seconds: float


# ------------------------------------------------------------------ peers


def _episodes(flags: pd.DataFrame, gap: int = 5) -> list[Detection]:
    """Flagged minutes (bool minute x status) merged into episodes (gaps up to `gap` minutes)."""
    any_flag = flags.any(axis=1).to_numpy()
    idx = flags.index
    out: list[Detection] = []
    i = 0
    n = len(any_flag)
    while i < n:
        if not any_flag[i]:
            i += 1
            continue
        j = last = i
        while j < n and j - last <= gap:
            if any_flag[j]:
                last = j
            j += 1
        statuses = tuple(str(c) for c in flags.columns[flags.iloc[i : last + 1].any(axis=0)])
        start = idx[i].to_pydatetime()
        out.append(Detection(start, idx[last].to_pydatetime() + MINUTE, start + MINUTE, statuses))
        i = last + 1
    return out


def three_sigma(table: pd.DataFrame) -> list[Detection]:
    """Per status, |x - mean| > 3 sd of the trailing hour (causal)."""
    prev = table.shift(1).rolling(60, min_periods=30)
    mean, sd = prev.mean(), prev.std()
    flags = ((table - mean).abs() > 3 * sd) & (sd > 0)
    return _episodes(flags)


def _features(table: pd.DataFrame) -> np.ndarray:
    total = table.sum(axis=1).replace(0, np.nan)
    shares = table.div(total, axis=0).fillna(0.0)
    return np.hstack([table.to_numpy(), shares.to_numpy()])


class _Outliers(Protocol):
    """What a PyOD detector offers here: fit on the data, then 0/1 labels per row."""

    labels_: np.ndarray

    def fit(self, x: np.ndarray) -> object: ...


def _pyod(model: _Outliers, table: pd.DataFrame) -> list[Detection]:
    x = _features(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x)
    labels = np.asarray(model.labels_, dtype=np.bool_)
    flags = pd.DataFrame({"*": labels}, index=table.index)
    dets = _episodes(flags)
    return [Detection(d.start, d.end, d.detected_at, ()) for d in dets]


def pyod_ecod(table: pd.DataFrame) -> list[Detection]:
    from pyod.models.ecod import ECOD

    return _pyod(ECOD(contamination=0.02), table)


def pyod_iforest(table: pd.DataFrame) -> list[Detection]:
    from pyod.models.iforest import IForest

    return _pyod(IForest(contamination=0.02, random_state=0), table)


def adtk_iqr(table: pd.DataFrame) -> list[Detection]:
    from adtk.detector import InterQuartileRangeAD

    index = table.index
    assert isinstance(index, pd.DatetimeIndex)
    naive = index.tz_convert(None)
    flags = {}
    for status in table.columns:
        series = table[status].astype(float)
        series.index = naive
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = InterQuartileRangeAD(c=3.0).fit_detect(series)
        flags[status] = found.fillna(False).astype(bool).to_numpy()
    return _episodes(pd.DataFrame(flags, index=table.index))


PEERS: dict[str, Peer] = {
    "3-sigma (trailing 1 h)": three_sigma,
    "PyOD ECOD": pyod_ecod,
    "PyOD IForest": pyod_iforest,
    "ADTK InterQuartileRangeAD": adtk_iqr,
}


# --------------------------------------------------------------- data sets


def _load(name: str, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    batch = load_file(DATA / name, default_date=day, tz=known.TZ)
    return batch.counts_frame(), batch.auth_codes_frame()


def _merge(scores: list[Score]) -> Score:
    return Score(
        sum(s.incidents for s in scores),
        sum(s.detected for s in scores),
        sum(s.episodes for s in scores),
        sum(s.false_episodes for s in scores),
        tuple(t for s in scores for t in s.ttd_minutes),
    )


def minute_sets(seeds: int = 10, hours: int = 48) -> list[tuple[str, list[Case]]]:
    sim: list[Case] = []
    for seed in range(seeds):
        frame, labs = simulate(hours, seed)
        sim.append((frame, None, [Incident(x.kind, x.start, x.end, x.statuses) for x in labs]))
    counts, _ = _load("transactions.csv", date(2025, 7, 12))
    _, auth = _load("transactions_auth_codes.csv", date(2025, 7, 12))
    t1, t1_auth = _load("transactions_1.csv", known.T1_DAY)
    return [
        (f"(a) simulate, {seeds} seeds x {hours} h", sim),
        ("(b) transactions.csv (13 incidents)", [(counts, auth, list(known.TRANSACTIONS))]),
        ("(b) transactions_1.csv (2 incidents)", [(t1, t1_auth, list(known.TRANSACTIONS_1))]),
    ]


def run_minutes(name: str, cases: list[Case]) -> list[Row]:
    rows = []
    per: dict[str, list[Score]] = {"nightshift": []}
    took: dict[str, float] = {"nightshift": 0.0}
    for counts, auth, incidents in cases:
        table = dense_counts(counts)
        end = table.index.max().to_pydatetime() + MINUTE
        started = time.perf_counter()
        result = analyze_transactions(counts, auth)
        took["nightshift"] += time.perf_counter() - started
        per["nightshift"].append(
            evaluate(
                incidents, from_findings(result.findings, end), from_findings(result.segments, end)
            )
        )
        for peer, fn in PEERS.items():
            started = time.perf_counter()
            dets = fn(table)
            took[peer] = took.get(peer, 0.0) + time.perf_counter() - started
            per.setdefault(peer, []).append(evaluate(incidents, dets))
    for detector, scores in per.items():
        rows.append(Row(name, detector, _merge(scores), took[detector]))
    return rows


def run_checkout() -> list[Row]:
    per: dict[str, list[tuple[int, int, int, int]]] = {}
    for name, (required, allowed) in known.CHECKOUT.items():
        frame = read_checkout((DATA / name).read_text(), name)
        ours, _ = analyze_checkout(frame, known.T1_DAY, known.TZ)
        results = {"nightshift": {s.start.hour for s in ours}}
        refs = frame[list(REFERENCES)].to_numpy(dtype=float)
        today = frame["today"].to_numpy(dtype=float)
        mean, sd = refs.mean(axis=1), refs.std(axis=1, ddof=1)
        results["3-sigma (trailing 1 h)"] = {
            int(h)
            for h, t, m, s in zip(frame["hour"], today, mean, sd, strict=True)
            if abs(t - m) > 3 * s
        }
        x = np.column_stack([today, refs, today - np.median(refs, axis=1)])
        from pyod.models.ecod import ECOD
        from pyod.models.iforest import IForest

        for label, model in (
            ("PyOD ECOD", ECOD(contamination=0.1)),
            ("PyOD IForest", IForest(contamination=0.1, random_state=0)),
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x)
            results[label] = {
                int(h) for h, flag in zip(frame["hour"], model.labels_, strict=True) if flag
            }
        from adtk.detector import InterQuartileRangeAD

        series = pd.Series(today, index=pd.date_range("2025-01-01", periods=len(today), freq="h"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iqr = InterQuartileRangeAD(c=1.5).fit_detect(series).fillna(False).astype(bool)
        results["ADTK InterQuartileRangeAD"] = {
            int(h) for h, flag in zip(frame["hour"], iqr.to_numpy(), strict=True) if flag
        }
        for detector, hours in results.items():
            per.setdefault(detector, []).append(
                (len(required), len(hours & required), len(hours), len(hours - required - allowed))
            )
    rows = []
    for detector, parts in per.items():
        inc = sum(p[0] for p in parts)
        hit = sum(p[1] for p in parts)
        episodes = sum(p[2] for p in parts)  # every flagged hour is an episode
        false = sum(p[3] for p in parts)
        ttd = tuple([60.0] * hit + [None] * (inc - hit))
        rows.append(
            Row(
                "(c) checkout hours (5 outage hours)",
                detector,
                Score(inc, hit, episodes, false, ttd),
                0.0,
            )
        )
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def quality_table(seeds: int = 10) -> str:
    """The whole comparison as a markdown table (what `make bench` embeds)."""
    rows: list[Row] = []
    for name, cases in minute_sets(seeds):
        rows.extend(run_minutes(name, cases))
    rows.extend(run_checkout())
    lines = [
        "| data set | detector | precision | recall | F1 | median time to detect (min) "
        "| incidents found | false episodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.score
        ttd = s.median_ttd
        lines.append(
            f"| {r.data} | {r.detector} | {_fmt(s.precision)} | {_fmt(s.recall)} | {_fmt(s.f1)} | "
            f"{_fmt(ttd, 1)} | {s.detected}/{s.incidents} | {s.false_episodes}/{s.episodes} |"
        )
    return "\n".join(lines)


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(quality_table(seeds))


if __name__ == "__main__":
    main()
