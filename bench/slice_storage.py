"""Slices: bytes on disk of a dimensioned feed in SQLite, and its ingest beside a raw upsert.

`python -m bench.slice_storage [--days D] [--workdir DIR]`: D days of `bench.data`'s
dimensioned feed (100 draws a minute over 3 statuses; 5 dimensions of 20 values each, Zipf-like
weights), sent in batches of 100 minutes (about 10,000 rows). Prints rows/s of the store's
ingest (parse included, and the store alone) and of bench §1's raw `sqlite3` executemany upsert
of the same rows into one table keyed by (minute, status, d1..d5); then the SQLite file's bytes,
per day and for 90 days. The ingest figure of `make bench` is §1's (over HTTP); this one is
in-process, for the disk.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, date
from pathlib import Path

from bench import data, intake
from storage.parsing import parse_csv
from storage.store import open_store

BATCH_MINUTES = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    parts = [
        data.dimensioned_rows(intake.FIRST_MINUTE + 60 * m, BATCH_MINUTES, seed=m)
        for m in range(0, args.days * 1440, BATCH_MINUTES)
    ]
    texts = [data.dimensioned_csv(part).decode() for part in parts]
    n, days = sum(map(len, parts)), len(parts) * BATCH_MINUTES / 1440
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        upsert = intake.sqlite_upsert(Path(work) / "raw.db")
        raw = upsert(intake.COMBOS_UPSERT, [[(m, s, *v, c) for m, s, v, c in p] for p in parts], [])
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
    print(f"{n} rows, {days:.2f} days, {n / (days * 1440):.1f} combos/minute")
    print(f"raw sqlite3 upsert:        {raw:>10,.0f} rows/s")
    print(f"store.ingest (store only): {n / storing:>10,.0f} rows/s  ratio {n / storing / raw:.2f}")
    total = parsing + storing
    print(f"parse + store.ingest:      {n / total:>10,.0f} rows/s  ratio {n / total / raw:.2f}")
    print(f"re-sending one batch of {len(parts[0])} rows: {resend * 1000:.0f} ms")
    print(
        f"SQLite file: {size:,} bytes; {size / days:,.0f} per day; 90 days ≈ "
        f"{size / days * 90 / 1e9:.2f} GB"
    )
    for name, pages in list(tables.items())[:8]:
        print(f"  {name:<32} {pages / days * 90 / 1e9:.2f} GB for 90 days")


if __name__ == "__main__":
    main()
