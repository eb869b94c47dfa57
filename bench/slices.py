"""Slice detection: quality on simulated dimensioned feeds, and the live tick with every slice.

`python -m bench.slices [SEEDS]` prints both tables. Quality: per seed, `simulate_slices` makes
nine days split by five dimensions (acquirer 8, brand 6, method 4, region 20, merchant 20
values: 58 slices), the first eight a clean history to learn from, the ninth with an acquirer
down, one brand's denials surging and one slice slowly degrading. nightshift (the total engine,
the slice watcher and the drill-down) is scored beside the total-only engine and a plain
trailing 3-sigma rule on every slice. A slice incident counts as named when a slice finding on
that slice, or a total finding whose drill-down names it, overlaps it; every other episode raised
over the day is a false alarm. The tick: `SliceWatch.step` with 5 x 20 slices after a warm-up on
a long history, beside the total engine's step.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from bench.quality import three_sigma
from detector.config import DetectorConfig
from detector.engine import Engine
from detector.estimators import dense_counts
from detector.offline import Analysis, analyze_transactions, by_minute
from detector.simulate import Label
from detector.slicefeed import SURGE_CODE, SliceFeed, simulate_slices
from detector.slices import SliceWatch

DIMENSIONS = [("acquirer", 8), ("brand", 6), ("method", 4), ("region", 20), ("merchant", 20)]
HISTORY_DAYS = 8
TOLERANCE = timedelta(minutes=10)
MINUTE = timedelta(minutes=1)
Name = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Raised:
    """An episode any detector raised, with the slices it names (none: the total)."""

    start: datetime
    end: datetime
    detected_at: datetime
    names: frozenset[Name]
    code: str | None = None  # the authorization code it names as the cause


@dataclass(slots=True)
class Tally:
    """One detector over all seeds."""

    incidents: int = 0
    named: int = 0
    raised: int = 0
    episodes: int = 0
    false: int = 0
    days: float = 0.0
    ttd: list[float] = field(default_factory=list)
    seconds: float = 0.0
    # per kind of slice incident: minutes to name each one (None: missed), and how many of
    # them were named with the authorization code the simulation gave the surge
    kinds: dict[str, list[float | None]] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)

    def add(self, labels: list[Label], found: list[Raised], day: tuple[datetime, datetime]) -> None:
        self.days += (day[1] - day[0]) / timedelta(days=1)
        self.episodes += len(found)
        self.false += sum(1 for f in found if not any(_near(f, lab) for lab in labels))
        for lab in labels:
            if lab.slice is None:
                continue
            self.incidents += 1
            hits = [f for f in found if _near(f, lab) and f.detected_at <= lab.end + TOLERANCE]
            self.raised += bool(hits)
            named = [f for f in hits if lab.slice[0] in f.names]
            minutes: float | None = None
            if named:
                self.named += 1
                first = min(f.detected_at for f in named)
                minutes = max((first - lab.start) / MINUTE, 0.0)
                self.ttd.append(minutes)
            self.kinds.setdefault(lab.kind, []).append(minutes)
            coded = any(f.code == SURGE_CODE for f in named)
            self.by_code[lab.kind] = self.by_code.get(lab.kind, 0) + coded


def _near(found: Raised, lab: Label) -> bool:
    return found.start < lab.end + TOLERANCE and found.end > lab.start - TOLERANCE


def split(
    feed: SliceFeed, days: int = HISTORY_DAYS
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], datetime]:
    """The feed's frames (`counts`, `slices`, `codes`) before and after its first `days` days,
    and the minute they part at."""
    cut = feed.counts["minute"].min() + pd.Timedelta(days=days)
    frames = {"counts": feed.counts, "slices": feed.slices, "codes": feed.auth_codes}
    history = {k: f[f["minute"] < cut] for k, f in frames.items()}
    judged = {k: f[f["minute"] >= cut] for k, f in frames.items()}
    return history, judged, cut.to_pydatetime()


def analysis(history: dict[str, pd.DataFrame], judged: dict[str, pd.DataFrame]) -> Analysis:
    """The total engine, the slice watcher and the drill-down, as `analyze` runs them, warmed
    on `history`."""
    return analyze_transactions(
        judged["counts"],
        judged["codes"],
        DetectorConfig(),
        history=history["counts"],
        slices=judged["slices"],
        slice_history=history["slices"],
    )


def nightshift(history: dict[str, pd.DataFrame], judged: dict[str, pd.DataFrame]) -> list[Raised]:
    """nightshift's findings: slice findings name their slice, total ones what drills down."""
    result = analysis(history, judged)
    end = judged["counts"]["minute"].max().to_pydatetime() + MINUTE
    out = []
    for f in result.findings:
        names = set(f.slice or ()) | {(d, v) for d, v, _ in f.evidence.slices}
        code = f.evidence.cause.code if f.evidence.cause is not None else None
        out.append(Raised(f.start, f.end or end, f.detected_at, frozenset(names), code))
    return out


def total_only(history: dict[str, pd.DataFrame], judged: dict[str, pd.DataFrame]) -> list[Raised]:
    """Today's engine on the total: it can raise, never name a slice."""
    result = analyze_transactions(
        judged["counts"], judged["codes"], DetectorConfig(), history=history["counts"]
    )
    end = judged["counts"]["minute"].max().to_pydatetime() + MINUTE
    return [Raised(f.start, f.end or end, f.detected_at, frozenset()) for f in result.findings]


def slice_three_sigma(
    history: dict[str, pd.DataFrame], judged: dict[str, pd.DataFrame]
) -> list[Raised]:
    """Per slice and status, |x - mean| > 3 sd of the trailing hour (the last history hour
    included, so it starts warm); an episode names its slice."""
    frame = pd.concat([history["slices"], judged["slices"]], ignore_index=True)
    start = judged["slices"]["minute"].min()
    frame = frame[frame["minute"] >= start - pd.Timedelta(hours=1)]
    out = []
    for (dimension, value), part in frame.groupby(["dimension", "value"]):
        table = dense_counts(part[["minute", "status", "count"]])
        for d in three_sigma(table):
            if d.detected_at > start:
                out.append(Raised(d.start, d.end, d.detected_at, frozenset({(dimension, value)})))
    return out


DETECTORS = {
    "nightshift (total + slices + drill-down)": nightshift,
    "total-only engine": total_only,
    "3-sigma per slice (trailing 1 h)": slice_three_sigma,
}


def _seed(
    seed: int,
) -> list[tuple[str, list[Label], list[Raised], tuple[datetime, datetime], float]]:
    feed = simulate_slices(
        DIMENSIONS, 24 * (HISTORY_DAYS + 1), seed, [], quiet_hours=24 * HISTORY_DAYS
    )
    history, judged, cut = split(feed)
    day = (cut, cut + timedelta(days=1))
    out = []
    for name, run in DETECTORS.items():
        started = time.perf_counter()
        found = run(history, judged)
        out.append((name, feed.labels, found, day, time.perf_counter() - started))
    return out


def quality(seeds: int = 10, workers: int = 2) -> dict[str, Tally]:
    """Every detector over `seeds` simulated dimensioned feeds (seeds run in `workers`
    processes; each detector's seconds are its own, summed over seeds)."""
    tallies = {name: Tally() for name in DETECTORS}
    with ProcessPoolExecutor(workers) as pool:
        for results in pool.map(_seed, range(seeds)):
            for name, labels, found, day, seconds in results:
                tallies[name].seconds += seconds
                tallies[name].add(labels, found, day)
    return tallies


def quality_table(seeds: int = 10) -> str:
    """The comparison as a markdown table."""
    lines = [
        "| detector | slice incidents named | recall | raised at all | precision "
        "| median time to detect (min) | false alarms / day | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tallies = quality(seeds)
    for name, t in tallies.items():
        recall = t.named / t.incidents if t.incidents else float("nan")
        precision = (t.episodes - t.false) / t.episodes if t.episodes else 1.0
        ttd = f"{statistics.median(t.ttd):.1f}" if t.ttd else "–"
        lines.append(
            f"| {name} | {t.named}/{t.incidents} | {recall:.2f} | {t.raised}/{t.incidents} "
            f"| {precision:.2f} | {ttd} | {t.false / t.days:.2f} | {t.seconds:.0f} |"
        )
    ours = tallies[next(iter(DETECTORS))]
    lines += [
        "",
        "| nightshift, by kind | named | median / slowest minutes to name "
        f"| named with code {SURGE_CODE} |",
        "|---|---|---|---|",
    ]
    for kind, minutes in sorted(ours.kinds.items()):
        found = [m for m in minutes if m is not None]
        when = f"{statistics.median(found):.1f} / {max(found):.0f}" if found else "–"
        lines.append(
            f"| {kind} | {len(found)}/{len(minutes)} | {when} | {ours.by_code.get(kind, 0)} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ the tick


def tick(days: int = 90, minutes: int = 120) -> str:
    """Warm-up and per-minute step of `SliceWatch` with 5 dimensions x 20 values on `days` days
    of history, beside the total engine's."""
    dims = [(name, 20) for name in ("acquirer", "brand", "method", "region", "merchant")]
    started = time.perf_counter()
    feed = simulate_slices(dims, 24 * days + minutes // 60 + 1, 0, [], [])
    made = time.perf_counter() - started
    cut = feed.counts["minute"].max() - pd.Timedelta(minutes=minutes - 1)
    watch = SliceWatch()
    started = time.perf_counter()
    watch.warm(feed.slices[feed.slices["minute"] < cut])
    warm = time.perf_counter() - started
    engine = Engine()
    started = time.perf_counter()
    engine.warm(feed.counts[feed.counts["minute"] < cut])
    warm_total = time.perf_counter() - started
    live = by_minute(feed.slices[feed.slices["minute"] >= cut])
    totals = dense_counts(feed.counts[feed.counts["minute"] >= cut])
    slice_ms, total_ms = [], []
    statuses = [str(c) for c in totals.columns]
    values = totals.to_numpy()
    for i, minute in enumerate(pd.DatetimeIndex(totals.index).to_pydatetime()):
        counts = {s: int(v) for s, v in zip(statuses, values[i], strict=True) if v}
        started = time.perf_counter()
        engine.step(minute, counts)
        total_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        watch.step(minute, live.get(minute, {}))
        slice_ms.append((time.perf_counter() - started) * 1000)
    p95 = sorted(slice_ms)[int(0.95 * len(slice_ms))]
    return (
        f"| slices | history | rows | warm-up (s) | step median / p95 (ms) "
        f"| total engine: warm-up (s), step median (ms) |\n|---|---|---|---|---|---|\n"
        f"| {len(watch.watched)} watched of {len(watch.known)} | {days} days "
        f"| {len(feed.slices):,} (simulated in {made:.0f} s) | {warm:.1f} "
        f"| {statistics.median(slice_ms):.1f} / {p95:.1f} "
        f"| {warm_total:.1f}, {statistics.median(total_ms):.2f} |"
    )


def clean_days(seeds: int = 3, budget: int | None = None) -> float:
    """Slice episodes per clean simulated day on 5 dimensions x 20 values (a week of history
    first): `budget` None is the watcher's correction for many slices, 1 none."""
    dims = [(name, 20) for name in ("acquirer", "brand", "method", "region", "merchant")]
    opened: set[str] = set()
    for seed in range(100, 100 + seeds):
        feed = simulate_slices(dims, 24 * 8, seed, [], [])
        history, judged, _ = split(feed, 7)
        watch = SliceWatch(budget=budget)
        watch.warm(history["slices"])
        for minute, cut in sorted(by_minute(judged["slices"]).items()):
            opened.update(f"{seed}:{f.key}" for f in watch.step(minute, cut))
    return len(opened) / seeds


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 90
    print(quality_table(seeds))
    print()
    print(tick(days))
    print()
    print("| false alarms per clean day, 100 slices | corrected | uncorrected |")
    print(f"|---|---|---|\n| 3 seeds | {clean_days()} | {clean_days(budget=1)} |")


if __name__ == "__main__":
    main()
