"""What both dialects share: plain SQL run at the driver, each value bound as Core would bind it.

SQLAlchemy Core builds and processes an executemany's parameters row by row in Python; for the
statements that carry many rows (a webhook group's alerts, the outbox, a feed batch) that was
most of their cost. The dialects write those statements as plain SQL over our own table and
column names instead, and send each value through the bind processor Core would use (JSON, UTC
datetimes), so what is stored is identical (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.types import TypeEngine

from storage.records import Delivery

Processor = Callable[[Any], Any]
_Columns = tuple[Table, tuple[str, ...]]

# Rows of one multi-row statement: 250 rows of 3 values are 750 parameters, under every limit.
VALUES_ROWS = 250
IN_LIST = 2000  # values of one IN (...) list, under SQLite's limit on parameters


@dataclass(frozen=True, slots=True)
class Query:
    """A query in plain SQL, with the driver's parameter marks, and its parameters."""

    sql: str
    params: tuple[Any, ...]


def taken(rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """The ids of a `reserve_query`'s rows."""
    return [int(i) for (i,) in rows]


class DriverSQL:
    """The driver-level statements both dialects write alike, and the processors they bind with
    (worked out once per table and columns, for this store)."""

    name: ClassVar[str]
    mark: ClassVar[str]  # the driver's positional parameter mark

    def __init__(self) -> None:
        self._binders: dict[_Columns, list[Processor | None]] = {}
        self._readers: dict[_Columns, list[Processor | None]] = {}

    # -- transactions: SQLite's and PostgreSQL's own ways override these ----------------------

    def write_lock(self) -> AbstractContextManager[object]:
        return nullcontext()

    def reader(self, engine: Engine) -> Engine:
        return engine

    @contextmanager
    def pipelined(self, conn: Connection) -> Iterator[None]:
        yield

    # -- values as Core binds and reads them --------------------------------------------------

    def binders(
        self, conn: Connection, table: Table, columns: Sequence[str]
    ) -> list[Processor | None]:
        """Each column's bind processor (None: the value goes as it is)."""
        return self._processors(
            self._binders, conn, table, columns, lambda t: t.bind_processor(conn.dialect)
        )

    def readers(
        self, conn: Connection, table: Table, columns: Sequence[str]
    ) -> list[Processor | None]:
        """Each column's result processor (None: the driver's value is already right)."""
        return self._processors(
            self._readers, conn, table, columns, lambda t: t.result_processor(conn.dialect, None)
        )

    @staticmethod
    def _processors(
        cache: dict[_Columns, list[Processor | None]],
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        make: Callable[[TypeEngine[Any]], Processor | None],
    ) -> list[Processor | None]:
        key = (table, tuple(columns))
        found = cache.get(key)
        if found is None:
            found = cache[key] = [make(table.c[c].type.dialect_impl(conn.dialect)) for c in columns]
        return found

    def bound(self, conn: Connection, table: Table, column: str, value: Any) -> Any:
        """One value as Core would send it for `column`."""
        (bind,) = self.binders(conn, table, (column,))
        return value if bind is None or value is None else bind(value)

    @staticmethod
    def values(
        rows: Iterable[Mapping[str, Any]],
        columns: Sequence[str],
        binders: Sequence[Processor | None],
    ) -> list[tuple[Any, ...]]:
        """The rows' values, column by column, bound."""
        pairs = [
            (c, None if b is None else _memo(b)) for c, b in zip(columns, binders, strict=True)
        ]
        return [tuple(row[c] if b is None else b(row[c]) for c, b in pairs) for row in rows]

    # -- statements -----------------------------------------------------------------------------

    def fetch(self, conn: Connection, *queries: Query) -> list[list[tuple[Any, ...]]]:
        """Each query's rows, as the driver gives them."""
        return [[tuple(row) for row in conn.exec_driver_sql(q.sql, q.params)] for q in queries]

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """`column` is one of `values` (at most IN_LIST): the SQL condition, its parameters."""
        return f'"{column}" IN ({", ".join(self.mark for _ in values)})', tuple(values)

    def select_in(
        self, table: Table, columns: Sequence[str], key: str, wanted: Sequence[Any]
    ) -> list[Query]:
        """The queries for the `columns` of the rows whose `key` is one of `wanted`, IN_LIST
        keys each (for `fetch`)."""
        names = ", ".join(f'"{c}"' for c in columns)
        queries = []
        for start in range(0, len(wanted), IN_LIST):
            where, params = self.one_of(key, wanted[start : start + IN_LIST])
            queries.append(Query(f"SELECT {names} FROM {table.name} WHERE {where}", params))  # noqa: S608
        return queries

    def reserve_query(self, table: Table, n: int) -> Query | None:
        """The query that takes `n` new ids for rows about to be inserted, where the dialect
        reserves them (see `insert_returning_ids`); None where it numbers rows as they go in."""
        return None

    def set_buckets(
        self, conn: Connection, table: Table, rows: Sequence[tuple[int, str, int]]
    ) -> None:
        """(minute, key, count) rows set their bucket of a (minute, key, count) table. One
        multi-row `INSERT … VALUES (…), (…) ON CONFLICT … DO UPDATE` of VALUES_ROWS rows is
        parsed and run once, where an executemany binds and steps it once a row. The rows
        name each bucket once, as one statement must."""
        minute, key, count = (c.name for c in table.columns)
        statements: dict[int, str] = {}
        for at in range(0, len(rows), VALUES_ROWS):
            part = rows[at : at + VALUES_ROWS]
            sql = statements.get(len(part))
            if sql is None:
                values = ", ".join([f"({self.mark}, {self.mark}, {self.mark})"] * len(part))
                sql = statements[len(part)] = (
                    f'INSERT INTO {table.name} ({minute}, {key}, "{count}") '  # noqa: S608
                    f"VALUES {values} ON CONFLICT ({minute}, {key}) "
                    f'DO UPDATE SET "{count}" = excluded."{count}"'
                )
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(part)))


def _memo(bind: Processor) -> Processor:
    """`bind` remembering its answers: a batch binds the same few datetimes over and over
    (each webhook's arrival time is in every row it writes)."""
    seen: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        if type(value) is not datetime:
            return bind(value)
        done = seen.get(value)
        if done is None:
            done = seen[value] = bind(value)
        return done

    return process


# -- the outbox's due deliveries, as both dialects lease them -----------------------------------

NOTIFICATION = ("id", "subject_kind", "subject", "event", "severity", "body")
LEASED = ("id", "notification_id", "destination", "attempts")
DUE = (
    "SELECT {columns} FROM deliveries WHERE status = 'pending' AND next_at <= {m} "
    "AND (claimed_until IS NULL OR claimed_until < {m}) ORDER BY id LIMIT {m}"
)


def deliveries(
    rows: Iterable[Sequence[Any]], read_body: Callable[[Any], Any] | None
) -> list[Delivery]:
    """Deliveries from rows of the LEASED columns, then the notification's (but its id)."""
    return [
        Delivery(
            id=int(delivery_id),
            notification_id=int(notification_id),
            destination=str(destination),
            attempts=int(attempts),
            subject_kind=str(kind),
            subject=str(subject),
            event=str(event),
            severity=str(severity),
            stored_body=body,
            read_body=read_body,
        )
        for (
            delivery_id,
            notification_id,
            destination,
            attempts,
            kind,
            subject,
            event,
            severity,
            body,
        ) in rows
    ]
