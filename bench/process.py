"""Figure 6: the `serve` process: start to `/healthz` 200, and resident memory."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import servers
from bench.report import Figure, Goal

log = logging.getLogger(__name__)

SECTION = 6
START_GOAL = Goal("value", "<=", 3, "s")
RSS_GOAL = Goal("value", "<=", 250, "MB")  # the unit: 10^6 bytes (238.4 MiB)
MB_PER_MIB = 1024 * 1024 / 1e6
STARTS = 3
TICK_WAIT = 75.0  # the detector ticks each minute, one second past it


@dataclass(frozen=True, slots=True)
class Bare:
    """The bare Starlette/uvicorn process, measured once per run."""

    start_seconds: float
    rss_mb: float


def bare(workdir: Path) -> Bare:
    starts = []
    rss = 0.0
    for _ in range(STARTS):
        with servers.bare(workdir) as running:
            starts.append(running.ready_seconds)
            rss = running.settled_rss_mib() * MB_PER_MIB
    return Bare(statistics.median(starts), rss)


def measure(
    label: str, store: str, database_url: Callable[[], str], workdir: Path, baseline: Bare
) -> list[Figure]:
    """Start `serve` STARTS times on a copy of the store; the last time, RSS after the first
    detector tick (which warms the engine on 28 days of history) once memory settles."""
    starts = []
    rss = peak = 0.0
    note = ""
    for attempt in range(STARTS):
        with servers.serve(database_url(), workdir) as running:
            starts.append(running.ready_seconds)
            if attempt == STARTS - 1:
                if not running.wait_for_metric("nightshift_detector_runs_total", TICK_WAIT):
                    note = f"no detector tick within {TICK_WAIT:.0f} s; "
                rss = running.settled_rss_mib() * MB_PER_MIB
                peak = running.peak_mib() * MB_PER_MIB
    return [
        Figure(
            SECTION,
            f"start → `/healthz` 200, {label} (median of {STARTS})",
            store,
            statistics.median(starts),
            "s",
            baseline.start_seconds,
            "bare Starlette/uvicorn process",
            START_GOAL,
        ),
        Figure(
            SECTION,
            f"resident memory (VmRSS) idle, {label}",
            store,
            rss,
            "MB",
            baseline.rss_mb,
            "bare Starlette/uvicorn process",
            RSS_GOAL,
            f"{note}after the first detector tick; peak VmHWM {peak:.0f} MB",
        ),
    ]
