"""Scoring detections against labeled incidents: precision, recall, F1 and time to detect."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.findings import Finding, Segment

TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Incident:
    """A labeled incident: window [start, end) and the statuses it moves."""

    name: str
    start: datetime
    end: datetime
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Detection:
    """What any detector raised: an episode window, when it was raised, what it pointed at."""

    start: datetime
    end: datetime
    detected_at: datetime
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    """How a detector did on one data set."""

    incidents: int
    detected: int
    episodes: int
    false_episodes: int
    ttd_minutes: tuple[float | None, ...]  # per incident, None when missed

    @property
    def precision(self) -> float:
        return 1.0 if self.episodes == 0 else (self.episodes - self.false_episodes) / self.episodes

    @property
    def recall(self) -> float:
        return 1.0 if self.incidents == 0 else self.detected / self.incidents

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def median_ttd(self) -> float | None:
        found = [t for t in self.ttd_minutes if t is not None]
        return statistics.median(found) if found else None


def from_findings(findings: Iterable[Finding | Segment], end: datetime) -> list[Detection]:
    """Detections from engine output; an episode still open runs to `end`."""
    out = []
    for f in findings:
        statuses = f.statuses if isinstance(f, Finding) else (f.status,) if f.status != "*" else ()
        out.append(Detection(f.start, f.end or end, f.detected_at, tuple(statuses)))
    return out


def _overlaps(d: Detection, inc: Incident, tolerance: timedelta) -> bool:
    return d.start < inc.end + tolerance and d.end > inc.start - tolerance


def evaluate(
    incidents: Sequence[Incident],
    episodes: Sequence[Detection],
    details: Sequence[Detection] | None = None,
    *,
    tolerance: timedelta = TOLERANCE,
) -> Score:
    """Score `episodes` against `incidents`.

    An episode is false when it overlaps no incident (with `tolerance` either side). An incident
    is detected by the earliest detection (from `details` when given, e.g. per-metric segments)
    that overlaps it and names one of its statuses; time to detect is `detected_at` minus the
    incident's start, not below zero.
    """
    false = sum(1 for e in episodes if not any(_overlaps(e, i, tolerance) for i in incidents))
    pool = details if details is not None else episodes
    ttds: list[float | None] = []
    for inc in incidents:
        hits = [
            d
            for d in pool
            if _overlaps(d, inc, timedelta(0))
            and d.detected_at <= inc.end + tolerance
            and (not inc.statuses or not d.statuses or set(d.statuses) & set(inc.statuses))
        ]
        if not hits:
            ttds.append(None)
            continue
        first = min(h.detected_at for h in hits)
        ttds.append(max((first - inc.start).total_seconds() / 60.0, 0.0))
    detected = sum(1 for t in ttds if t is not None)
    return Score(len(incidents), detected, len(episodes), false, tuple(ttds))
