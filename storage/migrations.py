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
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    Text,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from storage import schema
from storage.errors import SchemaTooNew

Migration = Callable[[Operations, datetime], None]  # and the time of the upgrade


def _v2_outbox(op: Operations, _now: datetime) -> None:
    """Version 2: the notification outbox and its per-destination deliveries."""
    bind = op.get_bind()
    schema.notifications.create(bind)
    schema.deliveries.create(bind)


def _v3_incidents(op: Operations, _now: datetime) -> None:
    """Version 3: incidents as the unit the operator sees.

    The manual incidents table gains a source, severity, state, ack, silence and escalation;
    members, keys, timeline, the correlator's inbox and the per-destination cards are new;
    findings keep the approvals they cost. Alert and finding messages still queued in the
    outbox are superseded by incident cards (marked merged, not sent).
    """
    bind = op.get_bind()
    i = schema.incidents
    for column in (
        Column("source", String(16), nullable=False, server_default="manual"),
        Column("severity", String(32), nullable=False, server_default="warning"),
        Column("state", String(16), nullable=False, server_default="open"),
        Column("resolution", String(16), nullable=True),
        Column("last_activity", schema.UTCDateTime, nullable=True),
        Column("acked_by", String(256), nullable=True),
        Column("acked_at", schema.UTCDateTime, nullable=True),
        Column("silenced_by", String(256), nullable=True),
        Column("silenced_until", schema.UTCDateTime, nullable=True),
        Column("escalations", Integer, nullable=False, server_default="0"),
        Column("escalate_at", schema.UTCDateTime, nullable=True),
    ):
        op.add_column(i.name, column)
    op.create_index("ix_incidents_state", i.name, ["state"])
    bind.execute(
        update(i)
        .where(i.c.closed_at.is_not(None))
        .values(state="resolved", resolution="closed", last_activity=i.c.closed_at)
    )
    bind.execute(update(i).where(i.c.closed_at.is_(None)).values(last_activity=i.c.opened_at))
    for table in (
        schema.incident_members,
        schema.incident_keys,
        schema.incident_events,
        schema.incident_inbox,
        schema.cards,
    ):
        table.create(bind)
    op.add_column(
        schema.anomalies.name, Column("approvals_lost", Float, nullable=False, server_default="0")
    )
    d, n = schema.deliveries, schema.notifications
    bind.execute(
        update(d)
        .where(
            d.c.status == "pending",
            d.c.notification_id.in_(
                select(n.c.id).where(n.c.subject_kind.in_(("alert", "finding")))
            ),
        )
        .values(status="merged", error="superseded by incident cards (schema 3)")
    )


def _v4_slices(op: Operations, _now: datetime) -> None:
    """Version 4: slices. Dimension values, combos' counts, the marginals per slice value; a
    finding names its slice."""
    bind = op.get_bind()
    for table in (schema.slice_values, schema.combo_counts, schema.slice_counts):
        table.create(bind)
    op.add_column(schema.anomalies.name, Column("slice", Text, nullable=True))


def _v5_lease_holders(op: Operations, _now: datetime) -> None:
    """Version 5: a card's or delivery's lease names its holder, so a restarted `serve` lets go
    of its previous run's leases at once instead of waiting them out. A table an earlier
    migration created (from today's definition) has the column already."""
    for table in (schema.cards, schema.deliveries):
        have = {c["name"] for c in inspect(op.get_bind()).get_columns(table.name)}
        if "claimed_by" not in have:
            op.add_column(
                table.name, Column("claimed_by", String(schema.LEASE_HOLDER_WIDTH), nullable=True)
            )


def _v6_combo_ids(op: Operations, now: datetime) -> None:
    """Version 6: a combo is named by an id made a column at a time (`storage.codes.
    fingerprints`), no longer by a hash of its key text made a row at a time. The names of the
    minutes stored so far cannot be made over (only the hash is stored): the first minute the
    new ones name is kept in `state`, and a row of an earlier minute is named the old way, so a
    re-sent row of history still changes nothing."""
    bind = op.get_bind()
    last = bind.execute(select(func.max(schema.combo_counts.c.minute))).scalar()
    if last is not None:
        since = str(int(last) + 60)
        bind.execute(
            insert(schema.state).values(key=schema.COMBO_IDS_FROM, value=since, updated_at=now)
        )


# Version N is reached by running MIGRATIONS[N - 2]; version 1 is the first released schema.
# Append only: a released migration never changes.
MIGRATIONS: tuple[Migration, ...] = (
    _v2_outbox,
    _v3_incidents,
    _v4_slices,
    _v5_lease_holders,
    _v6_combo_ids,
)

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
            MIGRATIONS[number - 2](operations, now)
            conn.execute(insert(schema.schema_version).values(version=number, applied_at=now))
        return version
