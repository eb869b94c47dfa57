"""PostgreSQL's way with the store's writes: few round trips, rows as one parameter, COPY.

Under psycopg, every statement is a round trip and every value of an `executemany` is bound in
Python. So a transaction that carries many rows goes as one pipeline (its answers read together
at the end), each statement carries its rows as one JSON parameter that the server unpacks
(`json_populate_recordset`), ids for new rows are reserved up front so their inserts need not be
read, feed events are `COPY`ed, and reads run outside a transaction. Replicas share the
database: leases use `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import JSON, Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, DisconnectionError

from storage import schema
from storage.dialects.port import (
    LEASED,
    NOTIFICATION,
    Columns,
    Dialect,
    Opener,
    Query,
    Rows,
    Statement,
    deliveries,
    due,
)
from storage.parsing import EventRow
from storage.records import Delivery

IDLE_PING = 1.0  # seconds a pooled connection may rest before it is pinged at checkout


class PostgreSQL(Dialect):
    name = "postgresql"
    mark = "%s"

    def create_engine(self, url: str) -> Engine:
        engine = create_engine(url, pool_size=10, max_overflow=10)
        _ping_when_idle(engine)
        return engine

    def reader(self, engine: Engine) -> Engine:
        """Reads need no transaction: at READ COMMITTED each statement sees its own snapshot
        inside one anyway, and without one psycopg sends no BEGIN, nor the pool a ROLLBACK."""
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def pipelined(self, conn: Connection) -> Iterator[None]:
        """The transaction inside is one psycopg pipeline (a no-op on another driver).

        Statements are sent as they are made and their answers read together when the pipeline
        closes with a Sync; a query's rows (`fetch`) are read at once, along with everything sent
        before them. Everything up to the Sync is one implicit transaction, by the protocol: it
        commits at the Sync, or if any statement fails nothing of it is kept. psycopg would send
        its own BEGIN and wait for it, then COMMIT: the driver connection is in autocommit for
        the block instead. Use it around the whole of a `Connection.begin()` block's work, with
        no Core statement that returns rows inside (use `fetch`).
        """
        driver = _psycopg(conn)
        if driver is None:
            yield
            return
        dbapi_error = conn.dialect.loaded_dbapi.Error
        driver.autocommit = True
        try:
            with driver.pipeline():
                yield
        except dbapi_error as error:
            # A statement's error surfaces when the pipeline syncs, outside SQLAlchemy: raised as
            # the DBAPIError SQLAlchemy would have raised (and the store handles).
            raise DBAPIError.instance(None, None, error, dbapi_error) from error
        finally:
            driver.autocommit = False  # never back to the pool committing statement by statement

    def insert(self, table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def fetch(self, conn: Connection, *queries: Query) -> list[list[tuple[Any, ...]]]:
        """Inside `pipelined` the queries go through the driver's own cursors (SQLAlchemy's
        result needs a row description the pipeline has not read yet) and are all sent before
        any is read: they, and whatever was sent before them, are answered together."""
        driver = _psycopg(conn)
        if driver is None or not driver.pgconn.pipeline_status:
            return super().fetch(conn, *queries)
        cursors = [driver.cursor() for _ in queries]
        try:
            for cursor, query in zip(cursors, queries, strict=True):
                cursor.execute(query.sql, query.params)
            return [list(cursor.fetchall()) for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """One array parameter: the statement's text stays short, and psycopg converts it once
        and caches it, where a list of marks is parsed again in Python each time."""
        return f'"{column}" = ANY(%s)', (list(values),)

    # -- many rows: one JSON parameter each statement, unpacked by the server ---------------------

    def _inserting(
        self, conn: Connection, table: Table, columns: list[str], rows: Rows
    ) -> Statement:
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_recordset(table)}"  # noqa: S608
        return sql, (self._as_json(conn, table, columns, rows),)

    def _updating(
        self, conn: Connection, table: Table, key: str, columns: list[str], rows: Rows
    ) -> Statement:
        sets = ", ".join(f'"{c}" = v."{c}"' for c in columns)
        sql = (
            f"UPDATE {table.name} AS t SET {sets} "  # noqa: S608 - our names
            f'FROM {_recordset(table)} AS v WHERE t."{key}" = v."{key}"'
        )
        return sql, (self._as_json(conn, table, [*columns, key], rows),)

    def _as_json(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Mapping[str, Any]],
    ) -> str:
        """The rows as one JSON array of objects, each value as Core would bind it (a JSON
        column's value as itself)."""
        binders = [
            None if isinstance(table.c[c].type, JSON) else b
            for c, b in zip(columns, self.binders(conn, table, columns), strict=True)
        ]
        values = self.values(rows, columns, binders)
        return _json([dict(zip(columns, v, strict=True)) for v in values])

    def reserve_query(self, table: Table, n: int) -> Query:
        """`n` new ids from the sequence of the table's integer `id`, for rows about to be
        inserted: their inserts need not return them, and can go in a pipeline unread."""
        return Query(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table.name, n),
        )

    # -- the feed -------------------------------------------------------------------------------

    def _upsert_columns(self, conn: Connection, table: Table, columns: Columns, new: str) -> None:
        self._upsert_rows(conn, table, list(zip(*columns, strict=True)), new)

    def _upsert_rows(
        self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]], new: str
    ) -> None:
        """All the buckets in one statement, their rows one JSON parameter: psycopg binds a
        multi-row VALUES value by value in Python, six values a slice's row."""
        if not rows:
            return
        *keys, count = (str(c.name) for c in table.columns)  # plain str, not SQLAlchemy's name
        fields = [*keys, count]
        names = ", ".join(f'"{c}"' for c in fields)
        sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_recordset(table)} "  # noqa: S608
            f"ON CONFLICT ({', '.join(keys)}) "
            f'DO UPDATE SET "{count}" = {new.format(table=table.name, count=count)}'
        )
        objects = [dict(zip(fields, row, strict=True)) for row in rows]
        conn.exec_driver_sql(sql, (_json(objects),))

    def add_events(self, conn: Connection, events: Sequence[EventRow]) -> list[str]:
        """The events COPYed into a temporary table (emptied at commit), then merged in one
        statement, as race-free as an insert: a concurrent writer of the same id waits, then
        its row is skipped."""
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(_EVENTS_IN)
            with cursor.copy(_EVENTS_COPY) as copy:
                for e in events:
                    copy.write_row((e.id, e.minute, e.status, e.amount, e.merchant_id))
            cursor.execute(_EVENTS_MERGE)
            return [str(i) for (i,) in cursor.fetchall()]

    def lock_slices(self, conn: Connection) -> None:
        """A transaction-scoped advisory lock: replicas change slices one at a time."""
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_SLICES_LOCK,))

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
        """One statement leases the due deliveries and reads them with their notifications
        (`write` is pipelined, so its answer comes with the commit's): an UPDATE takes the
        lease, the due rows locked with SKIP LOCKED so two replicas never take the same one,
        and returns the rows joined with their notifications. A body comes as text, decoded
        only if it is read (a storm's deliveries merged into a digest never are)."""
        with write() as conn:
            d = schema.deliveries
            at = self.bound(conn, d, "next_at", now)
            until = self.bound(conn, d, "claimed_until", now + term)
            notes = ", ".join(f"n.{c}" for c in NOTIFICATION[1:-1])
            query, where = due("id", "%s", destination)
            returned = ", ".join(LEASED)
            sql = (
                "WITH leased AS (UPDATE deliveries SET claimed_until = %s, claimed_by = %s "  # noqa: S608
                f"WHERE id IN ({query} FOR UPDATE SKIP LOCKED) RETURNING {returned}) "
                f"SELECT {', '.join(f'l.{c}' for c in LEASED)}, {notes}, n.body::text "
                "FROM leased AS l JOIN notifications AS n ON n.id = l.notification_id ORDER BY l.id"
            )
            (rows,) = self.fetch(conn, Query(sql, (until, holder, at, at, *where, limit)))
        return deliveries(rows, json.loads)


_ENCODER = msgspec.json.Encoder()


def _json(objects: Sequence[Mapping[str, Any]]) -> str:
    return _ENCODER.encode(objects).decode()


def _psycopg(conn: Connection) -> Any:
    """The psycopg connection under `conn`, or None on another driver."""
    driver = conn.connection.driver_connection
    return driver if getattr(driver, "pgconn", None) is not None else None


def _recordset(table: Table) -> str:
    """The rows of an `_as_json` parameter, typed as the table's columns."""
    return f"json_populate_recordset(NULL::{table.name}, %s::json)"


_EVENTS_IN = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS nightshift_events_in (id varchar(128), minute bigint, "
    "status varchar(32), amount double precision, merchant_id varchar(128)) ON COMMIT DELETE ROWS"
)
_EVENTS_COPY = "COPY nightshift_events_in (id, minute, status, amount, merchant_id) FROM STDIN"
# New events go in; those that went in (ON CONFLICT skips the known ids) add to their buckets.
_EVENTS_MERGE = """
WITH new AS (
    INSERT INTO events (id, minute, status, amount, merchant_id)
    SELECT id, minute, status, amount, merchant_id FROM nightshift_events_in
    ON CONFLICT (id) DO NOTHING
    RETURNING id, minute, status
), added AS (
    INSERT INTO counts (minute, status, "count")
    SELECT minute, status, count(*) FROM new GROUP BY minute, status
    ON CONFLICT (minute, status) DO UPDATE SET "count" = counts."count" + excluded."count"
)
SELECT id FROM new
"""
_SLICES_LOCK = 0x736C6963  # "slic": the advisory lock key held while slices change


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has rested IDLE_PING seconds or more.

    A connection used within the last second is all but surely alive, and a ping at every
    checkout (`pool_pre_ping`) is a round trip per transaction. If it is not alive (the server
    restarted in that second), the statement fails, SQLAlchemy sees the disconnect and empties
    the pool, and the caller gets a StorageError once (a group of webhooks is then retried one
    by one, on a new connection).
    """

    def rested(_dbapi: Any, record: Any, *_: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("rested_since")
        if since is not None and time.monotonic() - since < IDLE_PING:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error
        if not alive:
            raise DisconnectionError("the connection did not answer a ping")

    event.listen(engine, "connect", rested)
    event.listen(engine, "checkin", rested)
    event.listen(engine, "checkout", checkout)
