"""The journal: the audit trail of who did what, with which parameters, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import insert, select

from storage import schema
from storage.database import Database
from storage.records import AuditEntry


class Journal(Database):
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
