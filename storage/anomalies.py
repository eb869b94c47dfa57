"""Detector findings: episodes stored by key, their notifications queued with them, read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, or_, select

from storage import outbox, schema
from storage.database import Database
from storage.records import AnomalyRecord


class Anomalies(Database):
    def save_anomaly(self, record: AnomalyRecord, notify: Sequence[str] = ()) -> None:
        """Insert or update a detector episode by its key.

        `notify` are the destinations told of critical episodes, in the same transaction: once
        when an episode first is critical (new, or escalated from warning), once when it
        resolves. Updates in between are stored, not pushed.
        """
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
        }
        n = schema.anomalies
        with self._write() as conn:
            before = conn.execute(
                select(n.c.severity, n.c.resolved).where(n.c.key == record.key)
            ).first()
            stmt = self._dialect.insert(n).values(key=record.key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=values))
            was_critical = before is not None and before.severity == "critical"
            was_open = before is not None and not before.resolved
            if record.resolved:
                event = "resolved" if was_critical and was_open else None
            else:
                event = "opened" if record.severity == "critical" and not was_critical else None
            if event is not None:
                outbox.enqueue(
                    conn,
                    self._dialect,
                    outbox.Notice(
                        subject_kind="finding",
                        subject=record.key,
                        event=event,
                        severity=record.severity,
                        destinations=notify,
                        now=record.updated_at,
                    ),
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
            return [_anomaly(row._mapping) for row in conn.execute(query)]

    def open_anomalies(self) -> list[AnomalyRecord]:
        n = schema.anomalies
        query = select(n).where(n.c.resolved.is_(False)).order_by(n.c.start.desc())
        with self._read() as conn:
            return [_anomaly(row._mapping) for row in conn.execute(query)]

    def anomaly(self, key: str) -> AnomalyRecord | None:
        n = schema.anomalies
        with self._read() as conn:
            row = conn.execute(select(n).where(n.c.key == key)).first()
        return None if row is None else _anomaly(row._mapping)


def _anomaly(row: RowMapping) -> AnomalyRecord:
    return AnomalyRecord(
        key=row["key"],
        kind=row["kind"],
        metric=row["metric"],
        statuses=tuple(row["statuses"] or ()),
        start=row["start"],
        end=row["end"],
        detected_at=row["detected_at"],
        updated_at=row["updated_at"],
        severity=row["severity"],
        score=float(row["score"]),
        expected=float(row["expected"]),
        observed=float(row["observed"]),
        explanation_pt=row["explanation_pt"],
        explanation_en=row["explanation_en"],
        resolved=bool(row["resolved"]),
    )
