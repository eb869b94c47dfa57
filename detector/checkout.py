"""The hourly checkout report: reading it, and judging each hour's sales from what came before.

Its columns are `time,today,yesterday,same_day_last_week,avg_last_week,avg_last_month`; each hour
is judged from the hours before it and its baselines.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, time, timedelta, tzinfo

import pandas as pd

from detector import InputFormatError
from detector.findings import Evidence, Segment
from detector.signals import Signal, score_of

COLUMNS = ("time", "today", "yesterday", "same_day_last_week", "avg_last_week", "avg_last_month")
REFERENCES = COLUMNS[2:]
HOUR = timedelta(hours=1)
METRIC = "sales"  # what an hour's finding is about


def read_checkout(text: str, source: str = "checkout.csv") -> pd.DataFrame:
    """Parse a checkout CSV; errors name `source:line`."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise InputFormatError(f"{source}:1: empty file")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputFormatError(f"{source}:1: missing column(s) {', '.join(missing)}")
    out: list[dict[str, float]] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputFormatError(f"{source}:{lineno}: expected {len(header)} fields")
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        stamp = cells["time"].lower().rstrip("h")
        try:
            hour = int(stamp.split(":")[0])
        except ValueError:
            raise InputFormatError(
                f"{source}:{lineno}: time {cells['time']!r} is not like 00h"
            ) from None
        if not 0 <= hour <= 23:
            raise InputFormatError(f"{source}:{lineno}: hour {hour} out of range")
        record: dict[str, float] = {"hour": float(hour)}
        for col in COLUMNS[1:]:
            try:
                value = float(cells[col]) if cells[col] else math.nan
            except ValueError:
                raise InputFormatError(
                    f"{source}:{lineno}: {col} {cells[col]!r} is not a number"
                ) from None
            record[col] = value
        out.append(record)
    frame = pd.DataFrame(out, columns=["hour", *COLUMNS[1:]])
    return frame.astype({"hour": int}).sort_values("hour").reset_index(drop=True)


def _deviance_z(x: float, lam: float, phi: float) -> float:
    """Signed Poisson deviance residual, scaled for over-dispersion."""
    if lam <= 0:
        return 0.0
    dev = 2.0 * ((x * math.log(x / lam) if x > 0 else 0.0) - (x - lam))
    return math.copysign(math.sqrt(max(dev, 0.0) / phi), x - lam)


def analyze_checkout(
    frame: pd.DataFrame,
    day: date,
    tz: tzinfo,
    *,
    phi: float = 1.5,
    warn_z: float = 2.5,
    warn_ratio: float = 0.6,
    critical_ratio: float = 0.25,
    min_expected: float = 5.0,
) -> tuple[list[Segment], pd.DataFrame]:
    """Judge each hour's sales from the baselines of that hour and the hours before it only.

    Expected = median of the four reference columns, scaled by how today has run against them so
    far (shrunk toward 1). Only drops are anomalies: a sales surge is not an incident. Returns the
    flagged hours and a per-hour baseline frame (expected, low, high) for charts.
    """
    found: list[Segment] = []
    seen_today = 0.0
    seen_base = 0.0
    rows = []
    for rec in frame.itertuples(index=False):
        refs = sorted(float(getattr(rec, c)) for c in REFERENCES if not math.isnan(getattr(rec, c)))
        if not refs:
            continue
        mid = len(refs) // 2
        base = refs[mid] if len(refs) % 2 else (refs[mid - 1] + refs[mid]) / 2
        ratio = min(max((seen_today + 20.0) / (seen_base + 20.0), 0.5), 2.0)
        expected = base * ratio
        today = float(rec.today)  # type: ignore[arg-type]
        z = _deviance_z(today, expected, phi)
        sd = math.sqrt(expected * phi)
        start = datetime.combine(day, time(int(rec.hour)), tzinfo=tz)  # type: ignore[arg-type]
        rows.append((start, expected, max(expected - 2 * sd, 0.0), expected + 2 * sd, today))
        share = today / expected if expected > 0 else 1.0
        flagged = expected >= min_expected and z <= -warn_z and share <= warn_ratio
        if flagged:
            lead = Signal(
                kind="outage" if today == 0 else "volume_drop",
                metric=METRIC,
                status=METRIC,
                z=z,
                ratio=share,
                expected=expected,
                observed=today,
                sd=sd,
                total=today,
                since=start,
                critical=share <= critical_ratio and z <= -3.0,
                window=60,
            )
            found.append(
                Segment(
                    episode=f"{start.strftime('%Y%m%d-%H')}h-{METRIC}",
                    kind=lead.kind,
                    metric=METRIC,
                    status=METRIC,
                    start=start,
                    end=start + HOUR,
                    detected_at=start + HOUR,
                    severity="critical" if lead.critical else "warning",
                    score=score_of(z),
                    expected=round(expected, 2),
                    observed=today,
                    z=round(z, 2),
                    evidence=Evidence(lead, start),
                )
            )
        elif expected >= 1:
            seen_today += today
            seen_base += base
    baseline = pd.DataFrame(rows, columns=["start", "expected", "low", "high", "observed"])
    return found, baseline.set_index("start")
