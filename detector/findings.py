"""What the detector reports: one `Finding` per episode, its `Segment`s, and the `Evidence` of what
was seen, in numbers (the words are `skills.wording`'s)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Severity = Literal["critical", "warning"]
Kind = Literal["outage", "volume_drop", "surge", "rate", "mix", "feed_silence"]


@dataclass(frozen=True, slots=True)
class Cause:
    """The dominant authorization code of a denial surge, and its share of the denials."""

    code: str
    share: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was seen, in numbers: the facts an explanation is made of.

    `observed`, `expected` and `sd` are per minute over the `window` at the peak (shares of all
    transactions for `mix`; an hour's sales for `metric` "sales"), `total` all transactions per
    minute over it. A silent feed has the minutes without rows as its `window` and the
    transactions per minute expected meanwhile as `expected`.
    """

    kind: str
    metric: str
    status: str  # "*": the whole feed
    since: datetime  # when the episode (or the segment) started
    observed: float
    expected: float
    sd: float
    z: float
    ratio: float  # observed / expected
    total: float
    window: int  # minutes
    cause: Cause | None = None  # a denial surge's dominant authorization code
    merchants: tuple[tuple[str, float], ...] = ()  # the few that carry a surge, with their share
    also: tuple[str, ...] = ()  # the episode's other statuses


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
