"""The dialect port: how the store's writes that carry many rows reach SQLite or PostgreSQL.

The store's parts (`storage/ingest.py`, `alerts.py`, `outbox.py`, ...) say what to write and
call a `Dialect` (`port.py`) for how; `dialect_for` picks `SQLite` (`sqlite.py`) or `PostgreSQL`
(`postgres.py`) by the database URL, and nothing above knows which runs. Each fast path lives in
its dialect's module, once: SQLite's executemany and JSON-array leases; PostgreSQL's pipelines,
JSON recordsets, reserved ids, COPY and one-statement leases. What both write alike (plain SQL
at the driver, values bound as Core binds them, the multi-row upsert) is in `port.py`.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from storage.dialects.port import IN_LIST, Dialect, Opener, Query, taken
from storage.dialects.postgres import PostgreSQL
from storage.dialects.sqlite import SQLite
from storage.errors import StorageError

__all__ = ["IN_LIST", "Dialect", "Opener", "PostgreSQL", "Query", "SQLite", "dialect_for", "taken"]


def dialect_for(url: str | URL) -> Dialect:
    """The dialect of a SQLAlchemy URL; StorageError for a database nightshift cannot use."""
    name = make_url(url).get_backend_name()
    if name == SQLite.name:
        return SQLite()
    if name == PostgreSQL.name:
        return PostgreSQL()
    raise StorageError(f"nightshift stores into SQLite or PostgreSQL, not {name!r}")
