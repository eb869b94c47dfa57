"""The store's tables (SQLAlchemy Core) and the UTC datetime column type they share."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, stored naive UTC on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # the common case, without astimezone's conversion
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

# Per-minute buckets: epoch seconds (UTC) keep the 900k-row history compact and fast to scan.
counts = Table(
    "counts",
    metadata,
    Column("minute", BigInteger, primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

auth_codes = Table(
    "auth_codes",
    metadata,
    Column("minute", BigInteger, primary_key=True),
    Column("auth_code", String(8), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("minute", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("amount", Float, nullable=True),
    Column("merchant_id", String(128), nullable=True),
    Index("ix_events_minute", "minute"),
)

# Slices (schema version 4). Every dimension value seen: at most NIGHTSHIFT_SLICE_TOP of a
# dimension are `admitted` to a slice of their own, the rest count in the dimension's `other`
# row (see `storage/slices.py`). A value's row is written when it first comes, and never changes.
slice_values = Table(
    "slice_values",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dimension", String(32), nullable=False),
    Column("value", String(128), nullable=False),
    Column("admitted", Boolean, nullable=False),
    UniqueConstraint("dimension", "value", name="uq_slice_value"),
)


def _per_minute(name: str, key: str) -> Table:
    """A (minute, status, `key`) -> count table, its rows in key order on SQLite."""
    return Table(
        name,
        metadata,
        Column("minute", BigInteger, primary_key=True),
        Column("status", String(32), primary_key=True),
        Column(key, BigInteger, primary_key=True),
        Column("count", BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


# What a combo counted in a minute, as last sent: what a re-sent row is compared with. A combo
# is named by a 64-bit id of its extra columns' values (`storage/slices.py`); a store upgraded
# to schema 6 keeps in `state` (COMBO_IDS_FROM) the first minute so named, the minutes before
# it being named by a hash of the combo's key text, as they were stored.
combo_counts = _per_minute("combo_counts", "combo")
COMBO_IDS_FROM = "combo_ids_from"
# The marginals: per (minute, status, slice value), the sum of the combos that hold that value.
slice_counts = _per_minute("slice_counts", "value_id")

# Widths of what a webhook names (the intake refuses longer values with a 422 naming them;
# PostgreSQL would refuse them at write time, SQLite would not).
ALERTNAME_WIDTH, SEVERITY_WIDTH, RECEIVER_WIDTH = 256, 32, 256
LEASE_HOLDER_WIDTH = 160  # who holds a card's or delivery's lease: a `serve` instance's id

alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("alertname", String(ALERTNAME_WIDTH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("severity", String(SEVERITY_WIDTH), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("generator_url", Text, nullable=False),
    Column("receiver", String(RECEIVER_WIDTH), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("first_received", UTCDateTime, nullable=False),
    Column("last_received", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("acked_by", String(256), nullable=True),
    Column("acked_at", UTCDateTime, nullable=True),
    Index("ix_alerts_status", "status"),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Index("ix_alert_history_fingerprint", "fingerprint"),
)

anomalies = Table(
    "anomalies",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("statuses", JSON, nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=True),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("expected", Float, nullable=False),
    Column("observed", Float, nullable=False),
    Column("explanation_pt", Text, nullable=False),
    Column("explanation_en", Text, nullable=False),
    Column("resolved", Boolean, nullable=False),
    # Version 3: approvals the episode cost so far (expected minus observed, summed per minute).
    Column("approvals_lost", Float, nullable=False, server_default="0"),
    # Version 4: the slice a finding is about, a JSON object {dimension: value}; NULL: the total.
    Column("slice", Text, nullable=True),
    Index("ix_anomalies_start", "start"),
)

# An incident joins what belongs to one fire: alerts, detector findings, or an operator's report
# (schema version 3 widened the version 1 table of manual incidents into this).
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("opened_by", String(256), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_by", String(256), nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("source", String(16), nullable=False, server_default="manual"),  # alerts|feed|manual
    Column("severity", String(32), nullable=False, server_default="warning"),
    Column("state", String(16), nullable=False, server_default="open"),  # open | resolved
    Column("resolution", String(16), nullable=True),  # resolved | closed | false
    Column("last_activity", UTCDateTime, nullable=True),
    Column("acked_by", String(256), nullable=True),
    Column("acked_at", UTCDateTime, nullable=True),
    Column("silenced_by", String(256), nullable=True),
    Column("silenced_until", UTCDateTime, nullable=True),
    Column("escalations", Integer, nullable=False, server_default="0"),
    Column("escalate_at", UTCDateTime, nullable=True),
    Index("ix_incidents_state", "state"),
)

# What an incident is made of: alerts (by fingerprint) and findings (by key).
incident_members = Table(
    "incident_members",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # alert | finding
    Column("key", String(128), nullable=False),  # fingerprint or finding key
    Column("name", String(ALERTNAME_WIDTH), nullable=False),  # alertname, or kind:metric
    Column("severity", String(SEVERITY_WIDTH), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("joined_at", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    UniqueConstraint("incident_id", "kind", "key", name="uq_incident_member"),
    Index("ix_incident_members_key", "kind", "key"),
)

# The keys an open incident answers to (a group, a label value, an alert name): what the
# correlation rules look up, one row per key however many members share it.
incident_keys = Table(
    "incident_keys",
    metadata,
    Column("incident_id", Integer, primary_key=True),
    Column("key", String(512), primary_key=True),
)

# An incident's timeline: opened, joined, acked, escalated, silenced, resolved, ...
incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_incident_events_incident", "incident_id"),
)

# Alert and finding changes not yet joined to an incident: written with the change, taken (and
# deleted) by the correlator in one transaction, so none is lost or joined twice.
incident_inbox = Table(
    "incident_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # alert | finding
    Column("key", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("at", UTCDateTime, nullable=False),
)

# One message per incident per destination (or one "N more incidents" roll-up): `wanted` counts
# the incident's changes, `shown` the last one the message shows; it is due while they differ.
cards = Table(
    "cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # incident | rollup
    Column("incident_id", Integer, nullable=True),  # NULL for a roll-up
    Column("destination", String(160), nullable=False),
    Column("rollup_id", Integer, nullable=True),  # an incident told inside this roll-up
    Column("message_ref", String(64), nullable=True),
    Column("wanted", Integer, nullable=False),
    Column("shown", Integer, nullable=False),
    Column("resolved_told", Boolean, nullable=False),
    Column("state", String(16), nullable=False),  # active | failed
    Column("attempts", Integer, nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claimed_by", String(LEASE_HOLDER_WIDTH), nullable=True),  # version 5
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("posted_at", UTCDateTime, nullable=True),
    UniqueConstraint("incident_id", "destination", name="uq_card_once"),
    # Only the due cards are indexed: a pass reads those, whatever the history holds.
    Index(
        "ix_cards_due",
        "destination",
        postgresql_where=text("wanted > shown"),
        sqlite_where=text("wanted > shown"),
    ),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("outcome", String(32), nullable=False),
    Index("ix_audit_at", "at"),
)

# Small facts the process keeps across restarts: last ingest time, last webhook, ...
state = Table(
    "state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The outbox (schema version 2): what must be told, and to whom, written in the same transaction
# as the change it tells of, so a crash can neither lose nor invent a notification.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_kind", String(16), nullable=False),  # alert | finding | reply
    Column("subject", String(128), nullable=False),  # fingerprint, finding key, or a name
    Column("event", String(16), nullable=False),  # firing | resolved | ack | opened | ...
    Column("severity", String(32), nullable=False),
    Column("body", JSON, nullable=False),  # for `reply`: the reply itself
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_notifications_subject", "subject_kind", "subject"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", Integer, nullable=False),
    Column("destination", String(160), nullable=False),  # telegram:<chat>, slack:<channel>, console
    Column("status", String(16), nullable=False),  # pending | sent | failed | merged
    Column("attempts", Integer, nullable=False),
    Column("next_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claimed_by", String(LEASE_HOLDER_WIDTH), nullable=True),  # version 5
    Column("message_ref", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    UniqueConstraint("notification_id", "destination", name="uq_delivery_once"),
    Index("ix_deliveries_due", "status", "next_at"),
)
