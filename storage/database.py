"""One open database: its engine, its dialect, and the transactions the store's parts work in.

The store's parts (`ingest.py`, `traffic.py`, `alerts.py`, ...) are classes on this one, put
together as `Store`: each writes in `_write()` and reads in `_read()`, and any SQLAlchemy error
leaves as a StorageError whose message is safe to show.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from storage import schema
from storage.dialects import Dialect, dialect_for
from storage.errors import StorageError

log = logging.getLogger(__name__)


class Database:
    """One database, opened; safe to share between threads. All methods are synchronous:
    async callers run them in `asyncio.to_thread`."""

    def __init__(self, engine: Engine, dialect: Dialect | None = None) -> None:
        self._engine = engine
        self._dialect = dialect or dialect_for(engine.url)
        self._write_lock = self._dialect.write_lock()
        self._reader = self._dialect.reader(engine)
        self._shared = threading.local()  # the connection of a `reading()` block, per thread
        self._correlating = threading.Lock()  # one correlation pass at a time in this process

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _write(self, *, pipelined: bool = False) -> Iterator[Connection]:
        """A write transaction. `pipelined`: its statements sent without waiting for each
        answer, where the dialect can (see `Dialect.pipelined`)."""
        try:
            with (
                self._write_lock,
                self._engine.begin() as conn,
                self._dialect.pipelined(conn) if pipelined else nullcontext(),
            ):
                yield conn
        except SQLAlchemyError as error:
            log.warning("store write failed: %s", type(error).__name__)
            raise StorageError(f"the store could not save ({type(error).__name__})") from error

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        shared: Connection | None = getattr(self._shared, "conn", None)
        try:
            if shared is not None:
                yield shared
                return
            with self._reader.connect() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise StorageError(f"the store could not be read ({type(error).__name__})") from error

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads in this block (on this thread) share one connection: one checkout, with its
        liveness check and reset, instead of one per query. For read-only work only: on SQLite
        the block sees the database as of its first read."""
        if getattr(self._shared, "conn", None) is not None:
            yield
            return
        with self._read() as conn:
            self._shared.conn = conn
            try:
                yield
            finally:
                self._shared.conn = None

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self._read() as conn:
                conn.execute(text("SELECT 1"))
        except StorageError:
            return False
        return True

    def schema_version(self) -> int:
        with self._read() as conn:
            value = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
        return int(value or 0)
