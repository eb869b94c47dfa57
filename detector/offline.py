"""Offline analysis of a transactions frame: the live engine replayed minute by minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.config import DetectorConfig
from detector.engine import Engine
from detector.estimators import dense_counts
from detector.findings import Finding, Segment


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


def analyze_transactions(
    counts: pd.DataFrame,
    auth_codes: pd.DataFrame | None = None,
    config: DetectorConfig | None = None,
    history: pd.DataFrame | None = None,
) -> Analysis:
    """Replay a `minute, status, count` frame through a fresh `Engine`, one minute at a time.

    Minutes without rows count as zero, as the live bot would see them. `auth_codes`
    (`minute, auth_code, count`) explains denial surges. Nothing after a minute is looked at
    when judging it, so `detected_at` is when the live bot would have raised each finding.
    """
    engine = Engine(config)
    if history is not None:
        engine.warm(history)
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
    baseline = pd.DataFrame(
        {"expected": expected, "low": np.maximum(expected - 3 * sd, 0), "high": expected + 3 * sd},
        index=table.index,
    )
    silences = [
        Segment(
            episode=f.key,
            kind=f.kind,
            metric=f.metric,
            status="*",
            start=f.start,
            end=f.end,
            detected_at=f.detected_at,
            severity=f.severity,
            score=f.score,
            expected=f.expected,
            observed=f.observed,
            z=round(-((f.expected * 10) ** 0.5), 2),
            evidence=f.evidence,
        )
        for f in latest.values()
        if f.kind == "feed_silence"
    ]
    segments = sorted(
        [*engine.flush_segments(), *silences], key=lambda s: (s.detected_at, s.metric)
    )
    return Analysis(tuple(emissions), tuple(latest.values()), tuple(segments), baseline)
