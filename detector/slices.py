"""The slice watcher: one engine per slice of the feed (acquirer=cielo, brand=visa, ...).

Each slice with enough volume gets the same seasonal baseline and tests as the total (an
`Engine` of its own, the status-mix model off), so a slice that breaks while the total looks
normal is a finding of its own, named by its slice.

The volume floor: a slice is judged only once at least `busy_share` of the hours it has been seen
carried `floor_per_hour` transactions (default: 60 an hour on half the hours); the engine's own
floors (`min_base`, `drop_min_expected`, `outage_min_expected`) then keep quiet minutes unjudged.

The false-alarm budget is shared by all slices (`budget`, default 100: 5 dimensions x 20
values), as a Bonferroni correction of each test: a z threshold z becomes sqrt(z^2 + 2 ln m)
(the Gaussian tail's p divided by m), and the expected approvals an outage needs grow by ln m
(a run of zeros under Poisson has probability e^-expected). While the total is in an episode of
its own, new slice episodes are not raised: the total's drill-down names the slices.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.config import DetectorConfig
from detector.drilldown import drill_down, with_carriers
from detector.engine import Engine
from detector.estimators import BIN_MINUTES, MINUTES_PER_DAY, Seasonal, profile
from detector.findings import Finding, Slice
from detector.ledger import Ledger

MINUTE = timedelta(minutes=1)
COLUMNS = ("minute", "status", "dimension", "value", "count")
KEEP_MINUTES = 120  # minutes of slice counts kept for drill-downs
PRIME_MINUTES = 240  # the last minutes of history replayed into each slice's engine
SHARE_HALF_LIFE = 240.0  # minutes, a slice's share of its dimension's volume
# A slice's z thresholds (1-, 3-, 5-minute windows) before the correction for many slices.
# Lower than the total's (9, 6.5, 6.5): a slice is a hundredth of the total, its noise is mostly
# Poisson, while the total's z grows with volume for any small misfit of the seasonal profile.
SLICE_Z = (6.0, 4.5, 4.5)

#: minute -> (dimension, value) -> status -> count, as the live tick hands a minute in
SliceCounts = Mapping[tuple[str, str], Mapping[str, int]]


def corrected(
    config: DetectorConfig, budget: int, open_z: tuple[float, float, float] = SLICE_Z
) -> DetectorConfig:
    """`config` for one of `budget` slices sharing the false-alarm budget of one series."""
    log_m = math.log(max(budget, 1))
    z1, z3, z5 = (math.sqrt(z * z + 2.0 * log_m) for z in open_z)
    return replace(
        config,
        mix=False,
        open_z=(z1, z3, z5),
        outage_min_expected=config.outage_min_expected + log_m,
        # one minute more of zeros: a slice's outage needs fewer approvals a minute to be seen
        outage_minutes=config.outage_minutes + 1,
    )


@dataclass(slots=True)
class _Slice:
    """One watched slice: its engine, its volume tally and its share of its dimension."""

    engine: Engine
    statuses: set[str] = field(default_factory=set)
    hours_seen: int = 0
    hours_busy: int = 0
    hour_total: float = 0.0
    hour: int | None = None
    level: float = math.nan  # transactions per minute, followed while the slice is quiet
    ledger: Ledger | None = None  # approvals expected and observed, once the slice is busy
    emitted: set[str] = field(default_factory=set)  # engine keys raised as slice findings
    suppressed: set[str] = field(default_factory=set)  # ... and those kept quiet (total open)


def _columns(slices: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """Each row's column number and the (dimension, value, status) of each column (a
    factorization per field, cheaper than of the tuples on months of rows)."""
    codes, names = [], []
    for field_name in ("dimension", "value", "status"):
        code, uniques = pd.factorize(slices[field_name])
        codes.append(code.astype(np.int64))
        names.append([str(u) for u in uniques])
    flat = (codes[0] * len(names[1]) + codes[1]) * len(names[2]) + codes[2]
    used, col = np.unique(flat, return_inverse=True)
    per_value = len(names[1]) * len(names[2])
    columns = [
        (
            names[0][u // per_value],
            names[1][u // len(names[2]) % len(names[1])],
            names[2][u % len(names[2])],
        )
        for u in used.tolist()
    ]
    return col, columns


class SliceWatch:
    """Per-slice detection, warmed on a slice history and stepped one closed minute at a time.

    `budget` is the number of slices that share one false-alarm budget (None: 100, or the
    slices in the history when more; 1 turns the correction off); `floor_per_hour` and
    `busy_share` the volume floor (the module docstring).
    """

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        budget: int | None = None,
        floor_per_hour: float = 60.0,
        busy_share: float = 0.5,
    ) -> None:
        self.config = config or DetectorConfig()
        self.fixed_budget = budget is not None
        self.budget = budget or 100
        self.floor_per_hour = floor_per_hour
        self.busy_share = busy_share
        self._slices: dict[tuple[str, str], _Slice] = {}
        self._recent: deque[tuple[datetime, SliceCounts, Mapping[str, int]]] = deque(
            maxlen=KEEP_MINUTES
        )
        self._share_decay = 0.5 ** (1.0 / SHARE_HALF_LIFE)

    # ---------------------------------------------------------------- history

    def warm(self, slices: pd.DataFrame) -> None:
        """Learn each slice's seasonal baseline and volume from a long slice history
        (`minute, status, dimension, value, count`), then replay its last hours."""
        missing = set(COLUMNS) - set(slices.columns)
        if missing:
            raise DetectorError(f"slice frame lacks columns: {', '.join(sorted(missing))}")
        if slices.empty:
            return
        minutes = pd.to_datetime(slices["minute"], utc=True).dt.floor("min")
        col, columns = _columns(slices)
        first, last = minutes.min(), minutes.max()
        span = pd.date_range(first, last, freq="min")
        seasonal = self._learn(minutes, col, slices["count"].to_numpy(float), columns, span)
        if not self.fixed_budget:
            self.budget = max(self.budget, len({(d, v) for d, v, _ in columns}))
        counts = slices["count"].to_numpy(float)
        offset = ((minutes - first) // pd.Timedelta(minutes=1)).to_numpy()
        self._tally(offset, col, counts, columns, len(span))
        tail_from = len(span) - PRIME_MINUTES
        tail = offset >= tail_from
        dense = np.zeros((min(PRIME_MINUTES, len(span)), len(columns)))
        np.add.at(dense, (offset[tail] - max(tail_from, 0), col[tail]), counts[tail])
        index = span[-dense.shape[0] :]
        by_slice: dict[tuple[str, str], list[int]] = {}
        for i, (d, v, _) in enumerate(columns):
            by_slice.setdefault((d, v), []).append(i)
        config = corrected(self.config, self.budget)
        for key, cols in by_slice.items():
            statuses = tuple(str(columns[i][2]) for i in cols)
            entry = self._entry(key, config)
            entry.statuses.update(statuses)
            season = (
                None
                if seasonal is None
                else Seasonal(statuses, seasonal.table[:, :, cols], seasonal.days, seasonal.tz)
            )
            table = pd.DataFrame(dense[:, cols], index=index, columns=list(statuses))
            entry.engine.prime(season, table)
            entry.level = float(table.sum(axis=1).iloc[-60:].mean())

    def _learn(
        self,
        minutes: pd.Series,
        col: np.ndarray,
        counts: np.ndarray,
        columns: list[tuple[str, str, str]],
        span: pd.DatetimeIndex,
    ) -> Seasonal | None:
        tz = self.config.tz
        if len(span) < MINUTES_PER_DAY:
            return None
        local_span = span.tz_convert(tz)
        origin = local_span.normalize()[0]
        day_of_span = np.asarray((local_span.normalize() - origin).days)
        bin_of_span = np.asarray((local_span.hour * 60 + local_span.minute) // BIN_MINUTES)
        days = int(day_of_span.max()) + 1
        bins = MINUTES_PER_DAY // BIN_MINUTES
        seen = np.zeros((days, bins))
        np.add.at(seen, (day_of_span, bin_of_span), 1)
        at = ((minutes - span[0]) // pd.Timedelta(minutes=1)).to_numpy()
        flat = (day_of_span[at] * bins + bin_of_span[at]) * len(columns) + col
        sums = np.bincount(flat, weights=counts, minlength=days * bins * len(columns))
        weekday = np.full(days, -1)
        weekday[day_of_span] = np.asarray(local_span.day_of_week)
        names = tuple(f"{d}={v}/{s}" for d, v, s in columns)
        return profile(sums.reshape(days, bins, len(columns)), seen, weekday, names, tz)

    def _tally(
        self,
        offset: np.ndarray,
        col: np.ndarray,
        counts: np.ndarray,
        columns: list[tuple[str, str, str]],
        minutes: int,
    ) -> None:
        slice_of = pd.factorize(pd.MultiIndex.from_tuples([(d, v) for d, v, _ in columns]))[0]
        hours = (minutes + 59) // 60
        n_slices = int(slice_of.max()) + 1
        per_hour = np.bincount(
            slice_of[col] * hours + offset // 60, weights=counts, minlength=n_slices * hours
        ).reshape(n_slices, hours)
        config = corrected(self.config, self.budget)
        for i, (d, v, _) in enumerate(columns):
            entry = self._entry((str(d), str(v)), config)
            row = per_hour[slice_of[i]]
            entry.hours_seen = hours
            entry.hours_busy = int((row >= self.floor_per_hour).sum())

    def _entry(self, key: tuple[str, str], config: DetectorConfig | None = None) -> _Slice:
        entry = self._slices.get(key)
        if entry is None:
            entry = _Slice(Engine(config or corrected(self.config, self.budget)))
            self._slices[key] = entry
        return entry

    # ------------------------------------------------------------------- tick

    @property
    def known(self) -> tuple[Slice, ...]:
        """Every slice seen, above the volume floor or not."""
        return tuple(((d, v),) for d, v in self._slices)

    @property
    def watched(self) -> tuple[Slice, ...]:
        """The slices judged now (those above the volume floor)."""
        return tuple(((d, v),) for (d, v), e in self._slices.items() if self._busy(e))

    def _busy(self, entry: _Slice) -> bool:
        return entry.hours_busy > 0 and entry.hours_busy >= self.busy_share * entry.hours_seen

    def step(
        self,
        minute: datetime,
        slices: SliceCounts,
        auth_codes: Mapping[str, int] | None = None,
        *,
        total_open: bool = False,
    ) -> list[Finding]:
        """Judge one closed minute of every slice; return the slice findings that changed.

        `slices` is (dimension, value) -> status -> count for the minute; a known slice missing
        from it had no transactions. A minute without any slice rows is a silent feed, judged by
        the total's watchdog, not here. While `total_open` (the total is in an episode), no new
        slice episode is raised.
        """
        if minute.tzinfo is None:
            raise DetectorError("minute must be timezone-aware")
        self._recent.append((minute, slices, auth_codes or {}))
        if not slices:
            return []
        for key in slices:
            self._entry(key)
        volume = self.config.volume_status
        out: list[Finding] = []
        for key, entry in self._slices.items():
            counts = slices.get(key, {})
            entry.statuses.update(counts)
            row = {s: counts.get(s, 0) for s in entry.statuses} or {volume: 0}
            total = float(sum(row.values()))
            self._count_hour(entry, minute, total)
            if self._busy(entry):
                entry.ledger = entry.ledger or Ledger()
                expected, _ = entry.engine.expectation(minute, volume)
                entry.ledger.add(minute, expected, float(row.get(volume, 0)))
            changed = entry.engine.step(minute, row)
            if not entry.engine.open_findings:
                quiet = math.isnan(entry.level)
                entry.level = (
                    total
                    if quiet
                    else entry.level + (1 - self._share_decay) * (total - entry.level)
                )
            if changed and self._busy(entry):
                out.extend(
                    named
                    for finding in changed
                    if (named := self._name(key, finding, total_open, entry)) is not None
                )
        return out

    def _count_hour(self, entry: _Slice, minute: datetime, total: float) -> None:
        hour = int(minute.timestamp()) // 3600
        if entry.hour != hour:
            if entry.hour is not None:
                entry.hours_seen += 1
                entry.hours_busy += entry.hour_total >= self.floor_per_hour
            entry.hour, entry.hour_total = hour, 0.0
        entry.hour_total += total

    def _name(
        self, key: tuple[str, str], finding: Finding, total_open: bool, entry: _Slice
    ) -> Finding | None:
        if finding.key in entry.suppressed or (total_open and finding.key not in entry.emitted):
            entry.suppressed.add(finding.key)
            if finding.resolved:
                entry.suppressed.discard(finding.key)
            return None
        entry.emitted.add(finding.key)
        if finding.resolved:
            entry.emitted.discard(finding.key)
        return self._named(key, finding, entry)

    def _named(self, key: tuple[str, str], finding: Finding, entry: _Slice) -> Finding:
        """An engine's finding as a slice finding: its slice, its share of the volume and,
        for a surge, the authorization code that carries it."""
        dimension = sum(e.level for k, e in self._slices.items() if k[0] == key[0])
        share = entry.level / max(dimension, entry.level, 1e-9)
        where: Slice = (key,)
        evidence = replace(finding.evidence, slice=where, share=round(share, 4))
        named = replace(
            finding, key=f"{key[0]}={key[1]}/{finding.key}", slice=where, evidence=evidence
        )
        if finding.evidence.lead.status != self.config.volume_status:
            codes = drill_down(named, self.recent_frame(codes_only=True))
            named = replace(named, evidence=with_carriers(evidence, codes))
        return named

    @property
    def open_findings(self) -> list[Finding]:
        """Slice episodes raised and open right now (for `status`: a broken slice)."""
        return [
            self._named(key, finding, entry)
            for key, entry in self._slices.items()
            for finding in entry.engine.open_findings
            if finding.key in entry.emitted
        ]

    def lost(self, where: Slice, start: datetime, end: datetime | None) -> float:
        """Approvals a slice's episode cost over [start, end) (open: up to now), at least 0."""
        entry = self._slices.get(where[0]) if len(where) == 1 else None
        if entry is None or entry.ledger is None:
            return 0.0
        return entry.ledger.lost(start, end)

    # ------------------------------------------------------------- drill-down

    def recent_frame(self, *, codes_only: bool = False) -> pd.DataFrame:
        """The last minutes seen, as a long slice frame (authorization codes as `auth_code`
        slices of the denials), for drill-downs."""
        rows: list[tuple[datetime, str, str, str, int]] = []
        for minute, slices, codes in self._recent:
            for (dimension, value), counts in () if codes_only else slices.items():
                rows.extend((minute, s, dimension, value, n) for s, n in counts.items())
            rows.extend(
                (minute, "denied", "auth_code", c, n) for c, n in codes.items() if c != "00"
            )
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def drill(self, finding: Finding) -> Finding:
        """A total finding with the slices that carry its deviation in its evidence."""
        found = drill_down(finding, self.recent_frame())
        return replace(finding, evidence=with_carriers(finding.evidence, found))
