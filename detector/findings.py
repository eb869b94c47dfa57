"""What the detector reports: findings, their segments and the evidence of each, in numbers.

One `Finding` per episode, opened, updated and resolved; one `Segment` per metric out of line in
it; each with the `Evidence` of what was seen. The sentences are `skills.wording`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from detector.signals import Signal

#: A slice of the feed: ((dimension, value), ...), e.g. (("acquirer", "cielo"),).
Slice = tuple[tuple[str, str], ...]
Severity = Literal["critical", "warning"]
Kind = Literal["outage", "volume_drop", "surge", "rate", "mix", "feed_silence"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was seen, in numbers: the facts an explanation is made of.

    `lead` is the signal that leads, at its peak (a silent feed's has the minutes without rows as
    its window and the transactions per minute expected now; an hourly checkout's, an hour's
    sales); `since` is when the episode, or the segment, started.
    """

    lead: Signal
    since: datetime
    cause: Cause | None = None  # a denial surge's dominant authorization code
    merchants: tuple[tuple[str, float], ...] = ()  # the few that carry a surge, with their share
    also: tuple[str, ...] = ()  # the episode's other statuses
    # a slice finding's slice, ((dimension, value), ...), and its share of the volume
    slice: Slice | None = None
    share: float | None = None
    # drill-down: the slices that carry most of the deviation, (dimension, value, share of it)
    slices: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Cause:
    """The dominant authorization code of a denial surge, and its share of the denials."""

    code: str
    share: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly episode as the operator sees it; `key` is stable across its updates."""

    key: str
    kind: str
    metric: str
    statuses: tuple[str, ...]
    start: datetime
    end: datetime | None
    detected_at: datetime
    severity: Severity
    score: float
    expected: float
    observed: float
    evidence: Evidence
    resolved: bool = False
    slice: Slice | None = None  # the slice this finding is about; None for the total

    def resolve(self, end: datetime) -> Finding:
        """This episode, closed at `end`."""
        return replace(self, end=end, resolved=True)


@dataclass(frozen=True, slots=True)
class Segment:
    """One metric's stretch out of line inside an episode: a row of `analyze`'s table."""

    episode: str  # the `Finding.key` it belongs to
    kind: str
    metric: str
    status: str
    start: datetime
    end: datetime | None
    detected_at: datetime
    severity: Severity
    score: float
    expected: float  # per minute, at the peak
    observed: float  # per minute, at the peak
    z: float
    evidence: Evidence
    slice: Slice | None = None  # the slice this segment is about; None for the total
