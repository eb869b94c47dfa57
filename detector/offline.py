"""Offline analysis of a transactions frame: the live engine replayed minute by minute."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.config import DetectorConfig
from detector.drilldown import carriers, codes_as_slices, with_carriers
from detector.engine import Engine
from detector.estimators import dense_counts
from detector.findings import Finding, Segment
from detector.slices import SliceWatch

F = TypeVar("F", Finding, Segment)


@dataclass(frozen=True, slots=True)
class Emission:
    """A finding as the live bot would have published it, at `at` (the minute's close)."""

    at: datetime
    finding: Finding


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a replay produced: every emission in order, the final state of each episode,
    and the expected approvals per minute the engine held at each minute (for charts)."""

    emissions: tuple[Emission, ...]
    findings: tuple[Finding, ...]
    segments: tuple[Segment, ...]
    baseline: pd.DataFrame  # index minute (UTC); columns expected, low, high for volume_status


def _pivot_codes(auth_codes: pd.DataFrame | None, index: pd.DatetimeIndex) -> pd.DataFrame | None:
    if auth_codes is None or auth_codes.empty:
        return None
    missing = {"minute", "auth_code", "count"} - set(auth_codes.columns)
    if missing:
        raise DetectorError(f"auth-code frame lacks columns: {', '.join(sorted(missing))}")
    frame = auth_codes.assign(minute=pd.to_datetime(auth_codes["minute"], utc=True).dt.floor("min"))
    table = frame.pivot_table(
        index="minute", columns="auth_code", values="count", aggfunc="sum", fill_value=0
    )
    return table.reindex(index, fill_value=0)


def by_minute(slices: pd.DataFrame) -> dict[datetime, dict[tuple[str, str], dict[str, int]]]:
    """A long slice frame (`minute, status, dimension, value, count`) as minute -> (dimension,
    value) -> status -> count, the shape `SliceWatch.step` takes."""
    out: dict[datetime, dict[tuple[str, str], dict[str, int]]] = {}
    minutes = pd.to_datetime(slices["minute"], utc=True).dt.floor("min")
    columns = zip(
        minutes.dt.to_pydatetime(),
        slices["dimension"].astype(str),
        slices["value"].astype(str),
        slices["status"].astype(str),
        slices["count"].astype(int),
        strict=True,
    )
    for minute, dimension, value, status, count in columns:
        by_status = out.setdefault(minute, {}).setdefault((dimension, value), {})
        by_status[status] = by_status.get(status, 0) + count
    return out


def analyze_transactions(
    counts: pd.DataFrame,
    auth_codes: pd.DataFrame | None = None,
    config: DetectorConfig | None = None,
    history: pd.DataFrame | None = None,
    slices: pd.DataFrame | None = None,
    slice_history: pd.DataFrame | None = None,
) -> Analysis:
    """Replay a `minute, status, count` frame through a fresh `Engine`, one minute at a time.

    Minutes without rows count as zero, as the live bot would see them. `auth_codes`
    (`minute, auth_code, count`) explains denial surges. Nothing after a minute is looked at
    when judging it, so `detected_at` is when the live bot would have raised each finding.
    With `slices` (`minute, status, dimension, value, count`), each slice is watched too
    (`SliceWatch`, warmed on `slice_history`) and each total finding names the slices that
    carry it (`drill_down`).
    """
    engine = Engine(config)
    if history is not None:
        engine.warm(history)
    watch: SliceWatch | None = None
    per_minute: dict[datetime, dict[tuple[str, str], dict[str, int]]] = {}
    if slices is not None and not slices.empty:
        watch = SliceWatch(engine.config)
        if slice_history is not None:
            watch.warm(slice_history)
        per_minute = by_minute(slices)
    table = dense_counts(counts)
    if table.empty:
        return Analysis((), (), (), pd.DataFrame(columns=["expected", "low", "high"]))
    codes = _pivot_codes(auth_codes, pd.DatetimeIndex(table.index))
    statuses = [str(c) for c in table.columns]
    code_names = [str(c) for c in codes.columns] if codes is not None else []
    values = table.to_numpy(dtype=np.int64)
    code_values = codes.to_numpy(dtype=np.int64) if codes is not None else None
    emissions: list[Emission] = []
    latest: dict[str, Finding] = {}
    expected = np.zeros(len(table))
    sd = np.zeros(len(table))
    volume = engine.config.volume_status
    last_seen: datetime | None = None
    for i, stamp in enumerate(table.index):
        minute = stamp.to_pydatetime()
        row = {s: int(v) for s, v in zip(statuses, values[i], strict=True) if v}
        closed = minute + pd.Timedelta(minutes=1)
        if row:
            last_seen = minute
        for finding in engine.check_silence(closed, last_seen):
            emissions.append(Emission(closed, finding))
            latest[finding.key] = finding
        code_row = (
            {c: int(v) for c, v in zip(code_names, code_values[i], strict=True) if v}
            if code_values is not None
            else None
        )
        exp, var = engine.expectation(minute, volume)
        expected[i], sd[i] = (exp, var**0.5) if i else (np.nan, np.nan)
        for finding in engine.step(minute, row, code_row):
            emissions.append(Emission(minute + pd.Timedelta(minutes=1), finding))
            latest[finding.key] = finding
        if watch is not None:
            cut = per_minute.get(minute, {})
            for finding in watch.step(minute, cut, code_row, total_open=bool(engine.open_findings)):
                emissions.append(Emission(minute + pd.Timedelta(minutes=1), finding))
                latest[finding.key] = finding
    baseline = pd.DataFrame(
        {"expected": expected, "low": np.maximum(expected - 3 * sd, 0), "high": expected + 3 * sd},
        index=table.index,
    )
    extra = [
        segment_of(f) for f in latest.values() if f.kind == "feed_silence" or f.slice is not None
    ]
    segments = sorted([*engine.flush_segments(), *extra], key=lambda s: (s.detected_at, s.metric))
    findings = tuple(latest.values())
    if slices is not None and not slices.empty:
        cuts = pd.concat([slices, codes_as_slices(auth_codes)], ignore_index=True)
        findings = tuple(_drilled(f, cuts) for f in findings)
        segments = [_drilled(s, cuts) for s in segments]
    return Analysis(tuple(emissions), findings, tuple(segments), baseline)


def segment_of(finding: Finding) -> Segment:
    """A finding as one row of `analyze`'s table (a silent feed's, a slice's)."""
    silent = finding.kind == "feed_silence"
    return Segment(
        episode=finding.key,
        kind=finding.kind,
        metric=finding.metric,
        status="*" if silent else finding.evidence.lead.status,
        start=finding.start,
        end=finding.end,
        detected_at=finding.detected_at,
        severity=finding.severity,
        score=finding.score,
        expected=finding.expected,
        observed=finding.observed,
        z=round(-((finding.expected * 10) ** 0.5), 2) if silent else finding.evidence.lead.z,
        evidence=finding.evidence,
        slice=finding.slice,
    )


def _drilled(item: F, cuts: pd.DataFrame) -> F:
    if item.slice is not None or item.kind == "feed_silence":
        return item
    last = pd.to_datetime(cuts["minute"], utc=True).max().to_pydatetime()
    end = item.end or last + timedelta(minutes=1)
    found = carriers(cuts, item.evidence.lead.status, item.start, end)
    return replace(item, evidence=with_carriers(item.evidence, found))
