"""Slices: ingest of dimensioned count rows against a raw SQLite upsert, and bytes on disk.

`python -m bench.slice_storage [--days D] [--combos C] [--workdir DIR]`: a feed of D days, C
combos a
minute (statuses 80% approved, 15% denied, 5% failed; 5 dimensions of 20 values each, drawn
with Zipf-like weights), sent in batches of 10,000 rows (100 minutes). Prints rows/s of the
store's ingest (parse included, and the store alone) and of a raw `sqlite3` executemany upsert
of the same rows into one table keyed by (minute, status, d1..d5); then the SQLite file's
bytes, per day and for 90 days. Not part of `make bench` yet: the numbers go in the README.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from storage.parsing import parse_csv
from storage.store import open_store

DIMENSIONS = ("acquirer", "brand", "method", "region", "merchant")
VALUES = 20
FIRST_MINUTE = 1_735_689_600  # 2025-01-01 00:00 UTC
BATCH_MINUTES = 100
STATUSES = ("approved", "denied", "failed")


def feed(days: int, combos: int, seed: int = 7) -> list[tuple[int, str, tuple[str, ...], int]]:
    """Rows (minute, status, values, count), each (minute, status, values) once."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, VALUES + 1)
    weights /= weights.sum()
    rows = []
    for m in range(days * 1440):
        minute = FIRST_MINUTE + 60 * m
        statuses = rng.choice(len(STATUSES), combos, p=(0.8, 0.15, 0.05))
        picks = rng.choice(VALUES, (combos, len(DIMENSIONS)), p=weights)
        counts = rng.integers(1, 20, combos)
        seen = set()
        for s, values, n in zip(statuses, picks, counts, strict=True):
            key = (int(s), *map(int, values))
            if key in seen:
                continue
            seen.add(key)
            names = tuple(f"{d[0]}{v}" for d, v in zip(DIMENSIONS, values, strict=True))
            rows.append((minute, STATUSES[s], names, int(n)))
    return rows


def as_csv(rows: list[tuple[int, str, tuple[str, ...], int]]) -> str:
    lines = [f"timestamp,status,{','.join(DIMENSIONS)},count"]
    stamps = {m: datetime.fromtimestamp(m, UTC).isoformat() for m, _, _, _ in rows}
    lines += [f"{stamps[m]},{s},{','.join(v)},{n}" for m, s, v, n in rows]
    return "\n".join(lines) + "\n"


def batches(
    rows: list[tuple[int, str, tuple[str, ...], int]],
) -> list[list[tuple[int, str, tuple[str, ...], int]]]:
    out: dict[int, list[tuple[int, str, tuple[str, ...], int]]] = {}
    for row in rows:
        out.setdefault((row[0] - FIRST_MINUTE) // (60 * BATCH_MINUTES), []).append(row)
    return [out[k] for k in sorted(out)]


def raw_upsert(path: Path, parts: list[list[tuple[int, str, tuple[str, ...], int]]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    keys = ", ".join(DIMENSIONS)
    conn.execute(
        f"CREATE TABLE raw (minute BIGINT, status TEXT, {keys}, count BIGINT, "
        f"PRIMARY KEY (minute, status, {keys}))"
    )
    sql = (
        f"INSERT INTO raw VALUES ({', '.join(['?'] * (len(DIMENSIONS) + 3))}) "
        f"ON CONFLICT (minute, status, {keys}) DO UPDATE SET count = excluded.count"
    )
    started = time.perf_counter()
    for part in parts:
        conn.execute("BEGIN")
        conn.executemany(sql, [(m, s, *v, n) for m, s, v, n in part])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--combos", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    rows = feed(args.days, args.combos)
    parts = batches(rows)
    texts = [as_csv(part) for part in parts]
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        raw = raw_upsert(Path(work) / "raw.db", parts)
        path = Path(work) / "nightshift.db"
        store = open_store(f"sqlite:///{path}")
        parsing = storing = 0.0
        for text in texts:
            started = time.perf_counter()
            batch = parse_csv(text, default_date=date(2025, 1, 1), tz=UTC)
            parsed = time.perf_counter()
            store.ingest(batch)
            parsing += parsed - started
            storing += time.perf_counter() - parsed
        again = time.perf_counter()
        store.ingest(parse_csv(texts[0], default_date=date(2025, 1, 1), tz=UTC))
        resend = time.perf_counter() - again
        store.close()
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            tables = dict(
                conn.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
                ).fetchall()
            )
        size = path.stat().st_size
    n = len(rows)
    print(f"{n} rows, {args.days} days, {n / (args.days * 1440):.1f} combos/minute")
    print(f"raw sqlite3 upsert:        {n / raw:>10,.0f} rows/s")
    print(f"store.ingest (store only): {n / storing:>10,.0f} rows/s  ratio {raw / storing:.2f}")
    total = parsing + storing
    print(f"parse + store.ingest:      {n / total:>10,.0f} rows/s  ratio {raw / total:.2f}")
    print(f"re-sending one batch of {len(parts[0])} rows: {resend * 1000:.0f} ms")
    print(
        f"SQLite file: {size:,} bytes; {size / args.days:,.0f} per day; 90 days ≈ "
        f"{size / args.days * 90 / 1e9:.2f} GB"
    )
    for name, pages in list(tables.items())[:8]:
        print(f"  {name:<32} {pages / args.days * 90 / 1e9:.2f} GB for 90 days")


if __name__ == "__main__":
    main()
