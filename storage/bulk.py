"""Many rows in one driver-level statement, each value bound by its column's type.

SQLAlchemy Core's executemany builds and processes parameters row by row in Python; for the
write paths that carry many rows (alert webhooks, the outbox) that was most of their cost. Here
the statement is plain SQL over our own table and column names, and each value goes through the
same bind processor SQLAlchemy would use (JSON, UTC datetimes), so what is stored is identical.
On SQLite the rows go to the driver's `executemany` (a loop in C); on PostgreSQL as one JSON
parameter that the server unpacks (`json_populate_recordset`), since psycopg binds every value
of an `executemany` in Python. `pipelined` and `fetch` make a PostgreSQL transaction a round
trip per read plus one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Dialect, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

_Processor = Callable[[Any], Any]
_Key = tuple[Dialect, Table, tuple[str, ...]]
_BINDERS: dict[_Key, list[_Processor | None]] = {}
_READERS: dict[_Key, list[_Processor | None]] = {}


def _processors(
    cache: dict[_Key, list[_Processor | None]],
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    make: Callable[[TypeEngine[Any], Dialect], _Processor | None],
) -> list[_Processor | None]:
    dialect = conn.dialect
    key = (dialect, table, tuple(columns))
    found = cache.get(key)
    if found is None:
        found = cache[key] = [make(table.c[c].type.dialect_impl(dialect), dialect) for c in columns]
    return found


def _binders(conn: Connection, table: Table, columns: Sequence[str]) -> list[_Processor | None]:
    """Each column's bind processor (None: the value goes as it is), worked out once."""
    return _processors(_BINDERS, conn, table, columns, lambda t, d: t.bind_processor(d))


def bound(conn: Connection, table: Table, column: str, value: Any) -> Any:
    """One value as Core would send it for `column`."""
    (bind,) = _binders(conn, table, (column,))
    return value if bind is None or value is None else bind(value)


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """PostgreSQL: the transaction inside is one psycopg pipeline, a no-op elsewhere.

    Statements are sent as they are made and their answers read together when the pipeline
    closes with a Sync; a query's rows (`fetch`) are read at once, along with everything sent
    before them. Everything up to the Sync is one implicit transaction, by the protocol: it
    commits at the Sync, or if any statement fails nothing of it is kept. psycopg would send
    its own BEGIN and wait for it (one more round trip) and then COMMIT (another): the driver
    connection is in autocommit for the block, so the whole transaction takes a round trip
    per read, plus one. Use it around the whole of a `Connection.begin()` block's work, with
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


def _psycopg(conn: Connection) -> Any:
    """The psycopg connection under `conn`, or None on another driver."""
    driver = conn.connection.driver_connection
    return driver if getattr(driver, "pgconn", None) is not None else None


@dataclass(frozen=True, slots=True)
class Query:
    """A query in plain SQL, with the driver's parameter marks, and its parameters."""

    sql: str
    params: tuple[Any, ...]


def fetch(conn: Connection, *queries: Query) -> list[list[tuple[Any, ...]]]:
    """Each query's rows, as the driver gives them. Inside `pipelined` the queries go through
    the driver's own cursors (SQLAlchemy's result needs a row description the pipeline has not
    read yet) and are all sent before any is read: one round trip for all of them, and for
    whatever was sent before."""
    driver = _psycopg(conn)
    if driver is None or not driver.pgconn.pipeline_status:
        return [[tuple(row) for row in conn.exec_driver_sql(q.sql, q.params)] for q in queries]
    cursors = [driver.cursor() for _ in queries]
    try:
        for cursor, query in zip(cursors, queries, strict=True):
            cursor.execute(query.sql, query.params)
        return [list(cursor.fetchall()) for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def placeholder(conn: Connection) -> str:
    """The driver's positional parameter mark."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def readers(conn: Connection, table: Table, columns: Sequence[str]) -> list[_Processor | None]:
    """Each column's result processor (None: the driver's value is already right), as Core
    would apply to a row it reads; worked out once."""
    return _processors(_READERS, conn, table, columns, lambda t, d: t.result_processor(d, None))


def one_of(conn: Connection, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """`column` is one of `values`: the SQL condition and its parameters. On PostgreSQL one
    array parameter (`= ANY(%s)`), so the statement's text stays short and psycopg converts
    it once and caches it (a statement with 2,000 marks was re-parsed in Python each time: half
    the CPU of a storm's delivery pass). Elsewhere an IN list (at most 2,000 values a
    statement, under SQLite's limit on parameters)."""
    if conn.dialect.name == "postgresql":
        return f'"{column}" = ANY(%s)', (list(values),)
    return f'"{column}" IN ({", ".join("?" for _ in values)})', tuple(values)


def _memo(bind: _Processor) -> _Processor:
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


def _values(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    binders: Sequence[_Processor | None],
) -> list[tuple[Any, ...]]:
    pairs = [(c, None if b is None else _memo(b)) for c, b in zip(columns, binders, strict=True)]
    return [tuple(row[c] if b is None else b(row[c]) for c, b in pairs) for row in rows]


def _as_json(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> str:
    """PostgreSQL: the rows as one JSON array of objects, each value as Core would bind it
    (a JSON column's value as itself)."""
    binders = [
        None if isinstance(table.c[c].type, JSON) else b
        for c, b in zip(columns, _binders(conn, table, columns), strict=True)
    ]
    values = _values(rows, columns, binders)
    return orjson.dumps([dict(zip(columns, v, strict=True)) for v in values]).decode()


def _recordset(table: Table) -> str:
    """PostgreSQL: the rows of an `_as_json` parameter, typed as the table's columns."""
    return f"json_populate_recordset(NULL::{table.name}, %s::json)"


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT every row (all rows have the first row's keys)."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_recordset(table)}"  # noqa: S608
        conn.exec_driver_sql(sql, (_as_json(conn, table, columns, rows),))
        return
    marks = ", ".join(placeholder(conn) for _ in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608 - our names
    conn.exec_driver_sql(sql, _values(rows, columns, _binders(conn, table, columns)))


def reserve_query(conn: Connection, table: Table, n: int) -> Query | None:
    """PostgreSQL: the query that takes `n` new ids from the sequence of the table's integer
    `id`, for rows about to be inserted (so that the inserts need not return them, and can go
    in a pipeline unread). None elsewhere: SQLite numbers rows as they go in (see
    `insert_returning_ids`)."""
    if conn.dialect.name != "postgresql":
        return None
    return Query(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table.name, n),
    )


def reserve_ids(conn: Connection, table: Table, n: int) -> list[int] | None:
    """`n` ids from `reserve_query` (one round trip), or None."""
    query = reserve_query(conn, table, n)
    if query is None:
        return None
    return taken(fetch(conn, query)[0]) if n else []


def taken(rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """The ids of a `reserve_query`'s rows."""
    return [int(i) for (i,) in rows]


def insert_returning_ids(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[int] | None = None,
) -> list[int]:
    """INSERT every row into a table with an integer `id` key; the new ids, in the rows' order.

    With `ids` (from `reserve_ids`), the rows go in with those. Otherwise PostgreSQL reserves
    them first, and SQLite gives a table like ours (no AUTOINCREMENT) max(id) + 1 per row, in
    insertion order, while no other connection can write between our first write and the
    commit: the new rows are the table's last ones.
    """
    if not rows:
        return []
    if ids is None:
        ids = reserve_ids(conn, table, len(rows))
    if ids is not None:
        insert_rows(conn, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return list(ids)
    insert_rows(conn, table, rows)
    newest = conn.exec_driver_sql(
        f"SELECT id FROM {table.name} ORDER BY id DESC LIMIT ?",  # noqa: S608 - our names
        (len(rows),),
    ).scalars()
    return sorted(int(i) for i in newest)


def update_rows(
    conn: Connection, table: Table, key: str, keys: Sequence[Any], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE … SET the rows' columns WHERE `key` is each row's entry in `keys` (all rows have
    the first row's columns; the keys are distinct)."""
    if not rows:
        return
    columns = list(rows[0])
    if conn.dialect.name == "postgresql":
        sets = ", ".join(f'"{c}" = v."{c}"' for c in columns)
        sql = (
            f"UPDATE {table.name} AS t SET {sets} "  # noqa: S608 - our names
            f'FROM {_recordset(table)} AS v WHERE t."{key}" = v."{key}"'
        )
        listed = ({**row, key: k} for row, k in zip(rows, keys, strict=True))
        conn.exec_driver_sql(sql, (_as_json(conn, table, [*columns, key], listed),))
        return
    mark = placeholder(conn)
    sets = ", ".join(f'"{c}" = {mark}' for c in columns)
    sql = f'UPDATE {table.name} SET {sets} WHERE "{key}" = {mark}'  # noqa: S608 - our names
    binders = _binders(conn, table, [*columns, key])
    values = _values(
        ({**row, key: k} for row, k in zip(rows, keys, strict=True)), [*columns, key], binders
    )
    conn.exec_driver_sql(sql, values)


def select_in_queries(
    conn: Connection, table: Table, columns: Sequence[str], key: str, wanted: Sequence[Any]
) -> list[Query]:
    """The queries for the `columns` of the rows whose `key` is one of `wanted`, up to 2,000
    keys each (for `fetch`)."""
    names = ", ".join(f'"{c}"' for c in columns)
    queries = []
    for start in range(0, len(wanted), 2000):
        where, params = one_of(conn, key, wanted[start : start + 2000])
        queries.append(Query(f"SELECT {names} FROM {table.name} WHERE {where}", params))  # noqa: S608
    return queries
