"""`detect`'s scorer for any univariate series: causal, seasonal, calibrated, labelled at onsets.

The score of a row uses the rows before it only (and its own value). How it works:

- **Learning period**: the first 15% of the rows (at most 750) teach the model; their score is 0.
- **Period**: the cycle the autocorrelation shows in what has been seen (`find_period`: daily,
  weekly or any other, at any spacing; none for a series without one), unless a day or a week
  predicts the series clearly better (`choose_period`), looked at again each time the history
  doubles. Each look starts an epoch: the rows of an epoch, and the past they are judged
  against, are scored under that epoch's period. Timestamps place each row on a regular grid,
  so missing rows do not shift the phase.
- **Expectation**: with a period, the median of the same phase in the last three cycles
  (`cycle_median`: one bad cycle does not move it) moved by the recent level; without one, the
  median of the recent rows. Where the residuals of a positive series widen with its level,
  each is weighed by the spread at its level (`_spread_weight`).
- **Kinds**, each a statistic of the rows up to now: a spike or dip (one residual), a level shift
  or broken seasonal pattern (the mean residual over 8 rows, and over 32 rows against the
  slower expectation, which also catches a trend change), a change of variance (the spread over
  16 rows), a flatline (a value repeated longer than usual), and a series that stops (a gap in
  the timestamps longer than usual).
- **Calibrated score**: each statistic is turned into how rarely it has been this large in the
  past (its own history: the empirical tail, extended by a generalised Pareto fit beyond it), so
  a score of 0.5 means about one row in 10,000 on any series, 1.0 one in 100 million. Rows that
  scored as certain anomalies are left out of that history, unless they stay so for over 256
  rows in a row (`_settle`: a state that lasts is the new normal).
- **Episodes and labels**: a score of 0.5 opens an episode, rows above 0.3 keep it open, and it
  resolves after 64 quiet rows (`detector.episodes`, the rule the feed's episodes follow); the
  label is 1 only on the row each episode opened at.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.episodes import onsets
from detector.estimators import cycle_median, find_period

LEARN_SHARE = 0.15
LEARN_MAX = 750
RARE = 1e-4  # how rare a statistic must be (per row) to score 0.5
OPEN = 0.5
KEEP = 0.3
CERTAIN = 0.9  # rows this anomalous are left out of the past later rows are judged against
LASTING = 256  # ... unless they have been so for this many rows in a row (the new normal)
RESOLVE = 64  # quiet rows before an episode resolves
WARM = 32  # rows whose statistics no later row is judged against (their scale is unsettled)
SHORT, LEVEL, SPREAD, LONG, SLOW = 15, 8, 16, 32, 128  # rows
PERIOD_STEPS = 1 << 15  # the period is looked for in at most this many of the latest steps
SCALE_ROWS = 2048  # the robust scale of the residuals is learned from this many rows back
TAIL_ROWS = 10_000  # each statistic's tail is learned from this many rows back
TAIL = 0.02  # the share of a statistic's past that its tail model is fitted to
LOW_W, HIGH_W = 0.5, 2.0  # the least and most a row's residuals are reweighed by its level


@dataclass(frozen=True, slots=True)
class Scored:
    """Per row: the score in [0, 1] and the 0/1 onset label; the model's learning rows and the
    period it settled on (in grid steps, None without one)."""

    score: np.ndarray
    label: np.ndarray
    learning: int
    period: int | None


def learning_rows(n: int) -> int:
    """Rows of the learning period: 15% of the series, at most 750."""
    return int(min(math.floor(LEARN_SHARE * n), LEARN_MAX))


def positions(stamps: np.ndarray | None, n: int, learning: int) -> tuple[np.ndarray, float | None]:
    """Each row's step on a regular grid (the spacing of the closest quarter of the learning
    rows: a series that skips rows, or is sampled unevenly, still has the phase of its cycle),
    and the step in seconds; the row number (and None) when timestamps are missing, out of
    order, or so irregular that the grid would be over four times the rows."""
    rows = np.arange(n, dtype=np.int64)
    if stamps is None or n < 3:
        return rows, None
    t = np.asarray(stamps).astype("datetime64[ns]").astype(np.int64)
    gaps = np.diff(t)
    if (gaps <= 0).any():
        return rows, None
    step = float(np.percentile(gaps[: max(learning, 2)], 25))
    pos = np.rint((t - t[0]) / step).astype(np.int64)
    if pos[-1] > 4 * n or (np.diff(pos) <= 0).any():
        return rows, None
    return pos, step / 1e9


def score_series(
    values: np.ndarray, stamps: np.ndarray | None = None, *, learning: int | None = None
) -> Scored:
    """Score every row of a series (NaN values score 0) from the rows before it; see the module
    docstring. `learning` defaults to `learning_rows(len(values))`: with the same learning
    period, a row's score is the same whatever comes after it."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    learning = learning_rows(n) if learning is None else learning
    if n < 16:
        return Scored(np.zeros(n), np.zeros(n, dtype=np.int8), learning, None)
    known = np.isfinite(x)
    x = pd.Series(x).ffill().bfill().to_numpy()
    if not known.any():
        x = np.zeros(n)
    pos, step = positions(stamps, n, learning)
    grid = np.full(int(pos[-1]) + 1, np.nan)
    grid[pos] = x
    calendar = (86_400 / step, 604_800 / step) if step else ()
    cuts, periods = _epochs(grid, pos, max(learning, 16), calendar)
    starts = np.union1d(_block_starts(n), cuts)
    models = list(dict.fromkeys(periods))
    ends = [*cuts[1:].tolist(), n]
    variants = []
    for period in models:
        mine = [k for k, found in enumerate(periods) if found == period]
        # a model's statistics are needed on its epochs and on the past they are judged against
        first = int(cuts[mine[0]])
        lo = max(0, first - TAIL_ROWS - SCALE_ROWS - SLOW)
        look = max(first, learning)  # the rows the model was chosen on
        variants.append(_statistics(x, grid, pos, period, starts, look, lo, ends[mine[-1]]))
    epoch = np.searchsorted(cuts, starts, side="right") - 1
    which = np.asarray([models.index(periods[k]) for k in epoch], dtype=np.int64)
    score = _judge(variants, which, starts, WARM)
    score[:learning] = 0.0
    score[~known] = 0.0
    label = onsets(score >= OPEN, score >= KEEP, RESOLVE).astype(np.int8)
    return Scored(score, label, learning, periods[-1])


def score_stream(
    values: np.ndarray | pd.Series, stamps: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly score in [0, 1] and the 0/1 onset label of each value (see `score_series`)."""
    scored = score_series(np.asarray(values, dtype=float), stamps)
    return scored.score, scored.label


def _epochs(
    grid: np.ndarray, pos: np.ndarray, learning: int, calendar: tuple[float, ...]
) -> tuple[np.ndarray, list[int | None]]:
    """Where each of the model's epochs begins (row 0, then each time the history has doubled
    since the learning period) and the period it looks for in what came before (None: none)."""
    n = len(pos)
    looks = [learning]
    while looks[-1] < n:
        looks.append(2 * looks[-1])
    looks.pop()  # the model is looked at again at each of these rows (those inside the series)
    periods: list[int | None] = []
    for look in looks:
        seen = grid[max(0, pos[look - 1] + 1 - PERIOD_STEPS) : pos[look - 1] + 1]
        periods.append(choose_period(np.asarray(pd.Series(seen).ffill().bfill()), calendar))
    return np.asarray([0, *looks[1:]], dtype=np.int64), periods or [None]


def choose_period(y: np.ndarray, calendar: tuple[float, ...]) -> int | None:
    """The period of `y`: the autocorrelation's (`find_period`), unless a calendar cycle that
    fits twice in `y` explains it better: the same phase in past cycles leaves residuals at least
    15% tighter (an hourly series with weekends: the week, not the day). A cycle whose residuals
    are already under 1% of the series' spread (a noise-free one) is not bettered by a longer."""
    found = find_period(y, calendar=calendar)
    if found is None:
        return None
    fits = {round(c) for c in calendar if 3 <= round(c) <= len(y) // 2}
    candidates = sorted(fits | {found})
    if len(candidates) == 1:
        return found
    steps = np.arange(len(y))
    first = candidates[-1]  # residuals compared on the rows every candidate has a cycle behind

    def spread(period: int) -> float:
        resid = (y - cycle_median(y, steps, period))[first:]
        return _spread(resid[np.isfinite(resid)])

    best, tight = found, spread(found)
    least = 0.01 * _spread(y)  # a cycle that predicts this well leaves nothing to improve on
    for period in candidates:
        if period == found:
            continue
        width = spread(period)
        longer = period > best and width < 0.85 * tight and tight > least
        if longer or (period < best and width <= max(tight / 0.85, least)):
            best, tight = period, width
    return best


def _statistics(
    x: np.ndarray,
    grid: np.ndarray,
    pos: np.ndarray,
    period: int | None,
    starts: np.ndarray,
    look: int,
    lo: int,
    hi: int,
) -> tuple[tuple[np.ndarray, float], ...]:
    """Each row's statistics (with the least value each scores from) under one model, on rows
    `lo` to `hi` (NaN elsewhere): the quick expectation (the same phase in past cycles moved by
    the recent level, or the recent median) and the slow one (past cycles, or the last 128
    rows)."""
    n = len(x)
    if lo > 0 or hi < n:
        inside = starts[(starts > lo) & (starts < hi)] - lo
        part = _statistics(
            x[lo:hi], grid, pos[lo:hi], period, np.r_[0, inside], look - lo, 0, hi - lo
        )
        out = []
        for stat, least in part:
            full = np.full(n, np.nan)
            full[lo:hi] = stat
            out.append((full, least))
        return tuple(out)
    quick = _past_median(x, SHORT)
    slow = _past_median(_trailing_mean(x, SHORT), SLOW // SHORT, SHORT)
    if period is not None:
        seasonal = cycle_median(grid, pos, period)
        off = x - seasonal
        moved = seasonal + _past_median(np.where(np.isfinite(off), off, 0.0), SHORT)
        have = np.isfinite(seasonal) & np.isfinite(moved)
        quick = np.where(have, moved, quick)
        slow = np.where(have, seasonal, slow)
    # residuals in units of the level's typical spread: where the spread grows with the level
    # (counts, multiplicative noise), a peak's deviation is weighed by the peak's own spread
    weight = _spread_weight(x - quick, slow, look)
    resid = (x - quick) / weight
    smallest = _blockwise(x, starts, SCALE_ROWS, _floor) / weight  # the least measurable scale
    sigma = np.maximum(_blockwise(resid, starts, SCALE_ROWS, _spread), smallest)
    slow_resid = (x - slow) / weight
    slow_sigma = np.maximum(_blockwise(slow_resid, starts, SCALE_ROWS, _spread), sigma)
    return (
        (np.abs(resid) / sigma, 4.0),
        (np.abs(_trailing_mean(resid, LEVEL)) / sigma, 2.0),
        (np.abs(_trailing_mean(slow_resid, LONG)) / slow_sigma, 2.0),
        # a spread under the least measurable one says nothing: a noise-free series whose
        # residuals fell to zero has not collapsed, however often it does so
        (np.abs(np.log(np.maximum(_trailing_sd(resid, SPREAD), smallest) / sigma)), math.log(2.5)),
        (_runs(x, starts), 5.0),
        (np.diff(pos, prepend=pos[0]).astype(float), 8.0),
    )


def _spread_weight(resid: np.ndarray, level: np.ndarray, look: int) -> np.ndarray:
    """Per row, how much wider than typical the residuals are at its expected level, as the
    rows before `look` show it: (level / typical level) to the power 0, 1/2 (counts) or 1
    (multiplicative noise), the slope of the residuals' size over the level in five bands of
    level; 1 everywhere for a series that is not positive or whose level barely moves."""
    ones = np.ones(len(resid))
    r, lvl = np.abs(resid[:look]), level[:look]
    ok = np.isfinite(r) & np.isfinite(lvl) & (lvl > 0)
    if look < 200 or ok.mean() < 0.95:
        return ones
    r, lvl = r[ok], lvl[ok]
    bands = np.minimum((np.argsort(np.argsort(lvl)) * 5) // len(lvl), 4)
    size = np.asarray([np.median(r[bands == b]) for b in range(5)])
    where = np.asarray([np.median(lvl[bands == b]) for b in range(5)])
    if (size <= 0).any() or where[-1] < 1.5 * where[0]:
        return ones
    slope = float(np.polyfit(np.log(where), np.log(size), 1)[0])
    power = min(max(round(2 * slope) / 2, 0.0), 1.0)
    if power == 0.0:
        return ones
    typical = float(np.median(lvl))
    ratio = np.maximum(np.where(np.isfinite(level), level, typical), 0.0) / typical
    return np.asarray(np.clip(ratio**power, LOW_W, HIGH_W))


def _block_starts(n: int) -> np.ndarray:
    """Where the blocks whose rows share a scale and a tail model begin: every 32 rows at
    first, then growing with the row number (1/64 of it), never with the series' length."""
    out = [0]
    while out[-1] < n:
        out.append(out[-1] + max(32, out[-1] // 64))
    return np.asarray(out[:-1], dtype=np.int64)


def _blockwise(
    values: np.ndarray, starts: np.ndarray, back: int, fn: Callable[[np.ndarray], float]
) -> np.ndarray:
    """`fn` of the `back` rows before each block, held for the rows of the block."""
    out = np.empty(len(values))
    bounds = [*starts.tolist(), len(values)]
    for b, e in itertools.pairwise(bounds):
        window = values[max(0, b - back) : b]
        out[b:e] = fn(window) if len(window) else math.nan
    return out


def _spread(window: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation, were it Gaussian."""
    return 1.4826 * float(np.median(np.abs(window - np.median(window))))


def _floor(window: np.ndarray) -> float:
    """The least scale a deviation is measured in: a thousandth of the values' range, half the
    step of quantized values, never zero."""
    lo, hi = np.percentile(window, [5, 95])
    steps = np.abs(np.diff(window))
    steps = steps[steps > 0]
    quantum = float(steps.min()) if len(steps) else 0.0
    return max(1e-3 * float(hi - lo), 0.5 * quantum, 1e-9 * max(abs(float(hi)), 1.0), 1e-12)


def _past_median(values: np.ndarray, w: int, every: int = 1) -> np.ndarray:
    """For each row, the median of the `w` values before it (taken `every` rows apart; the first
    value stands in for those before the series began)."""
    span = w * every
    padded = np.concatenate([np.full(span, values[0]), values[:-1]])
    windows = np.lib.stride_tricks.sliding_window_view(padded, span)[:, ::every]
    return np.asarray(np.partition(windows, w // 2, axis=1)[:, w // 2])


def _trailing_mean(values: np.ndarray, w: int) -> np.ndarray:
    total = np.cumsum(np.concatenate(([0.0], values)))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - w, 0)
    return np.asarray((total[idx] - total[lo]) / (idx - lo))


def _trailing_sd(values: np.ndarray, w: int) -> np.ndarray:
    mean = _trailing_mean(values, w)
    square = _trailing_mean(values * values, w)
    return np.asarray(np.sqrt(np.maximum(square - mean * mean, 0.0)))


def _runs(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """How many rows in a row, up to this one, have repeated the same value; NaN (not judged)
    where fewer than 5% of the rows before the block changed value: a flatline is news only in
    a series that used to move."""
    same = np.concatenate(([False], x[1:] == x[:-1]))
    idx = np.arange(len(x))
    last_change = np.maximum.accumulate(np.where(same, 0, idx))
    runs = (idx - last_change).astype(float)
    moved = _blockwise((~same).astype(float), starts, SCALE_ROWS, lambda w: float(w.mean()))
    return np.where(moved >= 0.05, runs, np.nan)


def _judge(
    variants: list[tuple[tuple[np.ndarray, float], ...]],
    which: np.ndarray,
    starts: np.ndarray,
    warm: int,
) -> np.ndarray:
    """Each row's score: the rarest of its statistics against their own past (see the module
    docstring), block by block, each block under its epoch's model (`which` of the `variants`):
    the past it is judged against is re-expressed in that model, so rows a worse model got wrong
    do not make the new model's anomalies look common. Rows that scored as anomalous are left
    out of the past the later blocks are judged against, so an anomaly does not teach the model
    that it is normal. Statistics below their `least` value never score, and those of the first
    `warm` rows (whose scale was learned from too few rows) are not part of any past."""
    n = len(variants[0][0][0])
    score = np.zeros(n)
    calm = np.ones(n, dtype=np.bool_)
    calm[:warm] = False
    bounds = [*starts.tolist(), n]
    scale = -2 * math.log10(RARE)
    for (b, e), model in zip(itertools.pairwise(bounds), which.tolist(), strict=True):
        lo = max(0, b - TAIL_ROWS)
        usable = calm[lo:b]
        block = score[b:e]
        for stat, least in variants[model]:
            now = stat[b:e]
            hot = np.flatnonzero(now >= least)
            if not len(hot):
                continue
            past = stat[lo:b][usable]
            past = past[np.isfinite(past)]
            if len(past) < 30:
                continue
            p = _tail(past, now[hot])
            rarity = np.clip(np.log10(1.0 / np.maximum(p, 1e-300)) / scale, 0.0, 1.0)
            block[hot] = np.maximum(block[hot], rarity)
        calm[b:e] = block < CERTAIN
        _settle(calm, b, e, LASTING)
    return score


def _settle(calm: np.ndarray, b: int, e: int, lasting: int) -> None:
    """Take back into the past every run of anomalous rows that, up to row `e`, has lasted
    over `lasting` rows: a state that persists is the series' new normal, not an episode (a
    noise-free cycle whose residuals fell to zero, a series whose noise changed for good)."""
    if calm[b:e].all():
        return
    first = max(0, b - lasting - 1)  # an earlier run that lasted longer is already taken back
    edges = np.diff(np.concatenate(([0], (~calm[first:e]).astype(np.int8), [0])))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if stop - start > lasting:
            calm[first + start : first + stop] = True


def _tail(past: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How often the past reached each value: the empirical share, and beyond the top 2% of the
    past a generalised Pareto tail fitted to it (Pickands' estimator, from the median and upper
    quartile of the excesses: a few huge ones do not bend it), whichever is larger."""
    m = len(past)
    k = int((1 - TAIL) * (m - 1))
    part = np.partition(past, k)
    q = float(part[k])
    top = np.sort(part[k:])
    excess = top[top > q] - q
    # rows at or below q are common (seen in 2% of the past or more): they score nothing
    seen = np.where(values > q, (len(top) - np.searchsorted(top, values)) / m, 1.0)
    zeta = max(len(excess), 1) / m
    shape = 0.0
    if len(excess) >= 8:
        q50, q75 = np.percentile(excess, [50, 75])
        shape = min(max(math.log2(max(q75 - q50, 1e-12) / max(q50, 1e-12)), -0.25), 0.5)
        scale = q50 / math.log(2) if abs(shape) < 1e-3 else q50 * shape / (2**shape - 1)
    else:
        scale = float(excess.mean()) if len(excess) else 0.0
    scale = max(scale, 0.1 * abs(q), 1e-12)
    over = np.maximum(values - q, 0.0) / scale
    if abs(shape) < 1e-3:
        fitted = zeta * np.exp(-over)
    else:
        with np.errstate(divide="ignore"):
            fitted = zeta * np.power(np.maximum(1 + shape * over, 0.0), -1 / shape)
    return np.asarray(np.maximum(seen, np.where(values > q, fitted, 1.0)))
