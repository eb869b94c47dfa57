"""What is normal right now: the same time window on the previous days, per status (median)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.store import Store

DAYS = 7
WINDOW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Reference:
    """Per-status median totals of the window on previous days that have data."""

    totals: dict[str, float]
    days: int

    @property
    def total(self) -> float:
        return sum(self.totals.values())

    def share(self, status: str) -> float | None:
        total = self.total
        return self.totals.get(status, 0.0) / total if total else None


def reference(store: Store, start: datetime, end: datetime, days: int = DAYS) -> Reference:
    """The window [start, end) on each of the previous `days` days that had any traffic."""
    per_day: list[dict[str, int]] = []
    for back in range(1, days + 1):
        shift = timedelta(days=back)
        totals = store.totals_by_status(start - shift, end - shift)
        if sum(totals.values()) > 0:
            per_day.append(totals)
    statuses = {s for day in per_day for s in day}
    medians = {s: float(statistics.median(day.get(s, 0) for day in per_day)) for s in statuses}
    return Reference(totals=medians, days=len(per_day))


@dataclass(frozen=True, slots=True)
class Window:
    """The last complete minutes up to now, and the same window on previous days."""

    totals: dict[str, int]
    normal: Reference
    minutes: float

    @property
    def total(self) -> int:
        return sum(self.totals.values())


def recent(store: Store, now: datetime, length: timedelta = WINDOW) -> Window:
    """Totals of the `length` before the current minute, beside their normal (blocking)."""
    end = now.replace(second=0, microsecond=0)
    start = end - length
    return Window(
        totals=store.totals_by_status(start, end),
        normal=reference(store, start, end),
        minutes=length.total_seconds() / 60,
    )
