"""Scoring detections against labels: feed incidents (precision, recall, F1, time to detect), and
labelled series the windowed way (earliest detection in a window rewarded, misses and false
alarms charged; `score_windows`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

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


# ------------------------------------------------------- windowed scoring of labelled series


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of the windowed score: a true positive, a false positive, a missed window."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD = Profile()


@dataclass(frozen=True, slots=True)
class WindowScore:
    """One series (or a sum of them): the raw score, and what flagging nothing and flagging
    each window's first row would have scored."""

    raw: float
    null: float
    perfect: float
    windows: int
    hits: int
    false: int

    def __add__(self, other: WindowScore) -> WindowScore:
        return WindowScore(
            self.raw + other.raw,
            self.null + other.null,
            self.perfect + other.perfect,
            self.windows + other.windows,
            self.hits + other.hits,
            self.false + other.false,
        )

    @property
    def normalised(self) -> float:
        """100 for a perfect detector, 0 for one that flags nothing."""
        span = self.perfect - self.null
        return 0.0 if span <= 0 else 100.0 * (self.raw - self.null) / span


def scaled_sigmoid(position: float) -> float:
    """+1 at a window's start, 0 at its end, down to -1 far after it."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def windows_of(anomalies: Sequence[int], n: int) -> list[tuple[int, int]]:
    """A window around each anomaly row: 10% of the series shared among its anomalies, centred
    on the anomaly; windows that overlap are merged."""
    if not anomalies or n == 0:
        return []
    width = int(0.1 * n / len(anomalies))
    out: list[tuple[int, int]] = []
    for a in sorted(anomalies):
        lo, hi = max(a - width // 2, 0), min(a + width // 2, n - 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def score_windows(
    labels: np.ndarray,
    anomalies: Sequence[int],
    learning: int,
    profile: Profile = STANDARD,
) -> WindowScore:
    """Score 0/1 `labels` against labelled anomaly rows: the earliest detection in a window
    earns `tp` on a sigmoid of its place (about 1 at the start, 0 at the end); a window without
    one costs `fn`; each detection outside every window costs `fp`, less when it comes soon after
    a window. Detections in the first `learning` rows are not counted."""
    n = len(labels)
    wins = windows_of(anomalies, n)
    raw = 0.0
    hits = false = 0
    detected: set[int] = set()
    flagged = np.flatnonzero(np.asarray(labels) != 0)
    starts = np.array([w[0] for w in wins])
    for i in flagged.tolist():
        if i < learning:
            continue
        k = int(np.searchsorted(starts, i, side="right")) - 1 if wins else -1
        if k >= 0 and i <= wins[k][1]:
            if k not in detected:
                detected.add(k)
                lo, hi = wins[k]
                width = hi - lo + 1
                raw += profile.tp * scaled_sigmoid(-(hi - i + 1) / width)
                hits += 1
            continue
        false += 1
        if k < 0:
            raw -= profile.fp
        else:
            lo, hi = wins[k]
            raw += profile.fp * scaled_sigmoid(abs(hi - i) / max(hi - lo, 1))
    raw -= profile.fn * (len(wins) - len(detected))
    perfect = sum(
        profile.tp * scaled_sigmoid(-(hi - max(lo, learning) + 1) / (hi - lo + 1))
        for lo, hi in wins
    )
    return WindowScore(raw, -profile.fn * len(wins), perfect, len(wins), hits, false)
