"""Figure 5: the live detector tick, `detect`, `analyze`, and the detection quality tables."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bench.load import percentile
from bench.quality import three_sigma
from bench.report import Figure, Goal
from bench.servers import ROOT, clean_env
from bot.watch import LAG, FeedWatch
from detector.estimators import dense_counts
from detector.offline import analyze_transactions
from detector.univariate import score_series
from storage.parsing import load_file
from storage.store import open_store

log = logging.getLogger(__name__)

SECTION = 5
TICKS = 60
DETECT_ROWS = 1_000_000
TRANSACTIONS = ROOT / "tests" / "data" / "transactions.csv"
TRANSACTIONS_DAY = date(2025, 7, 12)
ZONE = ZoneInfo("America/Sao_Paulo")


class MovingClock:
    """A clock the bench moves one minute at a time."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def live_tick(url: str, store_label: str, end: datetime) -> list[Figure]:
    """FeedWatch on the 90-day store: warm-up, then one tick per minute of the last hour."""
    store = open_store(url)
    try:
        clock = MovingClock(end - timedelta(minutes=TICKS) + LAG)
        watch = FeedWatch(store, clock)
        started = time.perf_counter()
        watch.warm()
        warm = time.perf_counter() - started
        ticks: list[float] = []
        reads: list[float] = []
        for i in range(1, TICKS + 1):
            clock.at = end - timedelta(minutes=TICKS - i) + LAG
            started = time.perf_counter()
            watch.tick()
            ticks.append(time.perf_counter() - started)
            minute = end - timedelta(minutes=TICKS - i)
            started = time.perf_counter()
            store.counts_frame(minute, minute + timedelta(minutes=1))
            store.auth_codes_frame(minute, minute + timedelta(minutes=1))
            store.last_minute(before=clock.now())
            reads.append(time.perf_counter() - started)
        # The baseline for the warm-up: the same 28 days read from the store, nothing learned.
        started = time.perf_counter()
        store.counts_frame(end - timedelta(days=28), end)
        read_28d = time.perf_counter() - started
    finally:
        store.close()
    return [
        Figure(
            SECTION,
            "live tick p50 (one closed minute judged and stored)",
            store_label,
            percentile(ticks, 50) * 1000,
            "ms",
            percentile(reads, 50) * 1000,
            "the tick's store reads alone",
        ),
        Figure(
            SECTION,
            f"live tick p99 ({TICKS} ticks)",
            store_label,
            percentile(ticks, 99) * 1000,
            "ms",
            percentile(reads, 99) * 1000,
            "the tick's store reads alone",
        ),
        Figure(
            SECTION,
            "detector warm-up at start (28 days of history)",
            store_label,
            warm,
            "s",
            read_28d,
            "reading the 28 days alone",
        ),
    ]


def _series(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    base = 100 + 30 * np.sin(np.arange(n) * 2 * np.pi / 1440)
    values = rng.normal(base, 5)
    values[rng.integers(0, n, size=n // 2000)] *= 3  # spikes
    return np.asarray(values)


def _rolling_three_sigma(values: np.ndarray) -> np.ndarray:
    series = pd.Series(values)
    prev = series.shift(1).rolling(120, min_periods=30)
    return np.asarray(((series - prev.mean()).abs() > 3 * prev.std()).to_numpy())


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=clean_env({}), check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def detect(workdir: Path) -> list[Figure]:
    """`score_series` in-process and `nightshift detect` end to end on a million rows."""
    values = _series(DETECT_ROWS)
    stamps = pd.date_range("2025-01-01", periods=DETECT_ROWS, freq="min", tz="UTC")
    started = time.perf_counter()
    score_series(values, stamps.to_numpy(dtype="datetime64[ns]"))
    ours = DETECT_ROWS / (time.perf_counter() - started)
    started = time.perf_counter()
    _rolling_three_sigma(values)
    peer = DETECT_ROWS / (time.perf_counter() - started)
    csv = workdir / "detect-input.csv"
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": values}).to_csv(
        csv, index=False
    )
    out = workdir / "detect-output.csv"
    cli = _wall([sys.executable, "-m", "bot", "detect", str(csv), "--output", str(out)])
    io_floor = _wall(
        [
            sys.executable,
            "-c",
            "import sys, pandas as pd; f = pd.read_csv(sys.argv[1]); "
            "f['anomaly_score'] = 0.0; f['label'] = 0; f.to_csv(sys.argv[2], index=False)",
            str(csv),
            str(out),
        ]
    )
    return [
        Figure(
            SECTION,
            f"`detect` scoring, in-process ({DETECT_ROWS:,} rows)",
            "—",
            ours,
            "rows/s",
            peer,
            "pandas trailing 3-sigma on the same rows",
        ),
        Figure(
            SECTION,
            f"`nightshift detect FILE --output OUT` end to end ({DETECT_ROWS:,} rows)",
            "—",
            DETECT_ROWS / cli,
            "rows/s",
            DETECT_ROWS / io_floor,
            "a python process reading and writing the same CSV with pandas",
            Goal("value", ">=", 200_000, "rows/s"),
        ),
    ]


def analyze() -> list[Figure]:
    """`analyze` of tests/data/transactions.csv: in-process and as the command."""
    batch = load_file(TRANSACTIONS, default_date=TRANSACTIONS_DAY, tz=ZONE)
    counts, auth = batch.counts_frame(), batch.auth_codes_frame()
    started = time.perf_counter()
    analyze_transactions(counts, auth if len(auth) else None)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    three_sigma(dense_counts(counts))
    peer = time.perf_counter() - started
    argv = [sys.executable, "-m", "bot"]
    cli = _wall(
        [*argv, "analyze", str(TRANSACTIONS), "--json", "--date", TRANSACTIONS_DAY.isoformat()]
    )
    startup = _wall([*argv, "analyze", "--help"])
    return [
        Figure(
            SECTION,
            f"`analyze` of transactions.csv, in-process ({len(counts):,} rows)",
            "—",
            ours * 1000,
            "ms",
            peer * 1000,
            "trailing 3-sigma (bench/quality.py) on the same table",
        ),
        Figure(
            SECTION,
            "`nightshift analyze transactions.csv --json` end to end",
            "—",
            cli,
            "s",
            startup,
            "`nightshift analyze --help` (interpreter and imports)",
        ),
    ]
