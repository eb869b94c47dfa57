"""Findings grouped into incidents offline: what overlaps in time on the feed is one fire.

The live bot joins findings as they come (`storage.incidents`); `analyze` groups its rows the
same way after the fact: rows of one episode, and rows whose spans overlap, are one incident.
A denial surge, the approval drop and the status-mix shift it causes are one incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from detector.findings import Segment

_RANK = {"critical": 0, "warning": 1}


@dataclass(frozen=True, slots=True)
class OfflineIncident:
    """One fire in an analysed file: its span, when it would have been raised, its members."""

    start: datetime
    end: datetime | None  # None: still going at the end of the file
    detected_at: datetime
    severity: str
    members: tuple[int, ...]  # indices into the analysis's rows
    approvals_lost: float


def group(segments: Sequence[Segment], lost: pd.Series | None = None) -> list[OfflineIncident]:
    """Segments (in the order given) as incidents, oldest first. `lost`: expected minus observed
    approvals per minute (or hour), indexed by time, summed over each incident's span."""
    order = sorted(range(len(segments)), key=lambda i: segments[i].start)
    clusters: list[list[int]] = []
    reach: datetime | None = None
    episodes: dict[str, int] = {}
    for i in order:
        seg = segments[i]
        joined = episodes.get(seg.episode)
        if joined is None and clusters and (reach is None or seg.start <= reach):
            joined = len(clusters) - 1
        if joined is None:
            clusters.append([i])
            joined = len(clusters) - 1
            reach = seg.end
        else:
            clusters[joined].append(i)
            if joined == len(clusters) - 1:
                reach = None if reach is None or seg.end is None else max(reach, seg.end)
        episodes[seg.episode] = joined
    out = []
    for members in clusters:
        rows = [segments[i] for i in members]
        ends = [r.end for r in rows]
        start = min(r.start for r in rows)
        end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        out.append(
            OfflineIncident(
                start=start,
                end=end,
                detected_at=min(r.detected_at for r in rows),
                severity=min((r.severity for r in rows), key=lambda s: _RANK.get(s, 2)),
                members=tuple(sorted(members)),
                approvals_lost=_lost(lost, start, end),
            )
        )
    return out


def _lost(lost: pd.Series | None, start: datetime, end: datetime | None) -> float:
    if lost is None or lost.empty:
        return 0.0
    index = lost.index
    inside = (index >= pd.Timestamp(start)) & (
        index < pd.Timestamp(end) if end is not None else True
    )
    return round(max(float(lost[inside].sum()), 0.0), 1)
