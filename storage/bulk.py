"""Many rows in one driver-level `executemany`, each value bound by its column's type.

SQLAlchemy Core's executemany builds and processes parameters row by row in Python; for the
write paths that carry many rows (alert webhooks, the outbox) that was most of their cost. Here
the statement is plain SQL over our own table and column names, and each value goes through the
same bind processor SQLAlchemy would use (JSON, UTC datetimes), so what is stored is identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Table
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
    """PostgreSQL: the statements inside go out together and their answers come back together
    (psycopg's pipeline mode), one round trip instead of one each; a no-op elsewhere."""
    driver = conn.connection.driver_connection
    pipeline = getattr(driver, "pipeline", None)
    if conn.dialect.name != "postgresql" or pipeline is None:
        yield
        return
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with pipeline():
            yield
    except dbapi_error as error:
        # A statement's error may surface only when the pipeline syncs, outside SQLAlchemy:
        # raised as the DBAPIError SQLAlchemy would have raised (and the store handles).
        raise DBAPIError.instance(None, None, error, dbapi_error) from error


def placeholder(conn: Connection) -> str:
    """The driver's positional parameter mark."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def readers(conn: Connection, table: Table, columns: Sequence[str]) -> list[_Processor | None]:
    """Each column's result processor (None: the driver's value is already right), as Core
    would apply to a row it reads; worked out once."""
    return _processors(_READERS, conn, table, columns, lambda t, d: t.result_processor(d, None))


def marks(conn: Connection, n: int) -> str:
    """`n` placeholders separated by commas, for an IN list."""
    return ", ".join(placeholder(conn) for _ in range(n))


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


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT every row (all rows have the first row's keys)."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(placeholder(conn) for _ in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608 - our names
    conn.exec_driver_sql(sql, _values(rows, columns, _binders(conn, table, columns)))


def reserve_ids(conn: Connection, table: Table, n: int) -> list[int] | None:
    """PostgreSQL: `n` new ids from the sequence of the table's integer `id`, for rows about to
    be inserted (one round trip, which can then be left out of a pipeline). None elsewhere:
    SQLite numbers rows as they go in (see `insert_returning_ids`)."""
    if conn.dialect.name != "postgresql":
        return None
    if n == 0:
        return []
    rows = conn.exec_driver_sql(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table.name, n),
    )
    return [int(i) for i in rows.scalars()]


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
    the first row's columns)."""
    if not rows:
        return
    columns = list(rows[0])
    mark = placeholder(conn)
    sets = ", ".join(f'"{c}" = {mark}' for c in columns)
    sql = f'UPDATE {table.name} SET {sets} WHERE "{key}" = {mark}'  # noqa: S608 - our names
    binders = _binders(conn, table, [*columns, key])
    values = _values(
        ({**row, key: k} for row, k in zip(rows, keys, strict=True)), [*columns, key], binders
    )
    conn.exec_driver_sql(sql, values)


def select_in(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    key: str,
    wanted: Sequence[Any],
    *,
    raw: bool = False,
) -> list[tuple[Any, ...]]:
    """The `columns` of the rows whose `key` is one of `wanted`, each value read by its column's
    type as Core would (`raw`: as the driver gives it); up to 2,000 keys a statement."""
    names = ", ".join(f'"{c}"' for c in columns)
    read = [None] * len(columns) if raw else readers(conn, table, columns)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(wanted), 2000):
        chunk = tuple(wanted[start : start + 2000])
        sql = f'SELECT {names} FROM {table.name} WHERE "{key}" IN ({marks(conn, len(chunk))})'  # noqa: S608
        found.extend(processed(conn.exec_driver_sql(sql, chunk), read))
    return found


def processed(
    rows: Iterable[Sequence[Any]], read: Sequence[_Processor | None]
) -> list[tuple[Any, ...]]:
    """Rows with each value passed through its column's reader (from `readers`)."""
    if all(r is None for r in read):
        return [tuple(row) for row in rows]
    return [tuple(v if r is None else r(v) for v, r in zip(row, read, strict=True)) for row in rows]
