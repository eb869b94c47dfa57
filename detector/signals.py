"""Signals: a metric out of line at one minute, and the judges that raise them through one loop.

Each judge (approval drops and outages, status-rate surges, the status mix) turns a closed minute
into `Signal`s; drops and surges test the 1-, 3- and 5-minute windows with the same `scan`, which
differs between them only by its `Rule` (direction, thresholds, what must be large enough).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from detector.config import DetectorConfig
from detector.estimators import Seasonal, Share, Volume, Window, decay
from detector.mix import MixModel, features

MINUTE = timedelta(minutes=1)
WINDOWS = (1, 3, 5)
_KIND_RANK = {"outage": 5, "feed_silence": 4, "volume_drop": 3, "surge": 2, "rate": 1, "mix": 0}


def score_of(z: float) -> float:
    """Map a deviation in standard units to a score in [0, 1] (z=10 -> 0.63, z=40 -> 0.98)."""
    return round(1.0 - math.exp(-abs(z) / 10.0), 3)


@dataclass(frozen=True, slots=True)
class Signal:
    """One metric out of line at one minute, as one method saw it."""

    kind: str
    metric: str
    status: str
    z: float
    ratio: float
    expected: float  # per minute over the window
    observed: float  # per minute over the window
    sd: float  # per minute over the window
    total: float  # all transactions per minute over the window
    since: datetime
    critical: bool
    window: int


def rank(signal: Signal) -> tuple[int, int, float]:
    """How much a signal should lead an episode: critical first, then kind, then strength."""
    return (int(signal.critical), _KIND_RANK.get(signal.kind, 0), abs(signal.z))


def strongest(signals: list[Signal]) -> Signal:
    """The signal that leads."""
    return max(signals, key=rank)


@dataclass(frozen=True, slots=True)
class Tick:
    """One closed minute as every judge sees it."""

    minute: datetime
    counts: Mapping[str, int]
    total: float
    seasonal: Seasonal | None
    row: np.ndarray | None  # the seasonal row of this minute, one value per known status
    warmed: bool

    def seasonal_of(self, status: str) -> float | None:
        if self.row is None or self.seasonal is None:
            return None
        idx = self.seasonal.index(status)
        return None if idx is None else float(self.row[idx])


@dataclass(frozen=True, slots=True)
class Rule:
    """How one direction of deviation is tested on a window (drops: -1, surges: +1)."""

    direction: int
    pad: float  # added to the variance (surges of counts near zero)
    keep_ratio: float  # observed / expected beyond this keeps an episode open
    open_ratio: float  # ... and beyond this (with z past open_z) opens one
    keep_min: float  # the amount (expected for drops, observed for surges) needed to keep
    open_min: float  # ... and to open
    on_expected: bool  # whether the amount is the expected count (else the observed)

    def beyond(self, ratio: float, limit: float) -> bool:
        return ratio >= limit if self.direction > 0 else ratio <= limit


@dataclass(frozen=True, slots=True)
class Hit:
    """The strongest window that passed a rule: sums over `window` minutes."""

    z: float
    ratio: float
    window: int
    observed: float
    expected: float
    variance: float


def scan(series: Window, rule: Rule, cfg: DetectorConfig, ready: bool) -> tuple[Hit | None, bool]:
    """The one window loop: the strongest window that opens (if `ready`), and whether any keeps."""
    best: Hit | None = None
    keep = False
    d = rule.direction
    for i, w in enumerate(WINDOWS):
        obs, exp, v = series.window(w)
        if math.isnan(obs):
            continue
        z = (obs - exp) / math.sqrt(v + rule.pad)
        ratio = obs / max(exp, 1e-9)
        amount = exp if rule.on_expected else obs
        if d * z >= cfg.keep_z and rule.beyond(ratio, rule.keep_ratio) and amount >= rule.keep_min:
            keep = True
        if (
            ready
            and d * z >= cfg.open_z[i]
            and rule.beyond(ratio, rule.open_ratio)
            and amount >= rule.open_min
            and (best is None or d * z > d * best.z)
        ):
            best = Hit(z, ratio, w, obs, exp, v)
    return best, keep


class VolumeJudge:
    """Approvals: a drop below the expected volume, or an outage (minutes of zero approvals)."""

    def __init__(self, cfg: DetectorConfig, series: Window) -> None:
        self.cfg = cfg
        self.volume = Volume()
        self.series = series
        self.zero_run = 0
        self.rule = Rule(
            direction=-1,
            pad=0.0,
            keep_ratio=0.85,
            open_ratio=cfg.drop_ratio,
            keep_min=cfg.drop_min_expected / 3,
            open_min=cfg.drop_min_expected,
            on_expected=True,
        )

    def judge(self, tick: Tick) -> tuple[Signal | None, bool]:
        """The minute's signal for approvals, if any, and whether approvals are out of line."""
        cfg = self.cfg
        status = cfg.volume_status
        minute = tick.minute
        x = float(tick.counts.get(status, 0))
        s_val = tick.seasonal_of(status)
        vol = self.volume
        expected = vol.expected(s_val)
        series = self.series
        series.push(x, expected, vol.variance(expected))
        self.zero_run = self.zero_run + 1 if x == 0 else 0
        mild = expected >= 3 and x <= 0.85 * expected
        if mild:
            series.mild_since = series.mild_since or minute
        ready = tick.warmed and vol.seen >= 5
        hit, keep = scan(series, self.rule, cfg, ready)
        best = None
        if hit is not None:
            best = _signal(
                "volume_drop",
                status,
                status,
                hit,
                tick.total,
                series.mild_since or minute,
                hit.ratio <= cfg.critical_drop_ratio and hit.z <= -cfg.critical_z,
            )
        k = cfg.outage_minutes
        if ready and self.zero_run >= k:
            w = min(k, 5)
            obs, exp, v = series.window(w)
            if exp >= cfg.outage_min_expected:
                outage = Hit((obs - exp) / math.sqrt(v), 0.0, w, 0.0, exp, v)
                since = minute - (self.zero_run - 1) * MINUTE
                best = _signal("outage", status, status, outage, tick.total, since, True)
        if not mild:
            series.mild_since = None
        out_of_line = best is not None or keep
        if not (x == 0 and out_of_line):  # an outage must not teach the baseline zero is normal
            vol.update(x, s_val, cfg, slow=out_of_line)
        return best, out_of_line


class ShareJudge:
    """Every other status: a surge of its rate per unit of the remaining volume."""

    def __init__(self, cfg: DetectorConfig, series: dict[str, Window]) -> None:
        self.cfg = cfg
        self.series = series
        self.shares: dict[str, Share] = {}
        self.forget = decay(cfg.share_half_life)
        self.rule = Rule(
            direction=1,
            pad=1.0,
            keep_ratio=1.5,
            open_ratio=cfg.surge_ratio,
            keep_min=2.0,
            open_min=float(cfg.surge_min_events),
            on_expected=False,
        )

    def judge(
        self, tick: Tick, previously: set[str], level: float
    ) -> tuple[list[Signal], set[str]]:
        """Signals of the statuses whose rate surged; `previously` flagged statuses are left out
        of the base, `level` is the total's usual volume (NaN before it is known)."""
        cfg = self.cfg
        counts = tick.counts
        excluded = sum(counts.get(t, 0) for t in previously if t != cfg.volume_status)
        seas_total = float(tick.row.sum()) if tick.row is not None else 0.0
        signals: list[Signal] = []
        flagged: set[str] = set()
        level = 0.0 if math.isnan(level) else level
        for status, share in self.shares.items():
            x = float(counts.get(status, 0))
            own = counts.get(status, 0) if status in previously else 0
            base = max(tick.total - x - (excluded - own), 0.0)
            prior: float | None = None
            weight = 0.0
            s_val = tick.seasonal_of(status)
            if s_val is not None and seas_total > 0:
                s_base = max(seas_total - s_val, 1e-9)
                prior = s_val / s_base
                weight = 60.0 * s_base
            rate = share.rate(prior, weight)
            # when the rest of the traffic collapses, a status is judged against its usual volume
            lam = max(base, 0.5 * level) * rate
            judged = tick.warmed and max(base, level) >= cfg.min_base
            var = lam * share.dispersion()
            series = self.series[status]
            series.push(x, lam, var)
            mild = x >= 2 and x > lam + 2.0 * math.sqrt(var + 1.0)
            if mild:
                series.mild_since = series.mild_since or tick.minute
            hit, keep = scan(series, self.rule, cfg, judged)
            if hit is not None:
                w = hit.window
                tot = sum(list(self._totals())[-w:]) if w > 1 else tick.total
                signals.append(
                    _signal(
                        "surge" if hit.ratio >= cfg.critical_surge_ratio else "rate",
                        f"{status}_rate",
                        status,
                        hit,
                        tot / w,
                        series.mild_since or tick.minute,
                        hit.ratio >= cfg.critical_surge_ratio and hit.z >= cfg.critical_z,
                    )
                )
            if hit is not None or keep:
                flagged.add(status)
            else:
                share.update(x, base, lam, self.forget)
            if not mild:
                series.mild_since = None
        return signals, flagged

    def _totals(self) -> deque[float]:
        # totals of the last minutes, derived from the per-status series (all pushed this minute)
        sums = [0.0] * 5
        for series in self.series.values():
            for j, value in enumerate(reversed(series.obs)):
                sums[4 - j] += value
        n = max((len(s.obs) for s in self.series.values()), default=0)
        return deque(sums[5 - n :], maxlen=5)


class MixJudge:
    """An IsolationForest over the status mix: unusual combinations no single rate shows."""

    def __init__(self, cfg: DetectorConfig, statuses: list[str]) -> None:
        self.cfg = cfg
        self.statuses = statuses
        self.model: MixModel | None = None
        self.rows: deque[np.ndarray] = deque(maxlen=4096)
        self.fitted_at = 0
        self.run = 0

    def fit(self, rows: np.ndarray, statuses: list[str], seen: int) -> None:
        self.model = MixModel(statuses, rows, seed=self.cfg.seed)
        self.fitted_at = seen

    def judge(self, tick: Tick, seen: int, flagged: set[str]) -> Signal | None:
        """A mix signal when the minute's shares stayed unusual for `mix_persist` minutes."""
        cfg = self.cfg
        counts = tick.counts
        if tick.total < cfg.mix_min_total:
            self.run = 0
            return None
        model = self.model
        stale = model is None or seen - self.fitted_at >= cfg.mix_refit_minutes
        if stale and len(self.rows) >= cfg.mix_min_rows:
            self.fit(padded(self.rows, len(self.statuses)), self.statuses, seen)
            model = self.model
        row_all = features([counts.get(s, 0) for s in self.statuses])
        if not flagged:
            self.rows.append(row_all)
        if model is None or not tick.warmed:
            return None
        row = features([counts.get(s, 0) for s in model.statuses])
        score = model.score(row)
        if score <= model.threshold:
            self.run = 0
            return None
        self.run += 1
        if self.run < cfg.mix_persist:
            return None
        normal = self._mean(model)
        idx = int(np.argmax(np.abs(row - normal)))
        share_now = float(row[idx] ** 2)
        share_normal = float(normal[idx] ** 2)
        return Signal(
            kind="mix",
            metric="mix",
            status=model.statuses[idx],
            z=(score - model.threshold) * 100.0,
            ratio=share_now / max(share_normal, 1e-9),
            expected=share_normal,
            observed=share_now,
            sd=0.0,
            total=tick.total,
            since=tick.minute - (self.run - 1) * MINUTE,
            critical=False,
            window=1,
        )

    def _mean(self, model: MixModel) -> np.ndarray:
        if not self.rows:
            return np.zeros(len(model.statuses))
        recent = list(self.rows)[-360:]
        return np.asarray(np.mean(padded(recent, len(model.statuses)), axis=0))


def padded(rows: deque[np.ndarray] | list[np.ndarray], width: int) -> np.ndarray:
    """Rows as one matrix; statuses only ever append, so a shorter row is zero at the end."""
    out = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        n = min(len(row), width)
        out[i, :n] = row[:n]
    return out


def _signal(
    kind: str,
    metric: str,
    status: str,
    hit: Hit,
    total: float,
    since: datetime,
    critical: bool,
) -> Signal:
    w = hit.window
    return Signal(
        kind=kind,
        metric=metric,
        status=status,
        z=hit.z,
        ratio=hit.ratio,
        expected=hit.expected / w,
        observed=hit.observed / w,
        sd=math.sqrt(hit.variance) / w,
        total=total,
        since=since,
        critical=critical,
        window=w,
    )
