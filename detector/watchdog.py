"""The feed-silence watchdog: no rows for a while when traffic was expected is an episode too."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

from detector.config import DetectorConfig
from detector.episodes import Episode, Spell, key_of
from detector.evidence import evidence
from detector.findings import Finding
from detector.signals import Signal, score_of

MINUTE = timedelta(minutes=1)


class Watchdog:
    """Opens `feed_silence` when no rows came for `silence_minutes` while traffic was expected,
    resolves it when rows come back."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._silence: Episode | None = None

    def check(self, now: datetime, last: datetime | None, rate: float) -> list[Finding]:
        """What changed at `now`, the last minute with rows being `last` and `rate` the
        transactions per minute expected around now."""
        cfg = self.config
        if last is None:
            return []
        gap = int((now - last).total_seconds() // 60) - 1  # closed minutes without rows
        ep = self._silence
        if ep is not None:
            if gap < 1:
                self._silence = None
                return [self._finding(ep, rate).resolve(last)]
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
        ep = Episode(
            key=key_of(start, cfg, "feed"),
            kind="feed_silence",
            metric="feed",
            start=start,
            detected_at=now,
            severity="critical",
            score=score_of(lead.z),
            lead=lead,
            statuses=[],
            spell=Spell(now),
        )
        self._silence = ep
        return [self._finding(ep, rate)]

    def _finding(self, ep: Episode, rate: float) -> Finding:
        # the rate expected now (it moves while the silence lasts); the gap as it was at the opening
        seen = evidence(replace(ep.lead, expected=rate), ep.start)
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
            evidence=seen,
        )
