"""The journal: incidents opened and closed by hand, and the audit trail of who did what."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import RowMapping, and_, insert, select, update

from storage import schema
from storage.database import Database
from storage.records import AuditEntry, IncidentRecord


class Journal(Database):
    # -- incidents ----------------------------------------------------------------------------

    def open_incident(self, title: str, who: str, now: datetime) -> IncidentRecord:
        i = schema.incidents
        with self._write() as conn:
            new_id = conn.execute(
                insert(i).values(title=title, opened_by=who, opened_at=now).returning(i.c.id)
            ).scalar_one()
        return IncidentRecord(id=int(new_id), title=title, opened_by=who, opened_at=now)

    def close_incident(self, incident_id: int, who: str, now: datetime) -> IncidentRecord | None:
        i = schema.incidents
        with self._write() as conn:
            conn.execute(
                update(i)
                .where(and_(i.c.id == incident_id, i.c.closed_at.is_(None)))
                .values(closed_by=who, closed_at=now)
            )
            row = conn.execute(select(i).where(i.c.id == incident_id)).first()
        return None if row is None else _incident(row._mapping)

    def incidents(self, *, open_only: bool = False, limit: int = 20) -> list[IncidentRecord]:
        i = schema.incidents
        query = select(i).order_by(i.c.opened_at.desc(), i.c.id.desc()).limit(limit)
        if open_only:
            query = query.where(i.c.closed_at.is_(None))
        with self._read() as conn:
            return [_incident(row._mapping) for row in conn.execute(query)]

    # -- audit --------------------------------------------------------------------------------

    def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], outcome: str, at: datetime
    ) -> None:
        """One line of the audit trail: who did what, with which parameters, and how it ended."""
        with self._write() as conn:
            conn.execute(
                insert(schema.audit).values(
                    at=at, actor=actor, action=action, detail=dict(detail), outcome=outcome
                )
            )

    def audit_entries(self, action_prefix: str | None = None, limit: int = 20) -> list[AuditEntry]:
        t = schema.audit
        query = select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        if action_prefix:
            query = query.where(t.c.action.startswith(action_prefix, autoescape=True))
        with self._read() as conn:
            return [
                AuditEntry(
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    detail=dict(row.detail or {}),
                    outcome=row.outcome,
                )
                for row in conn.execute(query)
            ]


def _incident(row: RowMapping) -> IncidentRecord:
    return IncidentRecord(
        id=int(row["id"]),
        title=row["title"],
        opened_by=row["opened_by"],
        opened_at=row["opened_at"],
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
    )
