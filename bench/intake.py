"""Figure 1: feed intake over HTTP against a raw executemany upsert of the same rows."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import data
from bench.load import Job, run_load
from bench.postgres import dsn
from bench.process import TICK_WAIT
from bench.report import Figure, Goal
from bench.servers import TOKEN, serve

log = logging.getLogger(__name__)

SECTION = 1
ROUNDS = 3  # alternating rounds of POSTs and raw upserts a figure is measured in
RATIO_GOAL = Goal("ratio", ">=", 0.5)
EVENTS_GOAL = Goal("value", ">=", 20_000, "rows/s")
FIRST_MINUTE = 1_735_689_600  # 2025-01-01 00:00 UTC
# (batch size, counted batches): about 100k-150k rows per shape
SHAPES = ((1_000, 100), (10_000, 15))
EVENT_BATCH, EVENT_BATCHES = 10_000, 12
# Dimensioned count rows: batches of 100 minutes (about 9,900 rows), 30 counted.
COMBO_MINUTES, COMBO_BATCHES = 100, 30

CountRows = list[tuple[int, str, int]]


# ------------------------------------------------------------------ raw baselines


_DIMENSIONS = ", ".join(data.DIMENSIONS)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS counts (minute BIGINT NOT NULL, status VARCHAR(32) NOT NULL, "
    "count BIGINT NOT NULL, PRIMARY KEY (minute, status))",
    "CREATE TABLE IF NOT EXISTS events (id VARCHAR(128) PRIMARY KEY, minute BIGINT NOT NULL, "
    "status VARCHAR(32) NOT NULL, amount FLOAT, merchant_id VARCHAR(128))",
    # One row per (minute, status, dimension values): the combo as plain columns.
    "CREATE TABLE IF NOT EXISTS combos (minute BIGINT NOT NULL, status VARCHAR(32) NOT NULL, "
    + "".join(f"{d} VARCHAR(128) NOT NULL, " for d in data.DIMENSIONS)
    + f"count BIGINT NOT NULL, PRIMARY KEY (minute, status, {_DIMENSIONS}))",
)


def _sqlite_raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    # The store's own pragmas (storage/dialects/sqlite.py), so only the layers above differ.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for table in _TABLES:
        conn.execute(table)
    return conn


_UPSERT = (
    "INSERT INTO counts (minute, status, count) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (minute, status) DO UPDATE SET count = excluded.count"
)
COMBOS_UPSERT = (
    f"INSERT INTO combos (minute, status, {_DIMENSIONS}, count) VALUES "
    f"({', '.join(['{p}'] * (len(data.DIMENSIONS) + 3))}) "
    f"ON CONFLICT (minute, status, {_DIMENSIONS}) DO UPDATE SET count = excluded.count"
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
            for table in _TABLES:
                conn.execute(table)
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


def _checked(failures: int, answers: Sequence[Mapping[str, Any]], expected: Sequence[int]) -> str:
    """A note when any answer was not a 200 accepting every row sent."""
    accepted = [int(a.get("accepted", -1)) for a in answers]
    if failures or sorted(accepted) != sorted(expected):
        return f"{failures} failed answers; accepted {sum(accepted)} of {sum(expected)}"
    return ""


@dataclass(frozen=True, slots=True)
class _Sent:
    """One figure's batches: their rows (as the raw baseline upserts them) and their bodies."""

    what: str
    rows: Sequence[Rows]
    bodies: Sequence[bytes]
    content_type: str
    warmup: int
    statement: str  # the raw baseline's
    baseline: str
    goal: Goal


def _figure(
    sent: _Sent, url: str, upsert: Upsert, store: str, workdir: Path, rounds: int = ROUNDS
) -> Figure:
    """The batches POSTed one after another against the raw upsert of their rows, in `rounds`
    alternating rounds (a round of POSTs, then the raw upsert of the same rows), so a slow
    spell of this shared machine slows both sides: each rate is its rows over its summed
    time."""
    counted, warmup = sent.rows[sent.warmup :], sent.rows[: sent.warmup]
    log.info("  %s: %s", store, sent.what)
    size = -(-len(counted) // rounds)
    took = base_took = 0.0
    answers: list[Mapping[str, Any]] = []
    failures = 0
    for at in range(0, len(counted), size):
        lead = sent.warmup if at == 0 else 0  # the first round also sends the warm-up batches
        job = Job(
            url=f"{url}/transactions",
            bodies=sent.bodies[sent.warmup + at - lead : sent.warmup + at + size],
            content_type=sent.content_type,
            warmup=lead,
            token=TOKEN,
        )
        result = run_load(job, workdir)
        took += result.elapsed
        answers.extend(result.answers)
        failures += result.failures
        part = counted[at : at + size]
        rate = upsert(sent.statement, part, warmup if at == 0 else [])
        base_took += sum(len(b) for b in part) / rate
    rows = sum(len(b) for b in counted)
    checked = _checked(failures, answers, [len(b) for b in counted])
    return Figure(
        SECTION,
        sent.what,
        store,
        rows / took,
        "rows/s",
        rows / base_took,
        sent.baseline,
        sent.goal,
        checked,
    )


_CONTENT = {"json": "application/json", "csv": "text/csv"}


def measure(database_url: str, raw_url: str, store: str, workdir: Path) -> list[Figure]:
    """Count rows in 1k and 10k batches (JSON, CSV), dimensioned count rows (CSV, JSON), then
    event rows with dedupe."""
    raw = postgres_upsert(raw_url) if raw_url.startswith("postgresql") else None
    raw_sqlite = sqlite_upsert(workdir / f"raw-{time.monotonic_ns()}.db") if raw is None else None
    upsert = raw or raw_sqlite
    assert upsert is not None
    figures: list[Figure] = []
    minute = FIRST_MINUTE
    upserted = "raw executemany upsert"
    with serve(database_url, workdir) as server:
        # The detector's first tick (at the next wall-clock minute) warms it up: seconds of
        # CPU, once. Measured after it, the figures are the feed a user sends all day, not a
        # race with start-up (the first figures missed by a tenth when the two met).
        if not server.wait_for_metric("nightshift_detector_runs_total", TICK_WAIT):
            log.warning("  no detector tick within %.0f s: measuring anyway", TICK_WAIT)
        for fmt in ("json", "csv"):
            for size, count in SHAPES:
                batches: list[CountRows] = []
                for _ in range(count + 2):  # two warm-up batches
                    batches.append(data.count_rows(minute, size, seed=minute))
                    minute += 60 * (size // len(data.STATUSES) + 1)
                encode = data.counts_json if fmt == "json" else data.counts_csv
                sent = _Sent(
                    f"count rows, {fmt.upper()}, batches of {size:,}",
                    [list(b) for b in batches],
                    [encode(b) for b in batches],
                    _CONTENT[fmt],
                    2,
                    _UPSERT,
                    upserted,
                    RATIO_GOAL,
                )
                figures.append(_figure(sent, server.url, upsert, store, workdir))
        for fmt in ("csv", "json"):
            combos: list[data.DimensionedRows] = []
            for _ in range(COMBO_BATCHES + 2):  # two warm-up batches
                combos.append(data.dimensioned_rows(minute, COMBO_MINUTES, seed=minute))
                minute += 60 * COMBO_MINUTES
            encode_combos = data.dimensioned_json if fmt == "json" else data.dimensioned_csv
            sent = _Sent(
                f"dimensioned count rows ({len(data.DIMENSIONS)} dimensions × "
                f"{data.DIMENSION_VALUES} values, {data.COMBOS_A_MINUTE} draws a minute), "
                f"{fmt.upper()}, batches of {COMBO_MINUTES} minutes "
                f"(~{len(combos[0]):,} rows)",
                [[(m, s, *v, c) for m, s, v, c in b] for b in combos],
                [encode_combos(b) for b in combos],
                _CONTENT[fmt],
                2,
                COMBOS_UPSERT,
                f"{upserted} keyed by (minute, status, {_DIMENSIONS})",
                RATIO_GOAL,
            )
            figures.append(_figure(sent, server.url, upsert, store, workdir))
        # Events: each batch repeats half of the previous one (a re-sent page of the feed).
        half = EVENT_BATCH // 2
        batches_ev = [
            data.event_rows(k * half, EVENT_BATCH, minute) for k in range(EVENT_BATCHES + 1)
        ]
        sent = _Sent(
            f"event rows (dedupe by id, half of each batch re-sent), JSON, batches of "
            f"{EVENT_BATCH:,}",
            [[(e.id, e.minute, e.status, e.amount, e.merchant_id) for e in b] for b in batches_ev],
            [data.events_json(b) for b in batches_ev],
            _CONTENT["json"],
            1,
            _EVENTS,
            "raw executemany insert … on conflict do nothing",
            EVENTS_GOAL,
        )
        figures.append(_figure(sent, server.url, upsert, store, workdir))
    return figures
