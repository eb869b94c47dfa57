"""Many rows in one driver-level `executemany`, each value bound by its column's type.

SQLAlchemy Core's executemany builds and processes parameters row by row in Python; for the
write paths that carry many rows (alert webhooks, the outbox) that was most of their cost. Here
the statement is plain SQL over our own table and column names, and each value goes through the
same bind processor SQLAlchemy would use (JSON, UTC datetimes), so what is stored is identical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table

_Processor = Callable[[Any], Any] | None


def _binders(conn: Connection, table: Table, columns: Sequence[str]) -> list[_Processor]:
    dialect = conn.dialect
    return [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]


def placeholder(conn: Connection) -> str:
    """The driver's positional parameter mark."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _values(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], binders: Sequence[_Processor]
) -> list[tuple[Any, ...]]:
    pairs = list(zip(columns, binders, strict=True))
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
        [{**row, key: k} for row, k in zip(rows, keys, strict=True)], [*columns, key], binders
    )
    conn.exec_driver_sql(sql, values)
