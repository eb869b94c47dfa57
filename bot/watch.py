"""The live detector: each minute, the newest closed minutes of the feed go through the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from detector.engine import Engine
from detector.findings import Finding
from skills.core import Clock
from storage.records import AnomalyRecord
from storage.store import Store

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
HISTORY = timedelta(days=28)
LAG = timedelta(minutes=2)  # a minute is judged once the feed has had time to deliver it
CATCH_UP = timedelta(hours=2)  # after a long stop, judge at most this much of the past


def _record(finding: Finding, now: datetime) -> AnomalyRecord:
    return AnomalyRecord(
        key=finding.key,
        kind=finding.kind,
        metric=finding.metric,
        statuses=finding.statuses,
        start=finding.start,
        end=finding.end,
        detected_at=finding.detected_at,
        updated_at=now,
        severity=finding.severity,
        score=finding.score,
        expected=finding.expected,
        observed=finding.observed,
        explanation_pt=finding.explanation_pt,
        explanation_en=finding.explanation_en,
        resolved=finding.resolved,
    )


def _by_minute(frame: pd.DataFrame, key: str) -> dict[datetime, dict[str, int]]:
    out: dict[datetime, dict[str, int]] = {}
    for minute, name, count in frame[["minute", key, "count"]].itertuples(index=False):
        out.setdefault(minute.to_pydatetime(), {})[str(name)] = int(count)
    return out


class FeedWatch:
    """Owns one Engine; `tick()` (blocking: run it in a thread) judges what is new and stores it."""

    def __init__(self, store: Store, clock: Clock, engine: Engine | None = None) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine or Engine()
        self._last: datetime | None = None
        self.on_finding: Callable[[Finding], None] | None = None

    def _closed_until(self) -> datetime:
        return self._clock.now().replace(second=0, microsecond=0) - LAG

    def warm(self) -> None:
        """Learn the baseline from stored history, up to the last closed minute."""
        until = self._closed_until()
        self._engine.warm(self._store.counts_frame(until - HISTORY, until + MINUTE))
        self._last = until

    def tick(self) -> list[Finding]:
        """Judge every closed minute since the last tick; store and return what changed."""
        now = self._clock.now()
        until = self._closed_until()
        if self._last is None:
            self.warm()
            return []
        start = max(self._last + MINUTE, until - CATCH_UP)
        counts = _by_minute(self._store.counts_frame(start, until + MINUTE), "status")
        codes = _by_minute(self._store.auth_codes_frame(start, until + MINUTE), "auth_code")
        changed: list[Finding] = []
        minute = start
        while minute <= until:
            changed.extend(self._engine.step(minute, counts.get(minute, {}), codes.get(minute)))
            minute += MINUTE
        self._last = until
        changed.extend(self._engine.check_silence(now, self._store.last_minute(before=now)))
        for finding in changed:
            self._store.save_anomaly(_record(finding, now))
            if self.on_finding is not None:
                self.on_finding(finding)
        return changed
