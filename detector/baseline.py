"""The seasonal baseline: expected count per status by local time of day and weekday, from history.

Medians across days make it robust to past incidents: one bad afternoon in a month of history does
not move the median of that half hour.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime, tzinfo

import numpy as np
import pandas as pd

from detector import DetectorError

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
    with np.errstate(invalid="ignore", divide="ignore"):
        per_day = sums / seen[:, :, None]
    per_day[seen < BIN_MINUTES / 2] = np.nan
    day_weekday = np.full(days, -1)
    day_weekday[day_number] = weekday
    weeks = days // 7
    if weeks >= 2:
        profiles = np.stack([_median(per_day[day_weekday == d], per_day) for d in range(7)], axis=0)
    else:
        profiles = _median(per_day, per_day)[None, :, :]
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


def _median(rows: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Median across days of (day, bin, status) rows, falling back to all days where empty."""
    with warnings.catch_warnings():
        # an all-NaN slice (a bin no day covered) is expected here and handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(rows, axis=0) if len(rows) else np.full(fallback.shape[1:], np.nan)
        backup = np.nanmedian(fallback, axis=0)
    med = np.where(np.isnan(med), backup, med)
    return np.nan_to_num(med, nan=0.0)
