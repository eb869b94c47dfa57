"""Schema versions: a new database is created at the newest version, an old one is upgraded.

This follows Alembic's cookbook for embedded databases: a fresh database is built from the
current tables and stamped with the newest version; an existing one runs, in order, every
migration newer than its stamp, inside one transaction (and, on PostgreSQL, under an advisory lock
so that two replicas starting together do not both migrate). Migrations use Alembic's operations
(`op.add_column`, `op.create_table`, ...), which speak every dialect we support.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, Engine, func, insert, inspect, select, text

from storage import schema
from storage.errors import SchemaTooNew

Migration = Callable[[Operations], None]


def _v2_outbox(op: Operations) -> None:
    """Version 2: the notification outbox and its per-destination deliveries."""
    bind = op.get_bind()
    schema.notifications.create(bind)
    schema.deliveries.create(bind)


# Version N is reached by running MIGRATIONS[N - 2]; version 1 is the first released schema.
# Append only: a released migration never changes.
MIGRATIONS: tuple[Migration, ...] = (_v2_outbox,)

HEAD = 1 + len(MIGRATIONS)
_LOCK_ID = 0x6E696768  # "nigh": the advisory lock key taken while migrating on PostgreSQL


def _current(conn: Connection) -> int | None:
    if not inspect(conn).has_table(schema.schema_version.name):
        return None
    value = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    return int(value or 0)


def migrate(engine: Engine, now: datetime) -> int:
    """Bring the database to HEAD; returns the version it was at (0 for a new database)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        version = _current(conn)
        if version is None:
            schema.metadata.create_all(conn)
            conn.execute(insert(schema.schema_version).values(version=HEAD, applied_at=now))
            return 0
        if version > HEAD:
            raise SchemaTooNew(
                f"the database is at schema version {version}, newer than this nightshift "
                f"understands ({HEAD}); upgrade nightshift"
            )
        operations = Operations(MigrationContext.configure(conn))
        for number in range(version + 1, HEAD + 1):
            MIGRATIONS[number - 2](operations)
            conn.execute(insert(schema.schema_version).values(version=number, applied_at=now))
        return version
