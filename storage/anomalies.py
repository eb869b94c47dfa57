"""Detector findings: episodes stored by key (each change queued for the incidents), read back."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import insert, or_, select

from storage import schema
from storage.database import Database
from storage.inbox import inbox_rows
from storage.records import AnomalyRecord, anomaly_from_row


class Anomalies(Database):
    def save_anomaly(self, record: AnomalyRecord) -> None:
        """Insert or update a detector episode by its key; the change goes to the incidents'
        inbox in the same transaction (the correlator joins it to the feed's incident)."""
        values = {
            "kind": record.kind,
            "metric": record.metric,
            "statuses": list(record.statuses),
            "start": record.start,
            "end": record.end,
            "detected_at": record.detected_at,
            "updated_at": record.updated_at,
            "severity": record.severity,
            "score": record.score,
            "expected": record.expected,
            "observed": record.observed,
            "explanation_pt": record.explanation_pt,
            "explanation_en": record.explanation_en,
            "resolved": record.resolved,
            "approvals_lost": record.approvals_lost,
            "slice": None
            if record.slice is None
            else json.dumps(dict(sorted(record.slice.items()))),
        }
        n = schema.anomalies
        status = "resolved" if record.resolved else "firing"
        with self._write() as conn:
            stmt = self._dialect.insert(n).values(key=record.key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=values))
            conn.execute(
                insert(schema.incident_inbox),
                inbox_rows("finding", [(record.key, status)], record.updated_at),
            )

    def anomalies(
        self, start: datetime, end: datetime, *, open_only: bool = False
    ) -> list[AnomalyRecord]:
        """Episodes overlapping [start, end), newest first."""
        n = schema.anomalies
        query = (
            select(n)
            .where(n.c.start < end, or_(n.c.end.is_(None), n.c.end >= start))
            .order_by(n.c.start.desc())
            .limit(500)
        )
        if open_only:
            query = query.where(n.c.resolved.is_(False))
        with self._read() as conn:
            return [anomaly_from_row(row._mapping) for row in conn.execute(query)]

    def open_anomalies(self) -> list[AnomalyRecord]:
        n = schema.anomalies
        query = select(n).where(n.c.resolved.is_(False)).order_by(n.c.start.desc())
        with self._read() as conn:
            return [anomaly_from_row(row._mapping) for row in conn.execute(query)]

    def anomaly(self, key: str) -> AnomalyRecord | None:
        n = schema.anomalies
        with self._read() as conn:
            row = conn.execute(select(n).where(n.c.key == key)).first()
        return None if row is None else anomaly_from_row(row._mapping)
