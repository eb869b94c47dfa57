"""The incidents' inbox: alert and finding changes waiting for the correlator.

A change is written here in the transaction that stores it (a webhook's alerts, a detector
episode); the correlator takes the rows in order and deletes them in the transaction that joins
them to incidents, so none is lost or joined twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from storage import schema


def inbox_rows(
    kind: str, changes: Iterable[tuple[str, str]], now: datetime
) -> list[dict[str, Any]]:
    """Inbox rows for changes (key, status) of alerts or findings, stored with the change."""
    return [{"kind": kind, "key": key, "status": status, "at": now} for key, status in changes]


def pending(conn: Connection) -> int:
    """How many changes wait."""
    return int(conn.execute(select(func.count()).select_from(schema.incident_inbox)).scalar_one())
