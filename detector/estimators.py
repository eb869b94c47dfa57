"""The estimators: what a count or a series is expected to be (seasonal, level, share models).

For the feed: `Seasonal` (expected count per status by local time of day and weekday, medians
across days so one bad afternoon in a month does not move the median of that half hour), `Volume`
(approvals: the seasonal profile x today's ratio, or a damped level and trend), `Share` (a
status's rate per unit of the other statuses) and `Window` (the last minutes of one metric). For
any series (`detect`): `find_period` (the cycle the autocorrelation shows) and `cycle_median`
(the median of the same phase in past cycles), built on the same median-across-cycles idea.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, tzinfo

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.config import DetectorConfig

MINUTES_PER_DAY = 1440
BIN_MINUTES = 30


@dataclass(frozen=True, slots=True)
class Seasonal:
    """Expected count per minute for each status, indexed by local weekday and minute of day."""

    statuses: tuple[str, ...]
    table: np.ndarray  # shape (1 or 7, 1440, len(statuses)), expected count per minute
    days: int
    tz: tzinfo

    def row(self, minute: datetime) -> np.ndarray:
        """Expected counts of `minute` (aware), one per status in `statuses` order."""
        local = minute.astimezone(self.tz)
        day = local.weekday() if self.table.shape[0] == 7 else 0
        return self.table[day, local.hour * 60 + local.minute]  # type: ignore[no-any-return]

    def index(self, status: str) -> int | None:
        """Column of `status` in the table, or None when history never saw it."""
        try:
            return self.statuses.index(status)
        except ValueError:
            return None


def dense_counts(history: pd.DataFrame) -> pd.DataFrame:
    """A sparse `minute, status, count` frame as a dense minute x status table (missing = 0)."""
    missing = {"minute", "status", "count"} - set(history.columns)
    if missing:
        raise DetectorError(f"history frame lacks columns: {', '.join(sorted(missing))}")
    if history.empty:
        return pd.DataFrame()
    minutes = pd.to_datetime(history["minute"], utc=True).dt.floor("min")
    frame = pd.DataFrame(
        {"minute": minutes, "status": history["status"].astype(str), "count": history["count"]}
    )
    table = frame.pivot_table(
        index="minute", columns="status", values="count", aggfunc="sum", fill_value=0
    )
    full = pd.date_range(table.index.min(), table.index.max(), freq="min")
    return table.reindex(full, fill_value=0).astype(float)


def learn(history: pd.DataFrame, tz: tzinfo, *, min_days: int = 1) -> Seasonal | None:
    """The seasonal profile of `history`, or None when it covers less than `min_days` days."""
    table = dense_counts(history)
    if table.empty or len(table) < min_days * MINUTES_PER_DAY:
        return None
    statuses = tuple(str(c) for c in table.columns)
    local = pd.DatetimeIndex(table.index).tz_convert(tz)
    minute_of_day = np.asarray(local.hour * 60 + local.minute)
    day_number = np.asarray((local.normalize() - local.normalize()[0]).days)
    weekday = np.asarray(local.day_of_week)
    days = int(day_number.max()) + 1
    bins = MINUTES_PER_DAY // BIN_MINUTES
    values = table.to_numpy()
    # mean count per minute in each (day, half-hour bin), NaN where the day lacks that bin
    sums = np.zeros((days, bins, len(statuses)))
    seen = np.zeros((days, bins))
    bin_of = minute_of_day // BIN_MINUTES
    np.add.at(sums, (day_number, bin_of), values)
    np.add.at(seen, (day_number, bin_of), 1)
    day_weekday = np.full(days, -1)
    day_weekday[day_number] = weekday
    return profile(sums, seen, day_weekday, statuses, tz)


def profile(
    sums: np.ndarray,
    seen: np.ndarray,
    day_weekday: np.ndarray,
    statuses: tuple[str, ...],
    tz: tzinfo,
) -> Seasonal:
    """The seasonal profile from per (day, half-hour bin, column) sums over `seen` minutes:
    medians across days (per weekday from two weeks on), interpolated to every minute."""
    days, bins = seen.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        per_day = sums / seen[:, :, None]
    per_day[seen < BIN_MINUTES / 2] = np.nan
    weeks = days // 7
    if weeks >= 2:
        profiles = np.stack(
            [median_across(per_day[day_weekday == d], per_day) for d in range(7)], axis=0
        )
    else:
        profiles = median_across(per_day, per_day)[None, :, :]
    # interpolate bin means (at bin centres) to every minute of the day, circularly
    centres = np.arange(bins) * BIN_MINUTES + BIN_MINUTES / 2
    xs = np.arange(MINUTES_PER_DAY)
    ext_c = np.concatenate([centres - MINUTES_PER_DAY, centres, centres + MINUTES_PER_DAY])
    out = np.empty((profiles.shape[0], MINUTES_PER_DAY, len(statuses)))
    for p in range(profiles.shape[0]):
        for s in range(len(statuses)):
            col = profiles[p, :, s]
            out[p, :, s] = np.interp(xs, ext_c, np.concatenate([col, col, col]))
    return Seasonal(statuses, out, days, tz)


def nanmedian(rows: np.ndarray) -> np.ndarray:
    """Median along the first axis ignoring NaN; NaN where a column has none."""
    with warnings.catch_warnings():
        # an all-NaN slice (a bin no day covered, a phase no cycle saw) is expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(rows, axis=0))


def median_across(rows: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median across days of (day, bin, status) rows, falling back to all days where empty."""
    med = nanmedian(rows) if len(rows) else np.full(fallback.shape[1:], np.nan)
    med = np.where(np.isnan(med), nanmedian(fallback), med)
    return np.asarray(np.nan_to_num(med, nan=0.0))


def decay(half_life: float) -> float:
    """The per-step factor of an exponential average with this half-life (in steps)."""
    return float(0.5 ** (1.0 / half_life))


class Window:
    """The last five minutes of one metric: observed, expected and variance."""

    __slots__ = ("exp", "mild_since", "obs", "var")

    def __init__(self) -> None:
        self.obs: list[float] = []
        self.exp: list[float] = []
        self.var: list[float] = []
        self.mild_since: datetime | None = None

    def push(self, x: float, e: float, v: float) -> None:
        if len(self.obs) == 5:
            del self.obs[0], self.exp[0], self.var[0]
        self.obs.append(x)
        self.exp.append(e)
        self.var.append(v)

    def window(self, w: int) -> tuple[float, float, float]:
        if len(self.obs) < w:
            return (math.nan, math.nan, math.nan)
        return (sum(self.obs[-w:]), sum(self.exp[-w:]), sum(self.var[-w:]))


class Volume:
    """Expected approvals per minute: seasonal profile x today's ratio, or level + damped trend."""

    __slots__ = ("level", "ratio", "resid", "seen", "trend")

    def __init__(self) -> None:
        self.level = math.nan
        self.trend = 0.0
        self.ratio = 1.0
        self.resid = math.nan
        self.seen = 0

    def expected(self, seasonal: float | None) -> float:
        if seasonal is not None and seasonal > 0:
            return max(seasonal * self.ratio, 0.0)
        if math.isnan(self.level):
            return 0.0
        return max(self.level + self.trend, 0.0)

    def variance(self, expected: float) -> float:
        resid = expected if math.isnan(self.resid) else self.resid
        return max(resid, expected, 1.0)

    def restart(self, x: float) -> None:
        """Back after a silence: the level it had is stale, start again from `x`."""
        self.level = x
        self.trend = 0.0

    def update(self, x: float, seasonal: float | None, cfg: DetectorConfig, slow: bool) -> None:
        expected = self.expected(seasonal)
        self.seen += 1
        a_level = 1.0 - decay(cfg.slow_half_life if slow else cfg.level_half_life)
        a_ratio = 1.0 - decay(cfg.slow_half_life if slow else cfg.ratio_half_life)
        if seasonal is not None and seasonal > 0:
            r = min(max(x / seasonal, 0.2), 5.0)
            self.ratio += a_ratio * (r - self.ratio)
        if math.isnan(self.level):
            self.level = x
        else:
            prev = self.level
            self.level = a_level * x + (1.0 - a_level) * (self.level + self.trend)
            b = 1.0 - decay(cfg.trend_half_life)
            self.trend = 0.95 * (b * (self.level - prev) + (1.0 - b) * self.trend)
        if not slow and self.seen > 1:
            err = (x - expected) ** 2
            a_var = 1.0 - decay(cfg.trend_half_life)
            self.resid = err if math.isnan(self.resid) else self.resid + a_var * (err - self.resid)


class Share:
    """A status's rate per unit of base volume (the other statuses), and its over-dispersion."""

    __slots__ = ("den", "lam", "num", "sq")

    def __init__(self, den: float = 0.0) -> None:
        self.num = 0.0
        self.den = den
        self.sq = 0.0
        self.lam = 0.0

    def rate(self, prior: float | None, weight: float) -> float:
        if prior is not None:
            return (self.num + prior * weight) / (self.den + weight)
        return (self.num + 0.5) / (self.den + 1.0)

    def dispersion(self) -> float:
        return min(max((self.sq + 20.0) / (self.lam + 20.0), 1.0), 10.0)

    def update(self, x: float, base: float, lam: float, decay: float) -> None:
        self.num = decay * self.num + x
        self.den = decay * self.den + base
        self.sq = decay * self.sq + (x - lam) ** 2
        self.lam = decay * self.lam + lam


def find_period(
    y: np.ndarray,
    *,
    calendar: tuple[float, ...] = (),
    min_cycles: int = 2,
    strength: float = 0.3,
) -> int | None:
    """The cycle of a regular series (in steps) its autocorrelation shows, or None.

    `y` is linearly detrended; the lag picked is the autocorrelation's highest peak that is at
    least `strength` and rises from a trough below it (so a slow drift, whose autocorrelation
    only decays, has none), and is seen `min_cycles` times; of peaks nearly as high, the shortest
    wins (a daily series also peaks at two days). A `calendar` cycle (a day, a week, in steps)
    that correlates nearly as well is preferred; otherwise the peak is placed between lags by a
    parabola.
    """
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    n = len(y)
    if n < 8 * min_cycles:
        return None
    t = np.arange(n, dtype=float)
    slope, intercept = np.polyfit(t, y, 1)
    y = y - (slope * t + intercept)
    if not np.any(y):
        return None
    spectrum = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    acf = acf / acf[0] * n / (n - np.arange(n))  # unbiased: fewer pairs at long lags
    top = n // min_cycles
    if top < 4:
        return None
    lags = np.arange(3, top)
    a = acf[lags]
    peak = (a >= acf[lags - 1]) & (a >= acf[lags + 1]) & (a >= strength)
    trough = np.minimum.accumulate(acf[1:top])[lags - 1]
    peak &= a - trough >= strength
    if not peak.any():
        return None
    best = float(a[peak].max())
    for cycle in sorted(calendar):
        c = round(cycle)
        if 3 <= c < top and acf[c] >= max(strength, 0.85 * best):
            return c
    lag = int(lags[peak & (a >= 0.9 * best)][0])
    left, mid, right = acf[lag - 1], acf[lag], acf[lag + 1]
    bend = left - 2 * mid + right
    return round(lag + (0.5 * (left - right) / bend if bend < 0 else 0.0))


def cycle_median(grid: np.ndarray, at: np.ndarray, period: int, cycles: int = 3) -> np.ndarray:
    """For each step `at`, the median of `grid` at the same phase in the `cycles` cycles before
    it (NaN where none is known): the seasonal expectation, unmoved by one bad cycle."""
    back = np.full((cycles, len(at)), np.nan)
    for k in range(1, cycles + 1):
        src = at - k * period
        ok = src >= 0
        back[k - 1, ok] = grid[src[ok]]
    if cycles != 3:
        return nanmedian(back)
    # the median of three without sorting (fmin and fmax pass over NaN: of two, the larger)
    a, b, c = back
    return np.asarray(np.fmax(np.fmin(a, b), np.fmin(np.fmax(a, b), c)))
