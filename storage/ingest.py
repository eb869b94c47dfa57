"""Feed batches into the minute buckets (counts, auth codes, events, slices), and retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete

from storage import schema
from storage.database import Database
from storage.parsing import FeedBatch
from storage.records import IngestResult
from storage.slices import store_slices

_CHUNK = 2000  # rows between two progress reports


SLICE_TOP = 20  # slice values kept per dimension (NIGHTSHIFT_SLICE_TOP), the rest `other`


class Ingest(Database):
    def ingest(
        self,
        batch: FeedBatch,
        progress: Callable[[int], object] | None = None,
        *,
        slice_top: int = SLICE_TOP,
    ) -> IngestResult:
        """Store a validated batch in one transaction: counts set, events counted once by id;
        dimensioned rows set their combos, which add to totals and slices (`storage/slices.py`),
        at most `slice_top` slice values per dimension."""
        new_events: list[str] = []
        with self._write() as conn:
            plain = batch.counts and not batch.slices  # else the combos' differences make them
            for table, rows in (
                (schema.counts, batch.count_tuples() if plain else []),
                (schema.auth_codes, batch.auth_code_tuples() if batch.auth_codes else []),
            ):
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    self._dialect.set_buckets(conn, table, chunk)
                    if progress is not None:
                        progress(len(chunk))
            if batch.events:
                new_events = self._dialect.add_events(conn, batch.events)
                if progress is not None:
                    progress(len(batch.events))
            store_slices(conn, self._dialect, batch, new_events, slice_top)
            if progress is not None and batch.slices:
                progress(len(batch.slices))
        return IngestResult(accepted=len(batch), new_events=len(new_events))

    def delete_counts_before(self, before: datetime) -> int:
        """Retention: drop minute buckets, codes, events, combos' and slices' counts older than
        `before` (slice values and combos stay: they are few, and fix what a value means)."""
        cut = int(before.timestamp())
        deleted = 0
        with self._write() as conn:
            for table in (
                schema.counts,
                schema.auth_codes,
                schema.events,
                schema.combo_counts,
                schema.slice_counts,
            ):
                deleted += conn.execute(delete(table).where(table.c.minute < cut)).rowcount or 0
        return deleted
