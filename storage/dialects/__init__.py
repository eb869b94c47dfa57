"""The dialect port: how the store's writes that carry many rows reach SQLite or PostgreSQL.

The store's parts (`storage/ingest.py`, `alerts.py`, `outbox.py`, ...) say what to write and
call a `Dialect` for how; `dialect_for` picks `SQLite` (`sqlite.py`) or `PostgreSQL`
(`postgres.py`) by the database URL, and nothing above knows which runs. Each fast path lives
in its dialect's module, once: SQLite's executemany and JSON-array leases, PostgreSQL's
pipelines, JSON recordsets, reserved ids and COPY; what both write alike (plain SQL at the
driver, values bound as Core binds them, the multi-row upsert) is in `driver.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from storage.dialects.driver import Query, taken
from storage.dialects.postgres import PostgreSQL
from storage.dialects.sqlite import SQLite
from storage.errors import StorageError
from storage.parsing import EventRow
from storage.records import Delivery

__all__ = ["Dialect", "Opener", "PostgreSQL", "Query", "SQLite", "dialect_for", "taken"]

Opener = Callable[[], AbstractContextManager[Connection]]  # a transaction of the store's


class Dialect(Protocol):
    """What the store's parts call for the writes a dialect makes fast. `conn` is a connection
    in one of the store's transactions; values are bound as SQLAlchemy Core would bind them."""

    name: ClassVar[str]  # SQLAlchemy's name of the dialect: "sqlite" or "postgresql"
    mark: ClassVar[str]  # the driver's positional parameter mark

    def create_engine(self, url: str) -> Engine:
        """An engine for the URL, set up as this dialect wants its connections."""
        ...

    def write_lock(self) -> AbstractContextManager[object]:
        """What a write transaction holds while it runs (SQLite: its one writer)."""
        ...

    def reader(self, engine: Engine) -> Engine:
        """The engine reads go through."""
        ...

    def pipelined(self, conn: Connection) -> AbstractContextManager[None]:
        """Around a whole write transaction's work: its statements sent without waiting for
        each one's answer (PostgreSQL); rows are then read with `fetch` only."""
        ...

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT, which takes ON CONFLICT."""
        ...

    def bound(self, conn: Connection, table: Table, column: str, value: Any) -> Any:
        """One value as Core would send it for `column`, for a plain SQL statement."""
        ...

    def fetch(self, conn: Connection, *queries: Query) -> list[list[tuple[Any, ...]]]:
        """Each query's rows, as the driver gives them."""
        ...

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """`column` is one of `values` (at most 2,000): the SQL condition and its parameters."""
        ...

    def select_in(
        self, table: Table, columns: Sequence[str], key: str, wanted: Sequence[Any]
    ) -> list[Query]:
        """The queries for the `columns` of the rows whose `key` is one of `wanted`."""
        ...

    def reserve_query(self, table: Table, n: int) -> Query | None:
        """The query that reserves `n` ids for new rows of `table`, or None where the dialect
        numbers rows as they go in."""
        ...

    def insert_rows(
        self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """INSERT every row (all rows have the first row's keys)."""
        ...

    def update_rows(
        self,
        conn: Connection,
        table: Table,
        key: str,
        keys: Sequence[Any],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        """UPDATE … SET the rows' columns WHERE `key` is each row's entry in `keys` (all rows
        have the first row's columns; the keys are distinct)."""
        ...

    def insert_returning_ids(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        ids: Sequence[int] | None = None,
    ) -> list[int]:
        """INSERT every row into a table with an integer `id` key; the new ids, in the rows'
        order. `ids`: reserved by `reserve_query`, as many as the rows."""
        ...

    def set_buckets(
        self, conn: Connection, table: Table, rows: Sequence[tuple[int, str, int]]
    ) -> None:
        """(minute, key, count) rows set their buckets; each bucket named once."""
        ...

    def add_events(self, conn: Connection, events: Sequence[EventRow]) -> int:
        """Events whose id is new go in and add to their (minute, status) buckets; how many."""
        ...

    def claim_deliveries(
        self, write: Opener, read: Opener, now: datetime, term: timedelta, limit: int
    ) -> list[Delivery]:
        """Due deliveries, oldest first, up to `limit`, leased to the caller until now + term
        so that no other worker or replica takes them meanwhile; in the transactions it opens
        with `write` (pipelined) and `read`."""
        ...


def dialect_for(url: str | URL) -> Dialect:
    """The dialect of a SQLAlchemy URL; StorageError for a database nightshift cannot use."""
    name = make_url(url).get_backend_name()
    if name == SQLite.name:
        return SQLite()
    if name == PostgreSQL.name:
        return PostgreSQL()
    raise StorageError(f"nightshift stores into SQLite or PostgreSQL, not {name!r}")
