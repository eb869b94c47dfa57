"""The system clock, the one place production code reads the time."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """UTC now, timezone-aware."""

    def now(self) -> datetime:
        return datetime.now(UTC)
