"""The online engine: wires estimators, judges, episodes and the watchdog, one closed minute a time.

Per minute and per status it forms an expectation (`estimators`: a seasonal profile learned from
history, scaled to today's level; or, on a cold start, a damped level-and-trend follower), the
judges (`signals`) test the 1-, 3- and 5-minute windows — approvals for drops and outages, every
other status for a surge of its rate per unit of the remaining volume — and an IsolationForest
over the status mix catches unusual combinations. All signals of a minute fold into one episode
that opens, updates and resolves (`episodes`); `watchdog` judges a feed that went silent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.config import DetectorConfig
from detector.episodes import Episodes
from detector.estimators import Seasonal, Share, Window, decay, dense_counts, learn
from detector.findings import Finding, Segment
from detector.mix import features
from detector.signals import MixJudge, ShareJudge, Signal, Tick, VolumeJudge
from detector.watchdog import Watchdog

__all__ = ["DetectorConfig", "Engine", "Finding"]

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)


class Engine:
    """The online detector, fed one closed minute at a time (see the module docstring)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        self._seasonal: Seasonal | None = None
        self._series: dict[str, Window] = {}
        self._statuses: list[str] = []
        self._volume = VolumeJudge(cfg, self._series.setdefault(cfg.volume_status, Window()))
        self._shares = ShareJudge(cfg, self._series)
        self._mix = MixJudge(cfg, self._statuses)
        self._episodes = Episodes(cfg)
        self._watchdog = Watchdog(cfg)
        self._flagged: set[str] = set()
        self._seen = 0
        self._last_minute: datetime | None = None
        self._total_level = math.nan
        self._base_seen = 0.0
        self._share_decay = decay(cfg.share_half_life)
        self._total_decay = decay(30.0)

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
        self.prime(learn(history, self.config.tz), table)
        if self.config.mix and len(table) >= self.config.mix_min_rows:
            self._fit_mix_from(table)
        log.info(
            "detector warmed: %d minutes of history, seasonal=%s",
            len(table),
            "none" if self._seasonal is None else f"{self._seasonal.days} days",
        )

    def prime(self, seasonal: Seasonal | None, table: pd.DataFrame) -> None:
        """Take a seasonal profile learned elsewhere and replay the last hours of `table` (dense
        minute x status) through the online state; what that replay opened is forgotten."""
        self._seasonal = seasonal
        for status in table.columns:
            self._register(str(status))
        tail = table.iloc[-720:]
        cols = [str(c) for c in tail.columns]
        values = tail.to_numpy()
        for i, minute in enumerate(tail.index):
            self.step(minute.to_pydatetime(), dict(zip(cols, values[i].tolist(), strict=True)))
        self._episodes.clear()

    def _fit_mix_from(self, table: pd.DataFrame) -> None:
        totals = table.sum(axis=1)
        busy = table[totals >= self.config.mix_min_total].iloc[-4096:]
        if len(busy) < self.config.mix_min_rows:
            return
        statuses = [str(c) for c in busy.columns]
        rows = np.vstack([features(r) for r in busy.to_numpy()])
        self._mix.fit(rows, statuses, self._seen)

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
            if status not in self._shares.shares and status != cfg.volume_status:
                self._register(status)
        self._register(cfg.volume_status)
        self._seen += 1
        gap = self._last_minute is not None and minute - self._last_minute > 5 * MINUTE
        self._last_minute = minute
        total = float(sum(counts.values()))
        if gap and not math.isnan(self._volume.volume.level):
            self._volume.volume.restart(float(counts.get(cfg.volume_status, 0)))
            self._total_level = total
        row = self._seasonal.row(minute) if self._seasonal is not None else None
        warmed = self._seasonal is not None or self._seen > cfg.min_warm_minutes
        tick = Tick(minute, counts, total, self._seasonal, row, warmed)
        signals: list[Signal] = []
        volume, out_of_line = self._volume.judge(tick)
        if volume is not None:
            signals.append(volume)
        surges, flagged = self._shares.judge(tick, self._flagged, self._total_level)
        signals.extend(surges)
        if out_of_line:
            flagged.add(cfg.volume_status)
        if cfg.mix:
            mix = self._mix.judge(tick, self._seen, flagged)
            if mix is not None:
                signals.append(mix)
                flagged.add(mix.status)
        self._flagged = flagged
        self._base_seen = self._share_decay * self._base_seen + total
        if math.isnan(self._total_level):
            self._total_level = total
        elif not flagged:
            self._total_level += (1.0 - self._total_decay) * (total - self._total_level)
        return self._episodes.fold(minute, signals, flagged, auth_codes, merchants)

    def _register(self, status: str) -> None:
        if status not in self._statuses:
            self._statuses.append(status)
        if status != self.config.volume_status and status not in self._shares.shares:
            # a status seen for the first time has been zero all along, not unknown
            self._shares.shares[status] = Share(den=self._base_seen)
        self._series.setdefault(status, Window())

    # ------------------------------------------------------------- outputs

    @property
    def segment_log(self) -> list[Segment]:
        """Segments closed since the last `flush_segments`."""
        return self._episodes.log

    def flush_segments(self) -> list[Segment]:
        """Closed segments since the last call, then the still-open ones (offline use)."""
        return self._episodes.flush()

    @property
    def open_findings(self) -> list[Finding]:
        """Episodes open right now (for `status`)."""
        ep = self._episodes.current
        return [] if ep is None else [self._episodes.finding(ep)]

    def expected_total(self, now: datetime) -> float:
        """Transactions per minute expected around `now` (seasonal x today's ratio, or level)."""
        if self._seasonal is not None:
            row = self._seasonal.row(now)
            return float(row.sum()) * self._volume.volume.ratio
        return 0.0 if math.isnan(self._total_level) else self._total_level

    def check_silence(self, now: datetime, last_minute_seen: datetime | None) -> list[Finding]:
        """The feed-silence watchdog (`detector.watchdog`): opens `feed_silence` when no rows
        came for `silence_minutes` while traffic was expected, resolves it when rows come back."""
        if now.tzinfo is None:
            raise DetectorError("now must be timezone-aware")
        last = last_minute_seen or self._last_minute
        if last is None:
            return []
        return self._watchdog.check(now, last, self.expected_total(now))

    def expectation(self, minute: datetime, status: str | None = None) -> tuple[float, float]:
        """Expected approvals (or `status` count) per minute for `minute`, and its variance,
        as the engine sees it before judging that minute (for charts and `metricas`)."""
        status = status or self.config.volume_status
        if status == self.config.volume_status:
            seas = self._seasonal.row(minute) if self._seasonal is not None else None
            tick = Tick(minute, {}, 0.0, self._seasonal, seas, False)
            volume = self._volume.volume
            exp = volume.expected(tick.seasonal_of(status))
            return exp, volume.variance(exp)
        series = self._series.get(status)
        if status not in self._shares.shares or series is None or not series.exp:
            return 0.0, 0.0
        return series.exp[-1], series.var[-1]
