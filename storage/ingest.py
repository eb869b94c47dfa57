"""Feed batches into the minute buckets (counts, authorization codes, events), and retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete

from storage import schema
from storage.database import Database
from storage.parsing import FeedBatch
from storage.records import IngestResult

_CHUNK = 2000  # rows between two progress reports


class Ingest(Database):
    def ingest(
        self, batch: FeedBatch, progress: Callable[[int], object] | None = None
    ) -> IngestResult:
        """Store a validated batch in one transaction: counts set, events counted once by id."""
        new_events = 0
        with self._write() as conn:
            for table, rows in (
                (schema.counts, batch.count_tuples() if batch.counts else []),
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
        return IngestResult(accepted=len(batch), new_events=new_events)

    def delete_counts_before(self, before: datetime) -> int:
        """Retention: drop minute buckets, codes and events older than `before`."""
        cut = int(before.timestamp())
        deleted = 0
        with self._write() as conn:
            for table in (schema.counts, schema.auth_codes, schema.events):
                deleted += conn.execute(delete(table).where(table.c.minute < cut)).rowcount or 0
        return deleted
