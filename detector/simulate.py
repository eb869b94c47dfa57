"""A seeded synthetic per-minute feed with a realistic day and labeled incidents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.findings import Slice

INCIDENTS = (
    "outage",
    "partial_drop",
    "failed_surge",
    "denied_surge",
    "reversal_surge",
    "feed_silence",
    "slow_degradation",
)
# share of each status in normal traffic, as in the CloudWalk exports
SHARES = {
    "approved": 0.885,
    "denied": 0.09,
    "reversed": 0.012,
    "refunded": 0.006,
    "backend_reversed": 0.004,
    "failed": 0.0008,
}
PEAK_PER_MINUTE = 300.0
# which statuses each kind of incident moves (what a detector must point at)
AFFECTS = {
    "outage": ("approved",),
    "partial_drop": ("approved",),
    "failed_surge": ("failed",),
    "denied_surge": ("denied",),
    "reversal_surge": ("reversed",),
    "feed_silence": ("approved",),
    "slow_degradation": ("approved",),
}


@dataclass(frozen=True, slots=True)
class Label:
    """One injected incident: its kind, window [start, end) and the statuses it moves."""

    kind: str
    start: datetime
    end: datetime
    statuses: tuple[str, ...]
    slice: Slice | None = None  # an incident confined to one slice: ((dimension, value),)

    def as_json(self) -> dict[str, object]:
        """JSON-ready form (ISO 8601 times; `slice` only on a slice's incident)."""
        out: dict[str, object] = {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "statuses": list(self.statuses),
        }
        if self.slice is not None:
            out["slice"] = dict(self.slice)
        return out


def daily_profile(hour_of_day: np.ndarray) -> np.ndarray:
    """Relative traffic by local hour: quiet night, morning ramp, midday and evening peaks."""
    h = hour_of_day
    shape = (
        0.03
        + 0.95 * np.exp(-0.5 * ((h - 11.0) / 2.2) ** 2)
        + 0.85 * np.exp(-0.5 * ((h - 16.0) / 2.5) ** 2)
        + 0.45 * np.exp(-0.5 * ((h - 20.5) / 1.8) ** 2)
    )
    return np.asarray(shape / shape.max())


def simulate(
    hours: int = 24,
    seed: int = 0,
    incidents: Sequence[str] | None = None,
    *,
    start: datetime | None = None,
    utc_offset_hours: int = -3,
) -> tuple[pd.DataFrame, list[Label]]:
    """A feed of `hours` hours (`minute`, `status`, `count`; zero rows left out) and its labels.

    Each kind in `incidents` (default: all of `INCIDENTS`) is injected once, at a random busy
    time, without overlaps. The same seed gives the same feed.
    """
    kinds = list(INCIDENTS if incidents is None else incidents)
    unknown = [k for k in kinds if k not in INCIDENTS]
    if unknown:
        raise DetectorError(f"unknown incident kind(s): {', '.join(unknown)}")
    if hours < 4:
        raise DetectorError("simulate needs at least 4 hours")
    rng = np.random.default_rng(seed)
    origin = start or datetime(2025, 1, 6, 3, 0, tzinfo=UTC)  # local midnight at UTC-3
    n = hours * 60
    minutes = np.arange(n)
    local_hour = ((origin.hour + utc_offset_hours) % 24 + origin.minute / 60 + minutes / 60) % 24
    day_factor = np.repeat(rng.lognormal(0.0, 0.08, size=hours // 24 + 2), 1440)[:n]
    level = PEAK_PER_MINUTE * daily_profile(local_hour) * day_factor
    statuses = list(SHARES)
    mult = np.ones((n, len(statuses)))
    silent = np.zeros(n, dtype=bool)
    labels = place(kinds, level, rng, origin)
    col = {s: i for i, s in enumerate(statuses)}
    for lab in labels:
        a = int((lab.start - origin).total_seconds() // 60)
        b = int((lab.end - origin).total_seconds() // 60)
        k = lab.kind
        if k == "outage":
            mult[a:b, col["approved"]] = 0.0
            mult[a:b, col["denied"]] *= 0.3
        elif k == "partial_drop":
            mult[a:b, col["approved"]] *= rng.uniform(0.35, 0.55)
        elif k == "failed_surge":
            mult[a:b, col["failed"]] *= rng.uniform(30, 80)
            mult[a:b, col["approved"]] *= 0.95
        elif k == "denied_surge":
            mult[a:b, col["denied"]] *= rng.uniform(2.5, 4.0)
            mult[a:b, col["approved"]] *= 0.85
        elif k == "reversal_surge":
            mult[a:b, col["reversed"]] *= rng.uniform(6, 15)
        elif k == "feed_silence":
            silent[a:b] = True
        elif k == "slow_degradation":
            ramp = np.linspace(1.0, 0.35, b - a)
            ramp[(b - a) * 2 // 3 :] = 0.35
            mult[a:b, col["approved"]] *= ramp
    shares = np.array([SHARES[s] for s in statuses])
    means = level[:, None] * shares[None, :] * mult
    # gamma-Poisson: real feeds are over-dispersed (about 8% on top of Poisson in the exports)
    gamma = rng.gamma(150.0, 1.0 / 150.0, size=means.shape)
    counts = rng.poisson(means * gamma)
    counts[silent] = 0
    stamps = pd.date_range(origin, periods=n, freq="min")
    frame = pd.DataFrame(counts, index=stamps, columns=statuses).rename_axis("minute")
    long = frame.reset_index().melt(id_vars="minute", var_name="status", value_name="count")
    long = long[long["count"] > 0].sort_values(["minute", "status"]).reset_index(drop=True)
    return long.astype({"count": "int64"}), labels


def place(
    kinds: list[str],
    level: np.ndarray,
    rng: np.random.Generator,
    origin: datetime,
    *,
    taken: np.ndarray | None = None,
    busy_share: float = 0.2,
) -> list[Label]:
    """Windows for `kinds` at busy times (level at least `busy_share` of its peak), 45 minutes
    apart from each other and from what `taken` already marks."""
    n = len(level)
    if taken is None:
        taken = np.zeros(n, dtype=bool)
    taken[:120] = True  # the first two hours are the detector's cold start
    busy = level >= busy_share * level.max()
    out: list[Label] = []
    for kind in kinds:
        length = (
            int(rng.integers(15, 40)) if "degradation" not in kind else int(rng.integers(50, 80))
        )
        for _ in range(500):
            a = int(rng.integers(120, max(n - length - 30, 121)))
            b = a + length
            if busy[a:b].all() and not taken[max(a - 45, 0) : b + 45].any():
                break
        else:
            raise DetectorError(f"no room for a {kind} incident in {n // 60} hours")
        taken[a:b] = True
        out.append(
            Label(
                kind,
                origin + timedelta(minutes=a),
                origin + timedelta(minutes=b),
                AFFECTS.get(kind, ("approved",)),
            )
        )
    return sorted(out, key=lambda lab: lab.start)
