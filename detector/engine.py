"""The online engine: judges each closed minute of the feed from what came before, in episodes.

Per minute and per status it forms an expectation (a seasonal profile learned from history, scaled
to today's level; or, on a cold start, a damped level-and-trend follower), then tests the 1-, 3- and
5-minute windows: approvals for drops and outages, every other status for a surge of its rate per
unit of the remaining volume. An IsolationForest over the status mix catches unusual combinations.
All signals of a minute fold into one episode that opens, updates and resolves.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.baseline import Seasonal, dense_counts, learn
from detector.config import DetectorConfig
from detector.explain import clock, code_name, dominant_code, number, percent, top_merchants
from detector.findings import Finding, Segment, Severity
from detector.mix import MixModel, features

__all__ = ["DetectorConfig", "Engine", "Finding"]

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
_WINDOWS = (1, 3, 5)
_KIND_RANK = {"outage": 5, "feed_silence": 4, "volume_drop": 3, "surge": 2, "rate": 1, "mix": 0}


def _decay(half_life: float) -> float:
    return float(0.5 ** (1.0 / half_life))


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


class _Series:
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


class _Volume:
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

    def update(self, x: float, seasonal: float | None, cfg: DetectorConfig, slow: bool) -> None:
        expected = self.expected(seasonal)
        self.seen += 1
        a_level = 1.0 - _decay(cfg.slow_half_life if slow else cfg.level_half_life)
        a_ratio = 1.0 - _decay(cfg.slow_half_life if slow else cfg.ratio_half_life)
        if seasonal is not None and seasonal > 0:
            r = min(max(x / seasonal, 0.2), 5.0)
            self.ratio += a_ratio * (r - self.ratio)
        if math.isnan(self.level):
            self.level = x
        else:
            prev = self.level
            self.level = a_level * x + (1.0 - a_level) * (self.level + self.trend)
            b = 1.0 - _decay(cfg.trend_half_life)
            self.trend = 0.95 * (b * (self.level - prev) + (1.0 - b) * self.trend)
        if not slow and self.seen > 1:
            err = (x - expected) ** 2
            a_var = 1.0 - _decay(cfg.trend_half_life)
            self.resid = err if math.isnan(self.resid) else self.resid + a_var * (err - self.resid)


class _Share:
    """A status's rate per unit of base volume (the other statuses), and its over-dispersion."""

    __slots__ = ("den", "lam", "num", "sq")

    def __init__(self) -> None:
        self.num = 0.0
        self.den = 0.0
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


@dataclass(slots=True)
class _Open:
    """A metric's open segment (mutable working state)."""

    peak: Signal
    start: datetime
    detected_at: datetime
    last_active: datetime
    quiet: int = 0
    critical: bool = False
    episode: str = ""
    codes: Counter[str] = field(default_factory=Counter)
    merchants: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.critical = self.peak.critical


@dataclass(slots=True)
class _Episode:
    """An open episode while it lasts (mutable working state, never handed out)."""

    key: str
    kind: str
    metric: str
    start: datetime
    detected_at: datetime
    severity: Severity
    score: float
    lead: Signal
    statuses: list[str]
    last_active: datetime
    quiet: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    merchants: dict[str, Counter[str]] = field(default_factory=dict)
    emitted: tuple[object, ...] = ()


class Engine:
    """The online detector, fed one closed minute at a time (see the module docstring)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._seasonal: Seasonal | None = None
        self._volume = _Volume()
        self._shares: dict[str, _Share] = {}
        self._series: dict[str, _Series] = {}
        self._statuses: list[str] = []
        self._flagged: set[str] = set()
        self._seen = 0
        self._last_minute: datetime | None = None
        self._total_level = math.nan
        self._episode: _Episode | None = None
        self._segments: dict[str, _Open] = {}
        self.segment_log: list[Segment] = []
        self._silence: _Episode | None = None
        self._mix: MixModel | None = None
        self._mix_rows: deque[np.ndarray] = deque(maxlen=4096)
        self._mix_fitted_at = 0
        self._mix_run = 0
        self._zero_run = 0
        self._pending = 0
        self._base_seen = 0.0
        self._share_decay = _decay(self.config.share_half_life)
        self._total_decay = _decay(30.0)

    # ---------------------------------------------------------------- history

    def warm(self, history: pd.DataFrame) -> None:
        """Learn the seasonal baseline from stored history (`minute`, `status`, `count`, sparse).

        Works with no rows (cold start: the engine learns online and judges after
        `min_warm_minutes`) and with months of history. The last hours are replayed through the
        online state so the first live minute is judged against today's level.
        """
        table = dense_counts(history)
        if table.empty:
            return
        self._seasonal = learn(history, self.config.tz)
        for status in table.columns:
            self._register(str(status))
        tail = table.iloc[-720:]
        cols = [str(c) for c in tail.columns]
        values = tail.to_numpy()
        for i, minute in enumerate(tail.index):
            self.step(minute.to_pydatetime(), dict(zip(cols, values[i].tolist(), strict=True)))
        self._episode = None
        self._segments.clear()
        self.segment_log.clear()
        if self.config.mix and len(table) >= self.config.mix_min_rows:
            self._fit_mix_from(table)
        log.info(
            "detector warmed: %d minutes of history, seasonal=%s",
            len(table),
            "none" if self._seasonal is None else f"{self._seasonal.days} days",
        )

    def _fit_mix_from(self, table: pd.DataFrame) -> None:
        totals = table.sum(axis=1)
        busy = table[totals >= self.config.mix_min_total].iloc[-4096:]
        if len(busy) < self.config.mix_min_rows:
            return
        statuses = [str(c) for c in busy.columns]
        rows = np.vstack([features(r) for r in busy.to_numpy()])
        self._mix = MixModel(statuses, rows, seed=self.config.seed)
        self._mix_fitted_at = self._seen

    # ------------------------------------------------------------------- tick

    def step(
        self,
        minute: datetime,
        counts: Mapping[str, int],
        auth_codes: Mapping[str, int] | None = None,
        merchants: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[Finding]:
        """Judge one closed minute (UTC aware) from what came before it; return what changed.

        `counts` is status -> count for the minute (missing = 0), `auth_codes` the authorization
        code breakdown of the same minute, `merchants` status -> merchant_id -> count.
        """
        if minute.tzinfo is None:
            raise DetectorError("minute must be timezone-aware")
        minute = minute.replace(second=0, microsecond=0)
        cfg = self.config
        if not counts:
            # no row at all: a silent feed looks the same as zero sales; the watchdog judges it
            return []
        for status in counts:
            if status not in self._shares and status != cfg.volume_status:
                self._register(status)
        self._seen += 1
        gap = self._last_minute is not None and minute - self._last_minute > 5 * MINUTE
        self._last_minute = minute
        total = float(sum(counts.values()))
        if gap and not math.isnan(self._volume.level):
            # back after a silence: the level it had is stale, start again from what comes now
            self._volume.level = float(counts.get(cfg.volume_status, 0))
            self._volume.trend = 0.0
            self._total_level = total
        seas = self._seasonal.row(minute) if self._seasonal is not None else None
        warmed = self._seasonal is not None or self._seen > cfg.min_warm_minutes
        signals: list[Signal] = []
        flagged: set[str] = set()

        self._judge_volume(minute, counts, total, seas, warmed, signals, flagged)
        self._judge_shares(minute, counts, total, seas, warmed, signals, flagged)
        if cfg.mix:
            self._judge_mix(minute, counts, total, warmed, signals, flagged)
        self._flagged = flagged
        self._base_seen = self._share_decay * self._base_seen + total
        if math.isnan(self._total_level):
            self._total_level = total
        elif not flagged:
            self._total_level += (1.0 - self._total_decay) * (total - self._total_level)
        return self._fold(minute, signals, flagged, auth_codes, merchants)

    def _register(self, status: str) -> None:
        if status not in self._statuses:
            self._statuses.append(status)
        if status != self.config.volume_status and status not in self._shares:
            # a status seen for the first time has been zero all along, not unknown
            share = _Share()
            share.den = self._base_seen
            self._shares[status] = share
        self._series.setdefault(status, _Series())

    def _seasonal_of(self, seas: np.ndarray | None, status: str) -> float | None:
        if seas is None or self._seasonal is None:
            return None
        idx = self._seasonal.index(status)
        return None if idx is None else float(seas[idx])

    def _judge_volume(
        self,
        minute: datetime,
        counts: Mapping[str, int],
        total: float,
        seas: np.ndarray | None,
        warmed: bool,
        signals: list[Signal],
        flagged: set[str],
    ) -> None:
        cfg = self.config
        status = cfg.volume_status
        self._register(status)
        x = float(counts.get(status, 0))
        s_val = self._seasonal_of(seas, status)
        vol = self._volume
        expected = vol.expected(s_val)
        var = vol.variance(expected)
        series = self._series[status]
        series.push(x, expected, var)
        self._zero_run = self._zero_run + 1 if x == 0 else 0
        mild = expected >= 3 and x <= 0.85 * expected
        if mild:
            series.mild_since = series.mild_since or minute
        best: Signal | None = None
        keep = False
        ready = warmed and vol.seen >= 5
        for i, w in enumerate(_WINDOWS):
            obs, exp, v = series.window(w)
            if math.isnan(obs) or exp <= 0:
                continue
            z = (obs - exp) / math.sqrt(v)
            ratio = obs / exp
            if z <= -cfg.keep_z and ratio <= 0.85 and exp >= cfg.drop_min_expected / 3:
                keep = True
            if (
                ready
                and z <= -cfg.open_z[i]
                and ratio <= cfg.drop_ratio
                and exp >= cfg.drop_min_expected
            ):
                sig = Signal(
                    kind="volume_drop",
                    metric=status,
                    status=status,
                    z=z,
                    ratio=ratio,
                    expected=exp / w,
                    observed=obs / w,
                    sd=math.sqrt(v) / w,
                    total=total,
                    since=series.mild_since or minute,
                    critical=ratio <= cfg.critical_drop_ratio and z <= -cfg.critical_z,
                    window=w,
                )
                if best is None or sig.z < best.z:
                    best = sig
        k = cfg.outage_minutes
        if ready and self._zero_run >= k:
            obs, exp, v = series.window(min(k, 5))
            if exp >= cfg.outage_min_expected:
                since = minute - (self._zero_run - 1) * MINUTE
                best = Signal(
                    kind="outage",
                    metric=status,
                    status=status,
                    z=(obs - exp) / math.sqrt(v),
                    ratio=0.0,
                    expected=exp / min(k, 5),
                    observed=0.0,
                    sd=math.sqrt(v) / min(k, 5),
                    total=total,
                    since=since,
                    critical=True,
                    window=min(k, 5),
                )
        if best is not None:
            signals.append(best)
        if best is not None or keep:
            flagged.add(status)
        if not mild:
            series.mild_since = None
        if x == 0 and (best is not None or keep):
            return  # an outage must not teach the baseline that zero is normal
        vol.update(x, s_val, cfg, slow=best is not None or keep)

    def _judge_shares(
        self,
        minute: datetime,
        counts: Mapping[str, int],
        total: float,
        seas: np.ndarray | None,
        warmed: bool,
        signals: list[Signal],
        flagged: set[str],
    ) -> None:
        cfg = self.config
        excluded = sum(counts.get(t, 0) for t in self._flagged if t != cfg.volume_status)
        seas_total = float(seas.sum()) if seas is not None else 0.0
        for status, share in self._shares.items():
            x = float(counts.get(status, 0))
            base = max(
                total - x - (excluded - (counts.get(status, 0) if status in self._flagged else 0)),
                0.0,
            )
            prior: float | None = None
            weight = 0.0
            s_val = self._seasonal_of(seas, status)
            if s_val is not None and seas_total > 0:
                s_base = max(seas_total - s_val, 1e-9)
                prior = s_val / s_base
                weight = 60.0 * s_base
            rate = share.rate(prior, weight)
            level = 0.0 if math.isnan(self._total_level) else self._total_level
            # when the rest of the traffic collapses, a status is judged against its usual volume
            lam = max(base, 0.5 * level) * rate
            judged = warmed and max(base, level) >= cfg.min_base
            phi = share.dispersion()
            var = lam * phi
            series = self._series[status]
            series.push(x, lam, var)
            mild = x >= 2 and x > lam + 2.0 * math.sqrt(var + 1.0)
            if mild:
                series.mild_since = series.mild_since or minute
            best: Signal | None = None
            keep = False
            for i, w in enumerate(_WINDOWS):
                obs, exp, v = series.window(w)
                if math.isnan(obs):
                    continue
                z = (obs - exp) / math.sqrt(v + 1.0)
                ratio = obs / max(exp, 1e-9)
                if z >= cfg.keep_z and ratio >= 1.5 and obs >= 2:
                    keep = True
                if (
                    judged
                    and z >= cfg.open_z[i]
                    and ratio >= cfg.surge_ratio
                    and obs >= cfg.surge_min_events
                ):
                    tot = sum(list(self._series_total)[-w:]) if w > 1 else total
                    sig = Signal(
                        kind="surge" if ratio >= cfg.critical_surge_ratio else "rate",
                        metric=f"{status}_rate",
                        status=status,
                        z=z,
                        ratio=ratio,
                        expected=exp / w,
                        observed=obs / w,
                        sd=math.sqrt(v) / w,
                        total=tot / w,
                        since=series.mild_since or minute,
                        critical=ratio >= cfg.critical_surge_ratio and z >= cfg.critical_z,
                        window=w,
                    )
                    if best is None or sig.z > best.z:
                        best = sig
            if best is not None:
                signals.append(best)
            if best is not None or keep:
                flagged.add(status)
            else:
                share.update(x, base, lam, self._share_decay)
            if not mild:
                series.mild_since = None

    @property
    def _series_total(self) -> deque[float]:
        # totals of the last minutes, derived from the per-status series (all pushed this minute)
        sums = [0.0] * 5
        for series in self._series.values():
            for j, value in enumerate(reversed(series.obs)):
                sums[4 - j] += value
        n = max((len(s.obs) for s in self._series.values()), default=0)
        return deque(sums[5 - n :], maxlen=5)

    def _judge_mix(
        self,
        minute: datetime,
        counts: Mapping[str, int],
        total: float,
        warmed: bool,
        signals: list[Signal],
        flagged: set[str],
    ) -> None:
        cfg = self.config
        if total < cfg.mix_min_total:
            self._mix_run = 0
            return
        model = self._mix
        stale = model is None or self._seen - self._mix_fitted_at >= cfg.mix_refit_minutes
        if stale and len(self._mix_rows) >= cfg.mix_min_rows:
            rows = _padded(self._mix_rows, len(self._statuses))
            self._mix = model = MixModel(self._statuses, rows, seed=cfg.seed)
            self._mix_fitted_at = self._seen
        row_all = features([counts.get(s, 0) for s in self._statuses])
        if not flagged:
            self._mix_rows.append(row_all)
        if model is None or not warmed:
            return
        row = features([counts.get(s, 0) for s in model.statuses])
        score = model.score(row)
        if score <= model.threshold:
            self._mix_run = 0
            return
        self._mix_run += 1
        if self._mix_run < cfg.mix_persist:
            return
        normal = self._mix_mean(model)
        deviation = row - normal
        idx = int(np.argmax(np.abs(deviation)))
        status = model.statuses[idx]
        share_now = float(row[idx] ** 2)
        share_normal = float(normal[idx] ** 2)
        signals.append(
            Signal(
                kind="mix",
                metric="mix",
                status=status,
                z=(score - model.threshold) * 100.0,
                ratio=share_now / max(share_normal, 1e-9),
                expected=share_normal,
                observed=share_now,
                sd=0.0,
                total=total,
                since=minute - (self._mix_run - 1) * MINUTE,
                critical=False,
                window=1,
            )
        )
        flagged.add(status)

    def _mix_mean(self, model: MixModel) -> np.ndarray:
        if not self._mix_rows:
            return np.zeros(len(model.statuses))
        recent = list(self._mix_rows)[-360:]
        return np.asarray(np.mean(_padded(recent, len(model.statuses)), axis=0))

    # --------------------------------------------------------------- episodes

    def _fold(
        self,
        minute: datetime,
        signals: list[Signal],
        flagged: set[str],
        auth_codes: Mapping[str, int] | None,
        merchants: Mapping[str, Mapping[str, int]] | None,
    ) -> list[Finding]:
        cfg = self.config
        out: list[Finding] = []
        ep = self._episode
        closed_at = minute + MINUTE
        self._track_segments(minute, signals, flagged)
        if ep is None:
            if not signals:
                self._pending = 0
                return out
            critical = any(s.critical for s in signals)
            self._pending = self._pending + 1 if signals else 0
            if not critical and self._pending < cfg.confirm_minutes:
                return out  # a warning must hold a few minutes: no crying wolf at 3 a.m.
            lead = _strongest(signals)
            start = min(s.since for s in signals)
            self._pending = 0
            ep = _Episode(
                key=f"{start.astimezone(cfg.tz).strftime('%Y%m%d-%H%M')}-{lead.metric}",
                kind=lead.kind,
                metric=lead.metric,
                start=start,
                detected_at=closed_at,
                severity="critical" if any(s.critical for s in signals) else "warning",
                score=max(score_of(s.z) for s in signals),
                lead=lead,
                statuses=[],
                last_active=minute,
            )
            self._episode = ep
        active = bool(signals) or bool(flagged & set(ep.statuses))
        if signals:
            lead = _strongest(signals)
            if _rank(lead) >= _rank(ep.lead) or ep.lead.metric == lead.metric:
                ep.lead = lead
                ep.kind = lead.kind
                ep.metric = lead.metric
            for s in sorted(signals, key=lambda s: -abs(s.z)):
                if s.status not in ep.statuses:
                    ep.statuses.append(s.status)
            if any(s.critical for s in signals):
                ep.severity = "critical"
            ep.score = max(ep.score, *(score_of(s.z) for s in signals))
        if active:
            ep.last_active = minute
            ep.quiet = 0
            if auth_codes:
                ep.codes.update({k: v for k, v in auth_codes.items() if v > 0})
            if merchants:
                for status in ep.statuses:
                    if status in merchants:
                        ep.merchants.setdefault(status, Counter()).update(merchants[status])
        else:
            ep.quiet += 1
        for seg in self._segments.values():
            seg.episode = ep.key
            seg.codes = ep.codes
            seg.merchants = ep.merchants
        if ep.quiet >= cfg.resolve_minutes:
            self._episode = None
            out.append(self._finding(ep).resolve(ep.last_active + MINUTE))
            return out
        mark = (ep.severity, tuple(ep.statuses), ep.metric, round(ep.score, 1))
        if mark != ep.emitted:
            ep.emitted = mark
            out.append(self._finding(ep))
        return out

    def _track_segments(self, minute: datetime, signals: list[Signal], flagged: set[str]) -> None:
        for sig in signals:
            seg = self._segments.get(sig.metric)
            if seg is None:
                self._segments[sig.metric] = _Open(sig, sig.since, minute + MINUTE, minute)
                continue
            if _rank(sig) >= _rank(seg.peak):
                seg.peak = sig
            seg.critical = seg.critical or sig.critical
        signalled = {s.metric for s in signals}
        for metric, seg in list(self._segments.items()):
            if metric in signalled or seg.peak.status in flagged:
                seg.last_active = minute
                seg.quiet = 0
                continue
            seg.quiet += 1
            if seg.quiet >= self.config.resolve_minutes:
                del self._segments[metric]
                self.segment_log.append(self._segment(seg, seg.last_active + MINUTE))

    def _segment(self, seg: _Open, end: datetime | None) -> Segment:
        s = seg.peak
        pt, en = self._describe(s, seg.start, seg.codes, seg.merchants, [s.status])
        return Segment(
            episode=seg.episode,
            kind=s.kind,
            metric=s.metric,
            status=s.status,
            start=seg.start,
            end=end,
            detected_at=seg.detected_at,
            severity="critical" if seg.critical else "warning",
            score=score_of(s.z),
            expected=round(s.expected, 4),
            observed=round(s.observed, 4),
            z=round(s.z, 2),
            explanation_pt=pt,
            explanation_en=en,
        )

    def flush_segments(self) -> list[Segment]:
        """Closed segments since the last call, then the still-open ones (offline use)."""
        out = self.segment_log + [self._segment(seg, None) for seg in self._segments.values()]
        self.segment_log = []
        return out

    def _finding(self, ep: _Episode) -> Finding:
        pt, en = self._explain(ep)
        return Finding(
            key=ep.key,
            kind=ep.kind,
            metric=ep.metric,
            statuses=tuple(ep.statuses),
            start=ep.start,
            end=None,
            detected_at=ep.detected_at,
            severity=ep.severity,
            score=ep.score,
            expected=round(ep.lead.expected, 4),
            observed=round(ep.lead.observed, 4),
            explanation_pt=pt,
            explanation_en=en,
        )

    def _explain(self, ep: _Episode) -> tuple[str, str]:
        return self._describe(ep.lead, ep.start, ep.codes, ep.merchants, ep.statuses)

    def _describe(
        self,
        s: Signal,
        start: datetime,
        codes: Counter[str],
        merchants: dict[str, Counter[str]],
        statuses: list[str],
    ) -> tuple[str, str]:
        tz = self.config.tz
        since = clock(start, tz)
        if s.kind == "outage":
            pt = (
                f"nenhuma transação {s.status} há {s.window}+ min (esperado ~"
                f"{number(s.expected, 'pt', 0)}/min neste horário) desde {since}"
            )
            en = (
                f"no {s.status} transactions for {s.window}+ min (expected ~"
                f"{number(s.expected, 'en', 0)}/min at this hour) since {since}"
            )
        elif s.kind == "volume_drop":
            drop = (1.0 - s.ratio) * 100
            pt = (
                f"{s.status} caiu para {number(s.observed, 'pt', 0)}/min vs "
                f"{number(s.expected, 'pt', 0)} ± {number(s.sd, 'pt', 0)} esperado neste horário "
                f"(−{number(drop, 'pt', 0)}%, z={s.z:.0f}) desde {since}"
            )
            en = (
                f"{s.status} down to {number(s.observed, 'en', 0)}/min vs "
                f"{number(s.expected, 'en', 0)} ± {number(s.sd, 'en', 0)} expected at this hour "
                f"(−{number(drop, 'en', 0)}%, z={s.z:.0f}) since {since}"
            )
        elif s.kind == "mix":
            pt = (
                f"mistura de status incomum: {s.status} em {percent(s.observed, 'pt')} vs "
                f"{percent(s.expected, 'pt')} normal (isolation forest) desde {since}"
            )
            en = (
                f"unusual status mix: {s.status} at {percent(s.observed, 'en')} vs "
                f"{percent(s.expected, 'en')} normal (isolation forest) since {since}"
            )
        else:
            tot = max(s.total, 1e-9)
            obs_share, exp_share, sd_share = s.observed / tot, s.expected / tot, s.sd / tot
            times_pt = number(s.ratio, "pt", 1 if s.ratio < 10 else 0)
            times_en = number(s.ratio, "en", 1 if s.ratio < 10 else 0)
            pt = (
                f"{s.status} em {percent(obs_share, 'pt')} das transações vs "
                f"{percent(exp_share, 'pt')} ± {percent(sd_share, 'pt')} normal neste horário "
                f"(z={s.z:.0f}), {times_pt}× o normal, desde {since}"
            )
            en = (
                f"{s.status} at {percent(obs_share, 'en')} of transactions vs "
                f"{percent(exp_share, 'en')} ± {percent(sd_share, 'en')} normal at this hour "
                f"(z={s.z:.0f}), {times_en}× normal, since {since}"
            )
            if s.status == "denied":
                cause = dominant_code(codes)
                if cause is not None:
                    pct_pt, pct_en = percent(cause.share, "pt"), percent(cause.share, "en")
                    pt += f"; {pct_pt} código {code_name(cause.code, 'pt')}"
                    en += f"; {pct_en} code {code_name(cause.code, 'en')}"
            tops = top_merchants(merchants.get(s.status, Counter()), s.observed - s.expected)
            if tops:
                pt += "; concentrado em " + ", ".join(
                    f"{m} ({percent(sh, 'pt')})" for m, sh in tops
                )
                en += "; mostly " + ", ".join(f"{m} ({percent(sh, 'en')})" for m, sh in tops)
        others = [st for st in statuses if st != s.status]
        if others:
            pt += "; também: " + ", ".join(others)
            en += "; also: " + ", ".join(others)
        return pt, en

    # -------------------------------------------------------------- watchdog

    def expected_total(self, now: datetime) -> float:
        """Transactions per minute expected around `now` (seasonal x today's ratio, or level)."""
        if self._seasonal is not None:
            row = self._seasonal.row(now)
            return float(row.sum()) * self._volume.ratio
        return 0.0 if math.isnan(self._total_level) else self._total_level

    def check_silence(self, now: datetime, last_minute_seen: datetime | None) -> list[Finding]:
        """The feed-silence watchdog: opens `feed_silence` when no rows came for
        `silence_minutes` while traffic was expected, resolves it when rows come back."""
        if now.tzinfo is None:
            raise DetectorError("now must be timezone-aware")
        cfg = self.config
        last = last_minute_seen or self._last_minute
        if last is None:
            return []
        gap = int((now - last).total_seconds() // 60) - 1  # closed minutes without rows
        rate = self.expected_total(now)
        ep = self._silence
        if ep is not None:
            if gap < 1:
                self._silence = None
                return [self._silence_finding(ep, gap, rate).resolve(last)]
            return []
        if gap < cfg.silence_minutes or rate * gap < cfg.silence_min_expected:
            return []
        start = last + MINUTE
        lead = Signal(
            kind="feed_silence",
            metric="feed",
            status="*",
            z=-math.sqrt(rate * gap),
            ratio=0.0,
            expected=rate,
            observed=0.0,
            sd=math.sqrt(rate),
            total=0.0,
            since=start,
            critical=True,
            window=gap,
        )
        ep = _Episode(
            key=f"{start.astimezone(cfg.tz).strftime('%Y%m%d-%H%M')}-feed",
            kind="feed_silence",
            metric="feed",
            start=start,
            detected_at=now,
            severity="critical",
            score=score_of(lead.z),
            lead=lead,
            statuses=[],
            last_active=now,
        )
        self._silence = ep
        return [self._silence_finding(ep, gap, rate)]

    def _silence_finding(self, ep: _Episode, gap: int, rate: float) -> Finding:
        since = clock(ep.start, self.config.tz)
        return Finding(
            key=ep.key,
            kind="feed_silence",
            metric="feed",
            statuses=(),
            start=ep.start,
            end=None,
            detected_at=ep.detected_at,
            severity="critical",
            score=ep.score,
            expected=round(rate, 2),
            observed=0.0,
            explanation_pt=(
                f"feed silencioso: nenhuma linha desde {since} ({ep.lead.window} min), "
                f"esperado ~{number(rate, 'pt', 0)} transações/min neste horário"
            ),
            explanation_en=(
                f"feed silent: no rows since {since} ({ep.lead.window} min), "
                f"expected ~{number(rate, 'en', 0)} transactions/min at this hour"
            ),
        )

    @property
    def open_findings(self) -> list[Finding]:
        """Episodes open right now (for `status`)."""
        return [self._finding(ep) for ep in (self._episode,) if ep is not None]

    def expectation(self, minute: datetime, status: str | None = None) -> tuple[float, float]:
        """Expected approvals (or `status` count) per minute for `minute`, and its variance,
        as the engine sees it before judging that minute (for charts and `metricas`)."""
        status = status or self.config.volume_status
        seas = self._seasonal.row(minute) if self._seasonal is not None else None
        if status == self.config.volume_status:
            exp = self._volume.expected(self._seasonal_of(seas, status))
            return exp, self._volume.variance(exp)
        share = self._shares.get(status)
        series = self._series.get(status)
        if share is None or series is None or not series.exp:
            return 0.0, 0.0
        return series.exp[-1], series.var[-1]


def _padded(rows: deque[np.ndarray] | list[np.ndarray], width: int) -> np.ndarray:
    """Rows as one matrix; statuses only ever append, so a shorter row is zero at the end."""
    out = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        n = min(len(row), width)
        out[i, :n] = row[:n]
    return out


def _rank(signal: Signal) -> tuple[int, int, float]:
    return (int(signal.critical), _KIND_RANK.get(signal.kind, 0), abs(signal.z))


def _strongest(signals: list[Signal]) -> Signal:
    return max(signals, key=_rank)
