"""`Dialect`: the port the store's parts call for fast writes, and what both dialects share.

`Dialect` is the port, as httpx's `BaseTransport` is: the parts call its operations, and
`SQLite` (`sqlite.py`) or `PostgreSQL` (`postgres.py`) implements what differs. What both write
alike is here: plain SQL run at the driver over our own table and column names, each value sent
through the bind processor Core would use (JSON, UTC datetimes), so what is stored is identical
to what Core stores (a test compares the two) without Core building and processing an
executemany's parameters row by row in Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

from storage.parsing import EventRow
from storage.records import Delivery

Processor = Callable[[Any], Any]
Rows = Sequence[Mapping[str, Any]]
Opener = Callable[[], AbstractContextManager[Connection]]  # one of the store's transactions
Statement = tuple[str, Any]  # plain SQL and its parameters (a tuple, or a list for executemany)
_Columns = tuple[Table, tuple[str, ...]]
# A bucket table's rows as its columns in order (keys, then the count), one sequence each.
Columns = Sequence[Sequence[Any]]

_SET, _ADD = 'excluded."{count}"', '{table}."{count}" + excluded."{count}"'  # a bucket's new count
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


class Dialect(ABC):
    """How the store's writes that carry many rows reach one kind of database. `conn` is a
    connection in one of the store's transactions; processors are worked out once per table
    and columns, for this store."""

    name: ClassVar[str]  # SQLAlchemy's name of the dialect: "sqlite" or "postgresql"
    mark: ClassVar[str]  # the driver's positional parameter mark

    def __init__(self) -> None:
        self._binders: dict[_Columns, list[Processor | None]] = {}
        self._readers: dict[_Columns, list[Processor | None]] = {}

    @abstractmethod
    def create_engine(self, url: str) -> Engine:
        """An engine for the URL, its connections set up as this dialect wants them."""

    # -- transactions ---------------------------------------------------------------------------

    def write_lock(self) -> AbstractContextManager[object]:
        """What a write transaction holds while it runs."""
        return nullcontext()

    def reader(self, engine: Engine) -> Engine:
        """The engine reads go through."""
        return engine

    @contextmanager
    def pipelined(self, conn: Connection) -> Iterator[None]:
        """Around a whole write transaction's work: its statements sent without waiting for
        each one's answer, where the dialect can; rows are then read with `fetch` only."""
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

    @abstractmethod
    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT, which takes ON CONFLICT."""

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

    def insert_rows(self, conn: Connection, table: Table, rows: Rows) -> None:
        """INSERT every row (all rows have the first row's keys)."""
        if rows:
            conn.exec_driver_sql(*self._inserting(conn, table, list(rows[0]), rows))

    @abstractmethod
    def _inserting(
        self, conn: Connection, table: Table, columns: list[str], rows: Rows
    ) -> Statement:
        """The statement that inserts the rows' `columns`."""

    def update_rows(
        self, conn: Connection, table: Table, key: str, keys: Sequence[Any], rows: Rows
    ) -> None:
        """UPDATE … SET the rows' columns WHERE `key` is each row's entry in `keys` (all rows
        have the first row's columns; the keys are distinct)."""
        if rows:
            keyed = [{**row, key: k} for row, k in zip(rows, keys, strict=True)]
            conn.exec_driver_sql(*self._updating(conn, table, key, list(rows[0]), keyed))

    @abstractmethod
    def _updating(
        self, conn: Connection, table: Table, key: str, columns: list[str], rows: Rows
    ) -> Statement:
        """The statement that sets the `columns` of the rows (each with its `key` too)."""

    def reserve_query(self, table: Table, n: int) -> Query | None:
        """The query that takes `n` new ids for rows about to be inserted, where the dialect
        reserves them; None where it numbers rows as they go in."""
        return None

    def insert_returning_ids(
        self, conn: Connection, table: Table, rows: Rows, ids: Sequence[int] | None = None
    ) -> list[int]:
        """INSERT every row into a table with an integer `id` key; the new ids, in the rows'
        order. The rows go in with `ids` (from `reserve_query`, as many as the rows) or with ids
        reserved now; where the dialect reserves none (SQLite: one writer, and a table like
        ours without AUTOINCREMENT gives each row max(id) + 1, in insertion order, with no
        other connection writing between our first write and the commit), the new rows are the
        table's last ones."""
        if not rows:
            return []
        if ids is None:
            reserve = self.reserve_query(table, len(rows))
            ids = None if reserve is None else taken(self.fetch(conn, reserve)[0])
        if ids is not None:
            self.insert_rows(
                conn, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
            )
            return list(ids)
        self.insert_rows(conn, table, rows)
        newest = conn.exec_driver_sql(
            f"SELECT id FROM {table.name} ORDER BY id DESC LIMIT {self.mark}",  # noqa: S608
            (len(rows),),
        ).scalars()
        return sorted(int(i) for i in newest)

    # -- the feed -------------------------------------------------------------------------------

    def set_buckets(self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        """(key..., count) rows set their bucket of a (key..., count) table: the count, or a
        bucket's columns, last. The rows name each bucket once, as one statement must."""
        self._upsert_rows(conn, table, rows, _SET)

    def set_columns(self, conn: Connection, table: Table, columns: Columns) -> None:
        """`set_buckets` of the rows these columns hold (the table's columns in order, one
        sequence each, no row made a tuple)."""
        self._upsert_columns(conn, table, columns, _SET)

    def add_columns(self, conn: Connection, table: Table, columns: Columns) -> None:
        """The rows these columns hold add their count to their bucket (a new bucket starts at
        0); as `set_columns`, one bucket once."""
        self._upsert_columns(conn, table, columns, _ADD)

    def _upsert_rows(
        self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]], new: str
    ) -> None:
        self._upsert_flat(conn, table, list(chain.from_iterable(rows)), new)

    def _upsert_columns(self, conn: Connection, table: Table, columns: Columns, new: str) -> None:
        width = len(table.columns)
        # The parameters of all the rows in one list, filled a column at a time (in C).
        flat: list[Any] = [None] * (width * len(columns[0]) if columns else 0)
        for at, column in enumerate(columns):
            flat[at::width] = column
        self._upsert_flat(conn, table, flat, new)

    def _upsert_flat(self, conn: Connection, table: Table, flat: list[Any], new: str) -> None:
        """The rows whose values `flat` holds one after the other: one multi-row `INSERT …
        VALUES (…), (…) ON CONFLICT … DO UPDATE` of VALUES_ROWS rows is parsed and run once,
        where an executemany binds and steps it once a row."""
        *keys, count = (c.name for c in table.columns)
        width = len(keys) + 1
        marks = f"({', '.join([self.mark] * width)})"
        names = ", ".join(keys)
        assign = new.format(table=table.name, count=count)
        statements: dict[int, str] = {}
        step = VALUES_ROWS * width
        for at in range(0, len(flat), step):
            part = tuple(flat[at : at + step])
            n = len(part) // width
            sql = statements.get(n)
            if sql is None:
                sql = statements[n] = (
                    f'INSERT INTO {table.name} ({names}, "{count}") '  # noqa: S608
                    f"VALUES {', '.join([marks] * n)} ON CONFLICT ({names}) "
                    f'DO UPDATE SET "{count}" = {assign}'
                )
            conn.exec_driver_sql(sql, part)

    def lock_slices(self, conn: Connection) -> None:
        """Hold, until the transaction ends, the right to change slices: a combo's count is
        read, compared and written, and two writers of one combo must not both compare with
        its old count. A no-op where writes are one at a time already."""
        return

    @abstractmethod
    def add_events(self, conn: Connection, events: Sequence[EventRow]) -> list[str]:
        """Events whose id is new go in and add to their (minute, status) buckets; their ids."""

    # -- the outbox -----------------------------------------------------------------------------

    @abstractmethod
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
        """Due deliveries (of one destination, or all), oldest first, up to `limit`, leased to
        the caller (`holder`) until now + term so that no other worker or replica takes them
        meanwhile; in the transactions it opens with `write` (pipelined) and `read`."""


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
_DUE = (
    "SELECT {columns} FROM deliveries WHERE status = 'pending' AND next_at <= {m} "
    "AND (claimed_until IS NULL OR claimed_until < {m}){where} ORDER BY id LIMIT {m}"
)


def due(columns: str, mark: str, destination: str | None) -> tuple[str, tuple[Any, ...]]:
    """The due-deliveries query (all, or one destination's) and the destination parameter, to
    go between its time parameters and its limit."""
    if destination is None:
        return _DUE.format(columns=columns, m=mark, where=""), ()
    return _DUE.format(columns=columns, m=mark, where=f" AND destination = {mark}"), (destination,)


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
