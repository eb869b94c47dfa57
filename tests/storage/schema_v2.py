"""The store's tables as schema version 2 left them (a frozen copy): migration tests build an
old database from it and upgrade it in place."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage.schema import UTCDateTime

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

# Widths of what a webhook names (the intake refuses longer values with a 422 naming them;
# PostgreSQL would refuse them at write time, SQLite would not).
ALERTNAME_WIDTH, SEVERITY_WIDTH, RECEIVER_WIDTH = 256, 32, 256

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
    Index("ix_anomalies_start", "start"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("opened_by", String(256), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_by", String(256), nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
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
    Column("message_ref", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    UniqueConstraint("notification_id", "destination", name="uq_delivery_once"),
    Index("ix_deliveries_due", "status", "next_at"),
)
