"""Figure 1: feed intake over HTTP against a raw executemany upsert of the same rows."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from bench import data
from bench.load import Job, LoadResult, run_load
from bench.postgres import dsn
from bench.report import Figure, Goal
from bench.servers import TOKEN, serve

log = logging.getLogger(__name__)

SECTION = 1
RATIO_GOAL = Goal("ratio", ">=", 0.5)
EVENTS_GOAL = Goal("value", ">=", 20_000, "rows/s")
FIRST_MINUTE = 1_735_689_600  # 2025-01-01 00:00 UTC
# (batch size, counted batches): about 100k-150k rows per shape
SHAPES = ((1_000, 100), (10_000, 15))
EVENT_BATCH, EVENT_BATCHES = 10_000, 12

CountRows = list[tuple[int, str, int]]


# ------------------------------------------------------------------ raw baselines


def _sqlite_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    # The store's own pragmas (storage/dialects/sqlite.py), so only the layers above differ.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS counts (minute BIGINT NOT NULL, status VARCHAR(32) NOT NULL, "
        "count BIGINT NOT NULL, PRIMARY KEY (minute, status))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id VARCHAR(128) PRIMARY KEY, minute BIGINT NOT NULL, "
        "status VARCHAR(32) NOT NULL, amount FLOAT, merchant_id VARCHAR(128))"
    )
    return conn


_UPSERT = (
    "INSERT INTO counts (minute, status, count) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (minute, status) DO UPDATE SET count = excluded.count"
)
_EVENTS = (
    "INSERT INTO events (id, minute, status, amount, merchant_id) VALUES ({p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (id) DO NOTHING"
)


Rows = list[tuple[object, ...]]
Upsert = Callable[[str, Sequence[Rows], Sequence[Rows]], float]


def sqlite_upsert(path: Path) -> Upsert:
    """Rows/s of `executemany` on sqlite3, one transaction per batch, after warm-up batches."""

    def run(statement: str, batches: Sequence[Rows], warmup: Sequence[Rows]) -> float:
        with contextlib.closing(_sqlite_raw(path)) as conn:
            sql = statement.format(p="?")
            for batch in warmup:
                conn.execute("BEGIN")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
            started = time.perf_counter()
            for batch in batches:
                conn.execute("BEGIN")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
            took = time.perf_counter() - started
        return sum(len(b) for b in batches) / took

    return run


def postgres_upsert(url: str) -> Upsert:
    """Rows/s of psycopg `executemany` (pipelined), one transaction per batch, after warm-up."""

    def run(statement: str, batches: Sequence[Rows], warmup: Sequence[Rows]) -> float:
        with psycopg.connect(dsn(url)) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS counts (minute BIGINT NOT NULL, status VARCHAR(32) "
                "NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (minute, status))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events (id VARCHAR(128) PRIMARY KEY, minute BIGINT "
                "NOT NULL, status VARCHAR(32) NOT NULL, amount FLOAT, merchant_id VARCHAR(128))"
            )
            conn.commit()
            sql = statement.format(p="%s")
            for batch in warmup:
                with conn.cursor() as cursor:
                    cursor.executemany(sql, batch)
                conn.commit()
            started = time.perf_counter()
            for batch in batches:
                with conn.cursor() as cursor:
                    cursor.executemany(sql, batch)
                conn.commit()
            took = time.perf_counter() - started
        return sum(len(b) for b in batches) / took

    return run


# ------------------------------------------------------------------------- figure 1


def _checked(result: LoadResult, expected: Sequence[int]) -> str:
    """A note when any answer was not a 200 accepting every row sent."""
    accepted = [int(a.get("accepted", -1)) for a in result.answers]
    if result.failures or sorted(accepted) != sorted(expected):
        return f"{result.failures} failed answers; accepted {sum(accepted)} of {sum(expected)}"
    return ""


def measure(database_url: str, raw_url: str, store: str, workdir: Path) -> list[Figure]:
    """Count rows in 1k and 10k batches (JSON, CSV), then event rows with dedupe."""
    raw = postgres_upsert(raw_url) if raw_url.startswith("postgresql") else None
    raw_sqlite = sqlite_upsert(workdir / f"raw-{time.monotonic_ns()}.db") if raw is None else None
    upsert = raw or raw_sqlite
    assert upsert is not None
    figures: list[Figure] = []
    minute = FIRST_MINUTE
    with serve(database_url, workdir) as server:
        for fmt in ("json", "csv"):
            for size, count in SHAPES:
                batches: list[CountRows] = []
                for _ in range(count + 2):  # two warm-up batches
                    batches.append(data.count_rows(minute, size, seed=minute))
                    minute += 60 * (size // len(data.STATUSES) + 1)
                encode = data.counts_json if fmt == "json" else data.counts_csv
                job = Job(
                    url=f"{server.url}/transactions",
                    bodies=[encode(b) for b in batches],
                    content_type="application/json" if fmt == "json" else "text/csv",
                    warmup=2,
                    token=TOKEN,
                )
                log.info("  %s: %s batches of %d count rows", store, fmt, size)
                result = run_load(job, workdir)
                counted = batches[2:]
                rate = sum(len(b) for b in counted) / result.elapsed
                base = upsert(_UPSERT, [list(b) for b in counted], [list(b) for b in batches[:2]])
                figures.append(
                    Figure(
                        SECTION,
                        f"count rows, {fmt.upper()}, batches of {size:,}",
                        store,
                        rate,
                        "rows/s",
                        base,
                        "raw executemany upsert",
                        RATIO_GOAL,
                        _checked(result, [len(b) for b in counted]),
                    )
                )
        # Events: each batch repeats half of the previous one (a re-sent page of the feed).
        half = EVENT_BATCH // 2
        batches_ev = [
            data.event_rows(k * half, EVENT_BATCH, minute) for k in range(EVENT_BATCHES + 1)
        ]
        log.info("  %s: %d batches of %d event rows", store, EVENT_BATCHES, EVENT_BATCH)
        job = Job(
            url=f"{server.url}/transactions",
            bodies=[data.events_json(b) for b in batches_ev],
            content_type="application/json",
            warmup=1,
            token=TOKEN,
        )
        result = run_load(job, workdir)
        counted_ev = batches_ev[1:]
        rate = sum(len(b) for b in counted_ev) / result.elapsed
        as_rows: list[Rows] = [
            [(e.id, e.minute, e.status, e.amount, e.merchant_id) for e in b] for b in batches_ev
        ]
        base = upsert(_EVENTS, as_rows[1:], as_rows[:1])
        figures.append(
            Figure(
                SECTION,
                f"event rows (dedupe by id, half of each batch re-sent), JSON, batches of "
                f"{EVENT_BATCH:,}",
                store,
                rate,
                "rows/s",
                base,
                "raw executemany insert … on conflict do nothing",
                EVENTS_GOAL,
                _checked(result, [len(b) for b in counted_ev]),
            )
        )
    return figures
