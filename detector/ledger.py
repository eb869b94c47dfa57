"""What an episode cost: a ledger of approvals expected and observed per judged minute.

The live watcher keeps one `Ledger` for the total and one per watched slice; a finding's
approvals lost are the expected minus the observed approvals over its minutes, at least 0.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

IMPACT_MINUTES = 24 * 60  # minutes of expected vs observed approvals kept


class Ledger:
    """Approvals expected and observed for the last `size` judged minutes (a fixed ring of
    arrays: a hundred slices cost a few megabytes, not a tuple a minute each)."""

    __slots__ = ("_expected", "_minute", "_next", "_observed")

    def __init__(self, size: int = IMPACT_MINUTES) -> None:
        self._minute = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
        self._expected = np.zeros(size)
        self._observed = np.zeros(size)
        self._next = 0

    def add(self, minute: datetime, expected: float, observed: float) -> None:
        i = self._next % len(self._minute)
        self._minute[i] = _stamp(minute)
        self._expected[i] = expected
        self._observed[i] = observed
        self._next += 1

    def lost(self, start: datetime, end: datetime | None) -> float:
        """Approvals expected minus observed over [start, end) (open: up to now), at least 0."""
        inside = self._minute >= _stamp(start)
        if end is not None:
            inside &= self._minute < _stamp(end)
        return max(float((self._expected[inside] - self._observed[inside]).sum()), 0.0)


def _stamp(minute: datetime) -> int:
    return int(minute.timestamp()) // 60
