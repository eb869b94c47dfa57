"""SQLite's way with the store's writes: one writer at a time, many rows per driver call.

Python's `sqlite3` runs an `executemany` in C, so rows go to it bound as Core would bind them.
It also hands the interpreter lock over for every row it fetches, and under load each handover
can wait: what a lease reads while it holds the write lock comes back as one JSON array.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import StaticPool

from storage import schema
from storage.dialects.port import (
    LEASED,
    NOTIFICATION,
    Dialect,
    Opener,
    Rows,
    Statement,
    deliveries,
    due,
)
from storage.parsing import EventRow
from storage.records import Delivery

Leased = tuple[int, int, str, int]  # a leased delivery: id, notification_id, destination, attempts
_EVENT_PAGE = 2000


class SQLite(Dialect):
    name = "sqlite"
    mark = "?"

    def create_engine(self, url: str) -> Engine:
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )
        if not memory:
            event.listen(engine, "connect", _pragmas)
        return engine

    def write_lock(self) -> AbstractContextManager[object]:
        # One writer: serialising writes here avoids "database is locked" storms.
        return threading.Lock()

    def insert(self, table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    # -- many rows: the driver's executemany, a loop in C ----------------------------------------

    def _inserting(
        self, conn: Connection, table: Table, columns: list[str], rows: Rows
    ) -> Statement:
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join(self.mark for _ in columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608 - our names
        return sql, self.values(rows, columns, self.binders(conn, table, columns))

    def _updating(
        self, conn: Connection, table: Table, key: str, columns: list[str], rows: Rows
    ) -> Statement:
        sets = ", ".join(f'"{c}" = {self.mark}' for c in columns)
        sql = f'UPDATE {table.name} SET {sets} WHERE "{key}" = {self.mark}'  # noqa: S608
        keyed = [*columns, key]
        return sql, self.values(rows, keyed, self.binders(conn, table, keyed))

    # -- the feed -------------------------------------------------------------------------------

    def add_events(self, conn: Connection, events: Sequence[EventRow]) -> list[str]:
        """Events not seen before go in, a page at a time; only those the insert returns add to
        their buckets."""
        by_id = {e.id: e for e in events}
        inserted: list[str] = []
        rows = [
            {
                "id": e.id,
                "minute": e.minute,
                "status": e.status,
                "amount": e.amount,
                "merchant_id": e.merchant_id,
            }
            for e in events
        ]
        for start in range(0, len(rows), _EVENT_PAGE):
            stmt = (
                self.insert(schema.events)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(schema.events.c.id)
            )
            result = conn.execute(stmt, rows[start : start + _EVENT_PAGE])
            inserted.extend(str(r[0]) for r in result)
        increments: dict[tuple[int, str], int] = defaultdict(int)
        for event_id in inserted:
            e = by_id[event_id]
            increments[(e.minute, e.status)] += 1
        if increments:
            add = self.insert(schema.counts)
            add = add.on_conflict_do_update(
                index_elements=["minute", "status"],
                set_={"count": schema.counts.c["count"] + add.excluded["count"]},
            )
            conn.execute(
                add,
                [{"minute": m, "status": s, "count": c} for (m, s), c in increments.items()],
            )
        return inserted

    # -- the outbox -----------------------------------------------------------------------------

    def claim_deliveries(
        self,
        write: Opener,
        read: Opener,
        now: datetime,
        term: timedelta,
        limit: int,
        destination: str | None = None,
        holder: str | None = None,
    ) -> list[Delivery]:
        """A lease in a write transaction of its own, and what the leased deliveries tell read
        after it commits (a notification never changes once written), so a storm's backlog
        holds the write lock, and the webhooks behind it, for a lease only."""
        with write() as conn:
            leased = self._lease(conn, now, term, limit, destination, holder)
        if not leased:  # nothing due (most polls): no read
            return []
        with read() as conn:
            return self._claimed(conn, leased)

    def _lease(
        self,
        conn: Connection,
        now: datetime,
        term: timedelta,
        limit: int,
        destination: str | None,
        holder: str | None,
    ) -> list[Leased]:
        """Due deliveries, oldest first, leased to the caller until now + term. The
        transaction takes the write lock first (a write that changes nothing), then one SELECT
        returns all the rows as a single JSON array and one UPDATE leases them."""
        d = schema.deliveries
        at = self.bound(conn, d, "next_at", now)
        until = self.bound(conn, d, "claimed_until", now + term)
        conn.exec_driver_sql("UPDATE deliveries SET id = id WHERE 0")
        columns = ", ".join(LEASED)
        query, where = due(columns, "?", destination)
        found = conn.exec_driver_sql(
            f"SELECT json_group_array(json_array({columns})) FROM ({query})",  # noqa: S608
            (at, at, *where, limit),
        ).scalar_one()
        rows = json.loads(found)
        if rows:
            conn.exec_driver_sql(
                "UPDATE deliveries SET claimed_until = ?, claimed_by = ? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (until, holder, json.dumps([r[0] for r in rows])),
            )
        return sorted((int(i), int(n), str(dest), int(a)) for i, n, dest, a in rows)

    def _claimed(self, conn: Connection, leased: Sequence[Leased]) -> list[Delivery]:
        """The leased deliveries with what their notifications say, as one JSON array."""
        names = ", ".join(NOTIFICATION)
        found = conn.exec_driver_sql(
            f"SELECT json_group_array(json_array({names})) FROM notifications "  # noqa: S608
            "WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list({notification_id for _, notification_id, _, _ in leased})),),
        ).scalar_one()
        notes = {int(row[0]): row[1:] for row in json.loads(found)}
        (read_body,) = self.readers(conn, schema.notifications, ["body"])
        return deliveries([(*lease, *notes[lease[1]]) for lease in leased], read_body)


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged write survives a power cut, not only a crashed process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
