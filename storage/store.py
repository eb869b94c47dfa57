"""The transaction and alert store: SQLAlchemy on SQLite (default) or PostgreSQL.

Its exceptions are drawn in `storage.errors`. All methods are synchronous; async callers run
them in `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from storage import bulk, outbox, schema
from storage.errors import StorageError as StorageError  # callers import it from here
from storage.migrations import migrate
from storage.parsing import FeedBatch
from storage.records import (
    AlertChange,
    AlertGroup,
    AlertRecord,
    AnomalyRecord,
    AuditEntry,
    IncidentRecord,
    IngestResult,
)

log = logging.getLogger(__name__)

_CHUNK = 2000
_VALUES_ROWS = 250  # rows of one multi-row upsert: 750 parameters, under every limit
_CLAIM_CHUNK = 500
Routing = Callable[[str], Sequence[str]]  # severity → destinations


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class Store:
    """One database, opened and migrated; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        # SQLite has one writer; serialising writes here avoids "database is locked" storms.
        self._write_lock = threading.Lock() if self._dialect == "sqlite" else None
        # PostgreSQL reads need no transaction: at READ COMMITTED each statement sees its own
        # snapshot inside one anyway, and without it a read is one round trip instead of three
        # (psycopg's BEGIN, the query, the ROLLBACK when the connection goes back to the pool).
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._dialect == "postgresql"
            else engine
        )
        self._shared = threading.local()  # the connection of a `reading()` block, per thread

    @property
    def dialect(self) -> str:
        return self._dialect

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _write(self, *, pipelined: bool = False) -> Iterator[Connection]:
        """A write transaction. `pipelined`: on PostgreSQL the whole transaction is one psycopg
        pipeline (see `bulk.pipelined`): a round trip per read, and one for all the writes."""
        try:
            with (
                self._write_lock or nullcontext(),
                self._engine.begin() as conn,
                bulk.pipelined(conn) if pipelined else nullcontext(),
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
        liveness ping and reset, instead of one per query (on PostgreSQL, 2 round trips each).
        For read-only work only: on SQLite the block sees the database as of its first read."""
        if getattr(self._shared, "conn", None) is not None:
            yield
            return
        with self._read() as conn:
            self._shared.conn = conn
            try:
                yield
            finally:
                self._shared.conn = None

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        raise StorageError(f"unsupported database {self._dialect!r}")

    # -- health -------------------------------------------------------------------------------

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

    # -- feed ---------------------------------------------------------------------------------

    def ingest(
        self, batch: FeedBatch, progress: Callable[[int], object] | None = None
    ) -> IngestResult:
        """Store a validated batch in one transaction: counts set, events counted once by id."""
        new_events = 0
        with self._write() as conn:
            if batch.counts:
                self._upsert_set(
                    conn,
                    schema.counts,
                    batch.count_tuples(),
                    progress,
                )
            if batch.auth_codes:
                self._upsert_set(
                    conn,
                    schema.auth_codes,
                    batch.auth_code_tuples(),
                    progress,
                )
            if batch.events:
                new_events = self._add_events(conn, batch)
                if progress is not None:
                    progress(len(batch.events))
        return IngestResult(accepted=len(batch), new_events=new_events)

    def _upsert_set(
        self,
        conn: Connection,
        table: Table,
        rows: list[tuple[int, str, int]],
        progress: Callable[[int], object] | None,
    ) -> None:
        """(minute, key, count) rows set their bucket, 250 rows a statement: one multi-row
        `INSERT … VALUES (…), (…) ON CONFLICT … DO UPDATE` is parsed and run once where an
        executemany binds and steps it once a row (on SQLite 1.7-2x the rows a second, in one
        transaction as before). A batch names each bucket once, as one statement must."""
        minute, key, count = (c.name for c in table.columns)
        mark = bulk.placeholder(conn)
        statements: dict[int, str] = {}

        def upsert(n: int) -> str:
            if n not in statements:
                values = ", ".join([f"({mark}, {mark}, {mark})"] * n)
                statements[n] = (
                    f'INSERT INTO {table.name} ({minute}, {key}, "{count}") '  # noqa: S608
                    f"VALUES {values} ON CONFLICT ({minute}, {key}) "
                    f'DO UPDATE SET "{count}" = excluded."{count}"'
                )
            return statements[n]

        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            for at in range(0, len(chunk), _VALUES_ROWS):
                part = chunk[at : at + _VALUES_ROWS]
                conn.exec_driver_sql(upsert(len(part)), tuple(chain.from_iterable(part)))
            if progress is not None:
                progress(len(chunk))

    def _add_events(self, conn: Connection, batch: FeedBatch) -> int:
        """Insert events not seen before; only those returned as inserted add to the buckets."""
        if self._dialect == "postgresql":
            return _copy_events(conn, batch)
        by_id = {e.id: e for e in batch.events}
        inserted: list[str] = []
        rows = [
            {
                "id": e.id,
                "minute": e.minute,
                "status": e.status,
                "amount": e.amount,
                "merchant_id": e.merchant_id,
            }
            for e in batch.events
        ]
        for start in range(0, len(rows), _CHUNK):
            stmt = (
                self._insert(schema.events)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(schema.events.c.id)
            )
            result = conn.execute(stmt, rows[start : start + _CHUNK])
            inserted.extend(str(r[0]) for r in result)
        increments: dict[tuple[int, str], int] = defaultdict(int)
        for event_id in inserted:
            e = by_id[event_id]
            increments[(e.minute, e.status)] += 1
        if increments:
            stmt = self._insert(schema.counts)
            stmt = stmt.on_conflict_do_update(
                index_elements=["minute", "status"],
                set_={"count": schema.counts.c["count"] + stmt.excluded["count"]},
            )
            conn.execute(
                stmt,
                [{"minute": m, "status": s, "count": c} for (m, s), c in increments.items()],
            )
        return len(inserted)

    def counts_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Buckets with start <= minute < end: columns `minute` (UTC), `status`, `count`."""
        return self._frame(schema.counts, "status", start, end)

    def auth_codes_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Authorization-code buckets: `minute` (UTC), `auth_code`, `count`."""
        return self._frame(schema.auth_codes, "auth_code", start, end)

    def _frame(self, table: Table, key: str, start: datetime, end: datetime) -> pd.DataFrame:
        query = select(table.c.minute, table.c[key], table.c["count"]).where(
            table.c.minute >= _epoch(start), table.c.minute < _epoch(end)
        )
        # Read in chunks into arrays: 28 days of minutes are 280k rows, and a list of row
        # objects that size costs ~65 MiB at the detector's warm-up, which the process keeps.
        minutes: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        keys: list[str] = []
        same: dict[str, str] = {}  # one string object per status, not one per row
        with self._read() as conn:
            result = conn.execute(query)
            while chunk := result.fetchmany(20_000):
                minutes.append(np.fromiter((r[0] for r in chunk), np.int64, len(chunk)))
                counts.append(np.fromiter((r[2] for r in chunk), np.int64, len(chunk)))
                keys.extend(same.setdefault(r[1], r[1]) for r in chunk)
        empty = np.empty(0, np.int64)
        return pd.DataFrame(
            {
                "minute": pd.to_datetime(
                    np.concatenate(minutes) if minutes else empty, unit="s", utc=True
                ),
                key: pd.Series(keys, dtype="object"),
                "count": pd.Series(np.concatenate(counts) if counts else empty, dtype="int64"),
            }
        )

    def merchants_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Events by minute, status and merchant: `minute`, `status`, `merchant_id`, `count`."""
        e = schema.events
        query = (
            select(e.c.minute, e.c.status, e.c.merchant_id, func.count())
            .where(e.c.minute >= _epoch(start), e.c.minute < _epoch(end))
            .where(e.c.merchant_id.is_not(None))
            .group_by(e.c.minute, e.c.status, e.c.merchant_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame(
            {
                "minute": pd.to_datetime([r[0] for r in rows], unit="s", utc=True),
                "status": pd.Series([r[1] for r in rows], dtype="object"),
                "merchant_id": pd.Series([r[2] for r in rows], dtype="object"),
                "count": pd.Series([r[3] for r in rows], dtype="int64"),
            }
        )

    def totals_by_status(self, start: datetime, end: datetime) -> dict[str, int]:
        """Transactions per status with start <= minute < end."""
        c = schema.counts
        query = (
            select(c.c.status, func.sum(c.c["count"]))
            .where(c.c.minute >= _epoch(start), c.c.minute < _epoch(end))
            .group_by(c.c.status)
        )
        with self._read() as conn:
            return {str(s): int(n or 0) for s, n in conn.execute(query).all()}

    def hourly_totals(self, start: datetime, end: datetime) -> dict[datetime, dict[str, int]]:
        """Totals per status of each whole hour from `start` up to `end` (UTC hour keys), summed
        in the database in one query; hours with no traffic are present and empty."""
        c = schema.counts
        origin = _epoch(start)
        hour = ((c.c.minute - origin) // 3600).label("hour")
        query = (
            select(hour, c.c.status, func.sum(c.c["count"]))
            .where(c.c.minute >= origin, c.c.minute < _epoch(end))
            .group_by(hour, c.c.status)
        )
        out: dict[datetime, dict[str, int]] = {}
        when = start.astimezone(UTC)
        while when < end:
            out[when] = {}
            when += timedelta(hours=1)
        with self._read() as conn:
            for h, status, total in conn.execute(query):
                key = datetime.fromtimestamp(origin + 3600 * int(h), UTC)
                out.setdefault(key, {})[str(status)] = int(total or 0)
        return out

    def status_buckets(
        self, status: str, start: datetime, end: datetime, bucket: timedelta
    ) -> pd.Series[int]:
        """Transactions of one status per `bucket` from `start` up to `end`, summed in the
        database: indexed by each bucket's start (UTC), zero where nothing came."""
        c = schema.counts
        origin, width = _epoch(start), int(bucket.total_seconds())
        slot = ((c.c.minute - origin) // width).label("slot")
        query = (
            select(slot, func.sum(c.c["count"]))
            .where(c.c.status == status, c.c.minute >= origin, c.c.minute < _epoch(end))
            .group_by(slot)
        )
        index = pd.date_range(
            pd.Timestamp(start).tz_convert(UTC),
            pd.Timestamp(end).tz_convert(UTC),
            freq=bucket,
            inclusive="left",
        )
        totals = np.zeros(len(index), np.int64)
        with self._read() as conn:
            for s, total in conn.execute(query):
                totals[int(s)] = int(total or 0)
        return pd.Series(totals, index=index, name=status)

    def traffic_statuses(self, start: datetime, end: datetime) -> tuple[str, ...]:
        """The statuses with a bucket in [start, end) if any transaction came then, sorted;
        none if nothing did. Cheaper than `totals_by_status` on SQLite: the (minute, status) key
        lists the statuses without reading the rows behind it, and one sale proves traffic."""
        c, sale = schema.counts, schema.counts.alias("sale")
        first, last = _epoch(start), _epoch(end)
        busy = select(sale.c.minute).where(
            sale.c.minute >= first, sale.c.minute < last, sale.c["count"] > 0
        )
        query = (
            select(c.c.status)
            .where(c.c.minute >= first, c.c.minute < last, busy.exists())
            .distinct()
            .order_by(c.c.status)
        )
        with self._read() as conn:
            return tuple(str(s) for s in conn.execute(query).scalars())

    def last_minute(self, before: datetime | None = None) -> datetime | None:
        """The newest minute that has any bucket (and starts before `before`, if given)."""
        query = select(func.max(schema.counts.c.minute))
        if before is not None:
            query = query.where(schema.counts.c.minute < _epoch(before))
        with self._read() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else datetime.fromtimestamp(int(value), UTC)

    def delete_counts_before(self, before: datetime) -> int:
        """Retention: drop minute buckets, codes and events older than `before`."""
        cut = _epoch(before)
        deleted = 0
        with self._write() as conn:
            for table in (schema.counts, schema.auth_codes, schema.events):
                deleted += conn.execute(delete(table).where(table.c.minute < cut)).rowcount or 0
        return deleted

    # -- small state --------------------------------------------------------------------------

    def _set_state(self, conn: Connection, key: str, value: str, now: datetime) -> None:
        stmt = self._insert(schema.state).values(key=key, value=value, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"], set_={"value": value, "updated_at": now}
            )
        )

    def set_state(self, key: str, value: str, now: datetime) -> None:
        with self._write() as conn:
            self._set_state(conn, key, value, now)

    def get_state(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(
                select(schema.state.c.value).where(schema.state.c.key == key)
            ).scalar()
        return None if value is None else str(value)

    # -- alerts -------------------------------------------------------------------------------

    def apply_alert_group(
        self, group: AlertGroup, now: datetime, route: Routing | None = None
    ) -> list[AlertChange]:
        """Store a webhook's alerts; returns the state changes (none for a re-sent group).

        With `route` (severity → destinations), each firing or resolution is queued in the outbox
        in the same transaction, so it is told exactly once per destination.
        """
        return self.apply_alert_groups([(group, now)], route)[0]

    def apply_alert_groups(
        self, groups: Sequence[tuple[AlertGroup, datetime]], route: Routing | None = None
    ) -> list[list[AlertChange]]:
        """Several webhooks in one transaction (a group commit), each with the time it came in:
        the same rows and changes as applying them one by one in this order, in a handful of
        statements instead of several per alert."""
        with self._write(pipelined=True) as conn:
            known, ids = self._alert_states(conn, groups, route)
            plan = _AlertPlan(known, route)
            changes = [plan.apply(group, now) for group, now in groups]
            plan.write(conn, ids)
        return changes

    @staticmethod
    def _alert_states(
        conn: Connection, groups: Sequence[tuple[AlertGroup, datetime]], route: Routing | None
    ) -> tuple[dict[str, str], list[int] | None]:
        """The stored status of each alert in `groups` and, on PostgreSQL, ids reserved for
        their notifications: both in one round trip (the writes and the commit take one more;
        see `bulk.pipelined`). An alert gives at most one notification, so as many ids as
        alerts are reserved, the unused ones left as gaps."""
        fingerprints = list({a.fingerprint: None for g, _ in groups for a in g.alerts})
        states = bulk.select_in_queries(
            conn, schema.alerts, ("fingerprint", "status"), "fingerprint", fingerprints
        )
        alerts = sum(len(group.alerts) for group, _ in groups) if route is not None else 0
        reserve = bulk.reserve_query(conn, schema.notifications, alerts) if alerts else None
        found = bulk.fetch(conn, *states, *([reserve] if reserve is not None else []))
        known = {str(f): str(status) for rows in found[: len(states)] for f, status in rows}
        return known, bulk.taken(found[-1]) if reserve is not None else None

    def alerts(self, *, active_only: bool = True, limit: int = 200) -> list[AlertRecord]:
        """Alerts, newest change first; active means firing."""
        a = schema.alerts
        query = select(a).order_by(a.c.changed_at.desc()).limit(limit)
        if active_only:
            query = query.where(a.c.status == "firing")
        with self._read() as conn:
            return [_alert(row._mapping) for row in conn.execute(query)]

    def worst_firing(self, limit: int = 10) -> tuple[int, list[AlertRecord]]:
        """How many alerts are firing, and the `limit` worst: critical, then warning, then the
        rest, each by name (what a storm digest lists)."""
        a = schema.alerts
        rank = case((a.c.severity == "critical", 0), (a.c.severity == "warning", 1), else_=2)
        firing = a.c.status == "firing"
        with self._read() as conn:
            count = int(conn.execute(select(func.count()).where(firing)).scalar_one())
            rows = conn.execute(
                select(a).where(firing).order_by(rank, a.c.alertname, a.c.fingerprint).limit(limit)
            )
            return count, [_alert(row._mapping) for row in rows]

    def alert(self, fingerprint: str) -> AlertRecord | None:
        a = schema.alerts
        with self._read() as conn:
            row = conn.execute(select(a).where(a.c.fingerprint == fingerprint)).first()
        return None if row is None else _alert(row._mapping)

    def find_alerts(self, target: str) -> list[AlertRecord]:
        """Alerts whose fingerprint starts with `target` or whose alertname is `target`."""
        a = schema.alerts
        escaped = target.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            select(a)
            .where(
                or_(
                    a.c.fingerprint.like(f"{escaped}%", escape="\\"),
                    func.lower(a.c.alertname) == target.lower(),
                )
            )
            .order_by(a.c.changed_at.desc())
            .limit(50)
        )
        with self._read() as conn:
            return [_alert(row._mapping) for row in conn.execute(query)]

    def ack_alert(self, fingerprint: str, who: str, now: datetime) -> bool:
        """Record who acknowledged; every message already sent about it is queued for an edit."""
        a = schema.alerts
        with self._write() as conn:
            result = conn.execute(
                update(a).where(a.c.fingerprint == fingerprint).values(acked_by=who, acked_at=now)
            )
            if result.rowcount:
                severity = conn.execute(
                    select(a.c.severity).where(a.c.fingerprint == fingerprint)
                ).scalar_one()
                outbox.enqueue(
                    conn,
                    subject_kind="alert",
                    subject=fingerprint,
                    event="ack",
                    severity=str(severity),
                    destinations=outbox.destinations_told(conn, "alert", fingerprint),
                    now=now,
                    body={"by": who},
                )
        return bool(result.rowcount)

    def alert_counts_since(self, since: datetime) -> dict[str, int]:
        """How many alerts fired and resolved since `since` (from the history)."""
        h = schema.alert_history
        query = select(h.c.status, func.count()).where(h.c.at >= since).group_by(h.c.status)
        with self._read() as conn:
            return {str(s): int(n) for s, n in conn.execute(query).all()}

    # -- anomalies ----------------------------------------------------------------------------

    def save_anomaly(self, record: AnomalyRecord, notify: Sequence[str] = ()) -> None:
        """Insert or update a detector episode by its key.

        `notify` are the destinations told of critical episodes, in the same transaction: once
        when an episode first is critical (new, or escalated from warning), once when it
        resolves. Updates in between are stored, not pushed.
        """
        values = {
            "kind": record.kind,
            "metric": record.metric,
            "statuses": list(record.statuses),
            "start": record.start,
            "end": record.end,
            "detected_at": record.detected_at,
            "updated_at": record.updated_at,
            "severity": record.severity,
            "score": record.score,
            "expected": record.expected,
            "observed": record.observed,
            "explanation_pt": record.explanation_pt,
            "explanation_en": record.explanation_en,
            "resolved": record.resolved,
        }
        n = schema.anomalies
        with self._write() as conn:
            before = conn.execute(
                select(n.c.severity, n.c.resolved).where(n.c.key == record.key)
            ).first()
            stmt = self._insert(n).values(key=record.key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=values))
            was_critical = before is not None and before.severity == "critical"
            was_open = before is not None and not before.resolved
            if record.resolved:
                event = "resolved" if was_critical and was_open else None
            else:
                event = "opened" if record.severity == "critical" and not was_critical else None
            if event is not None:
                outbox.enqueue(
                    conn,
                    subject_kind="finding",
                    subject=record.key,
                    event=event,
                    severity=record.severity,
                    destinations=notify,
                    now=record.updated_at,
                )

    def anomalies(
        self, start: datetime, end: datetime, *, open_only: bool = False
    ) -> list[AnomalyRecord]:
        """Episodes overlapping [start, end), newest first."""
        n = schema.anomalies
        query = (
            select(n)
            .where(n.c.start < end, or_(n.c.end.is_(None), n.c.end >= start))
            .order_by(n.c.start.desc())
            .limit(500)
        )
        if open_only:
            query = query.where(n.c.resolved.is_(False))
        with self._read() as conn:
            return [_anomaly(row._mapping) for row in conn.execute(query)]

    def open_anomalies(self) -> list[AnomalyRecord]:
        n = schema.anomalies
        query = select(n).where(n.c.resolved.is_(False)).order_by(n.c.start.desc())
        with self._read() as conn:
            return [_anomaly(row._mapping) for row in conn.execute(query)]

    def anomaly(self, key: str) -> AnomalyRecord | None:
        n = schema.anomalies
        with self._read() as conn:
            row = conn.execute(select(n).where(n.c.key == key)).first()
        return None if row is None else _anomaly(row._mapping)

    # -- outbox -------------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        subject_kind: str,
        subject: str,
        event: str,
        severity: str,
        destinations: Sequence[str],
        now: datetime,
        body: Mapping[str, Any] | None = None,
        once: bool = False,
    ) -> int | None:
        """Queue a notification (a briefing, a notice) for delivery to each destination;
        `once`: not if one about the same subject was ever queued (a briefing per shift)."""
        with self._write() as conn:
            if once and outbox.exists(conn, subject_kind, subject):
                return None
            return outbox.enqueue(
                conn,
                subject_kind=subject_kind,
                subject=subject,
                event=event,
                severity=severity,
                destinations=destinations,
                now=now,
                body=body,
            )

    def claim_deliveries(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[outbox.Delivery]:
        """Due deliveries leased to the caller; another replica cannot claim them meanwhile.
        Leased in transactions of at most 500, and read after each commits, so a storm's backlog
        does not hold the write lock (and the webhooks behind it) for long."""
        out: list[outbox.Delivery] = []
        while len(out) < limit:
            want = min(_CLAIM_CHUNK, limit - len(out))
            if self._dialect == "postgresql":  # no write lock to keep short: one round trip
                with self._write(pipelined=True) as conn:
                    got = outbox.lease_claimed(conn, now, lease, want)
            else:
                with self._write() as conn:
                    leased = outbox.lease(conn, now, lease, want)
                got = []
                if leased:  # nothing due (most polls): no read
                    with self._read() as conn:
                        got = outbox.claimed(conn, leased)
            out.extend(got)
            if len(got) < want:
                break
        return out

    def finish_deliveries(
        self,
        ids: Sequence[int],
        status: str,
        now: datetime,
        *,
        ref: str | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record how claimed deliveries went: sent, merged, failed, or (retry_at) due again."""
        with self._write(pipelined=True) as conn:
            outbox.finish(conn, ids, status, now, ref=ref, error=error, retry_at=retry_at)

    def message_ref(self, subject_kind: str, subject: str, destination: str) -> str | None:
        with self._read() as conn:
            return outbox.message_ref(conn, subject_kind, subject, destination)

    def message_refs(
        self, subject_kind: str, subjects: Sequence[str], destination: str
    ) -> dict[str, str]:
        """`message_ref` of many subjects in one query (subject → ref, where there is one)."""
        with self._read() as conn:
            return outbox.message_refs(conn, subject_kind, subjects, destination)

    def undelivered(self, subject_kind: str, subject: str) -> list[str]:
        """Destinations a notification has not reached yet (empty: delivered everywhere)."""
        with self._read() as conn:
            return outbox.undelivered(conn, subject_kind, subject)

    def outbox_counts(self) -> dict[str, int]:
        with self._read() as conn:
            return outbox.counts(conn)

    # -- incidents ----------------------------------------------------------------------------

    def open_incident(self, title: str, who: str, now: datetime) -> IncidentRecord:
        i = schema.incidents
        with self._write() as conn:
            new_id = conn.execute(
                insert(i).values(title=title, opened_by=who, opened_at=now).returning(i.c.id)
            ).scalar_one()
        return IncidentRecord(id=int(new_id), title=title, opened_by=who, opened_at=now)

    def close_incident(self, incident_id: int, who: str, now: datetime) -> IncidentRecord | None:
        i = schema.incidents
        with self._write() as conn:
            conn.execute(
                update(i)
                .where(and_(i.c.id == incident_id, i.c.closed_at.is_(None)))
                .values(closed_by=who, closed_at=now)
            )
            row = conn.execute(select(i).where(i.c.id == incident_id)).first()
        return None if row is None else _incident(row._mapping)

    def incidents(self, *, open_only: bool = False, limit: int = 20) -> list[IncidentRecord]:
        i = schema.incidents
        query = select(i).order_by(i.c.opened_at.desc(), i.c.id.desc()).limit(limit)
        if open_only:
            query = query.where(i.c.closed_at.is_(None))
        with self._read() as conn:
            return [_incident(row._mapping) for row in conn.execute(query)]

    # -- audit --------------------------------------------------------------------------------

    def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], outcome: str, at: datetime
    ) -> None:
        """One line of the audit trail: who did what, with which parameters, and how it ended."""
        with self._write() as conn:
            conn.execute(
                insert(schema.audit).values(
                    at=at, actor=actor, action=action, detail=dict(detail), outcome=outcome
                )
            )

    def audit_entries(self, action_prefix: str | None = None, limit: int = 20) -> list[AuditEntry]:
        t = schema.audit
        query = select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        if action_prefix:
            query = query.where(t.c.action.startswith(action_prefix, autoescape=True))
        with self._read() as conn:
            return [
                AuditEntry(
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    detail=dict(row.detail or {}),
                    outcome=row.outcome,
                )
                for row in conn.execute(query)
            ]


_EVENTS_IN = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS nightshift_events_in (id varchar(128), minute bigint, "
    "status varchar(32), amount double precision, merchant_id varchar(128)) ON COMMIT DELETE ROWS"
)
_EVENTS_COPY = "COPY nightshift_events_in (id, minute, status, amount, merchant_id) FROM STDIN"
# New events go in; those that went in (ON CONFLICT skips the known ids) add to their buckets.
_EVENTS_MERGE = """
WITH new AS (
    INSERT INTO events (id, minute, status, amount, merchant_id)
    SELECT id, minute, status, amount, merchant_id FROM nightshift_events_in
    ON CONFLICT (id) DO NOTHING
    RETURNING minute, status
), added AS (
    INSERT INTO counts (minute, status, "count")
    SELECT minute, status, count(*) FROM new GROUP BY minute, status
    ON CONFLICT (minute, status) DO UPDATE SET "count" = counts."count" + excluded."count"
)
SELECT count(*) FROM new
"""


def _copy_events(conn: Connection, batch: FeedBatch) -> int:
    """PostgreSQL: the events COPYed into a temporary table (emptied at commit), then merged in
    one statement: six times the rows per second of INSERT … RETURNING in pages, and as
    race-free: a concurrent writer of the same id waits, then its row is skipped."""
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute(_EVENTS_IN)
        with cursor.copy(_EVENTS_COPY) as copy:
            for e in batch.events:
                copy.write_row((e.id, e.minute, e.status, e.amount, e.merchant_id))
        cursor.execute(_EVENTS_MERGE)
        (new,) = cursor.fetchone()
    return int(new)


class _AlertPlan:
    """Alert webhooks applied in memory, in order, then written with one statement per kind.

    Rows for one fingerprint merge in order (a later webhook's values win), exactly as the
    row-by-row updates they replace would leave them.
    """

    def __init__(self, known: dict[str, str], route: Routing | None) -> None:
        self.known = known
        self.route = route
        self.inserts: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.notices: list[outbox.Notice] = []

    def apply(self, group: AlertGroup, now: datetime) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for alert in group.alerts:
            old = self.known.get(alert.fingerprint)
            self.known[alert.fingerprint] = alert.status
            if old == alert.status:
                self._set(alert.fingerprint, last_received=now, annotations=dict(alert.annotations))
                continue
            values: dict[str, Any] = {
                "alertname": alert.alertname,
                "status": alert.status,
                "severity": alert.severity,
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "generator_url": alert.generator_url,
                "receiver": group.receiver,
                "group_key": group.group_key,
                "last_received": now,
                "changed_at": now,
            }
            if old is None:
                self.inserts[alert.fingerprint] = {
                    "fingerprint": alert.fingerprint,
                    "first_received": now,
                    "acked_by": None,
                    "acked_at": None,
                    **values,
                }
            else:
                if alert.status == "firing":
                    values.update(acked_by=None, acked_at=None)
                self._set(alert.fingerprint, **values)
            changes.append(AlertChange(alert.fingerprint, old, alert.status))
            self.history.append(
                {
                    "fingerprint": alert.fingerprint,
                    "status": alert.status,
                    "at": now,
                    "starts_at": alert.starts_at,
                    "ends_at": alert.ends_at,
                }
            )
            # A resolution nobody saw fire is history, not news.
            if self.route is not None and (old is not None or alert.status == "firing"):
                self.notices.append(
                    outbox.Notice(
                        subject_kind="alert",
                        subject=alert.fingerprint,
                        event=alert.status,
                        severity=alert.severity,
                        destinations=self.route(alert.severity),
                        now=now,
                        body={"group": group.group_key},
                    )
                )
        return changes

    def _set(self, fingerprint: str, **values: Any) -> None:
        row = self.inserts.get(fingerprint)
        if row is None:
            row = self.updates.setdefault(fingerprint, {})
        row.update(values)

    def write(self, conn: Connection, ids: list[int] | None) -> None:
        """Every row, in a statement per table (per shape of update); `ids`: reserved for the
        notifications (PostgreSQL), at least as many as there are."""
        a = schema.alerts
        bulk.insert_rows(conn, a, list(self.inserts.values()))
        # executemany needs one shape of row per statement: group the updates by their columns.
        shapes: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for fingerprint, values in self.updates.items():
            shapes[tuple(values)].append((fingerprint, values))
        for same in shapes.values():
            keys, rows = zip(*same, strict=True)
            bulk.update_rows(conn, a, "fingerprint", keys, rows)
        bulk.insert_rows(conn, schema.alert_history, self.history)
        if self.notices:
            told = outbox.told(self.notices)
            outbox.enqueue_many(conn, self.notices, None if ids is None else ids[:told])


def _alert(row: RowMapping) -> AlertRecord:
    return AlertRecord(
        fingerprint=row["fingerprint"],
        alertname=row["alertname"],
        status=row["status"],
        severity=row["severity"],
        labels=dict(row["labels"] or {}),
        annotations=dict(row["annotations"] or {}),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        generator_url=row["generator_url"],
        receiver=row["receiver"],
        group_key=row["group_key"],
        first_received=row["first_received"],
        last_received=row["last_received"],
        changed_at=row["changed_at"],
        acked_by=row["acked_by"],
        acked_at=row["acked_at"],
    )


def _anomaly(row: RowMapping) -> AnomalyRecord:
    return AnomalyRecord(
        key=row["key"],
        kind=row["kind"],
        metric=row["metric"],
        statuses=tuple(row["statuses"] or ()),
        start=row["start"],
        end=row["end"],
        detected_at=row["detected_at"],
        updated_at=row["updated_at"],
        severity=row["severity"],
        score=float(row["score"]),
        expected=float(row["expected"]),
        observed=float(row["observed"]),
        explanation_pt=row["explanation_pt"],
        explanation_en=row["explanation_en"],
        resolved=bool(row["resolved"]),
    )


def _incident(row: RowMapping) -> IncidentRecord:
    return IncidentRecord(
        id=int(row["id"]),
        title=row["title"],
        opened_by=row["opened_by"],
        opened_at=row["opened_at"],
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged write survives a power cut, not only a crashed process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


IDLE_PING = 1.0  # seconds a pooled connection may rest before it is pinged at checkout


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has rested IDLE_PING seconds or more.

    `pool_pre_ping` pings at every checkout: a round trip per transaction, about 0.3 ms of CPU on
    each side here, 10-15% of a webhook under load. A connection used within the last second is
    all but surely alive; if it is not (the server restarted in that second), the statement
    fails, SQLAlchemy sees the disconnect and empties the pool, and the caller gets a
    StorageError once (a group of webhooks is then retried one by one, on a new connection).
    """

    def rested(_dbapi: Any, record: Any, *_: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("rested_since")
        if since is not None and time.monotonic() - since < IDLE_PING:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error
        if not alive:
            raise DisconnectionError("the connection did not answer a ping")

    event.listen(engine, "connect", rested)
    event.listen(engine, "checkin", rested)
    event.listen(engine, "checkout", checkout)


def open_store(url: str, *, migrate_schema: bool = True) -> Store:
    """Open (and by default migrate) the database at a SQLAlchemy URL."""
    try:
        if url.startswith("sqlite"):
            memory = url in ("sqlite://", "sqlite:///:memory:")
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                poolclass=StaticPool if memory else None,
            )
            if not memory:
                event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_size=10, max_overflow=10)
            _ping_when_idle(engine)
    except (ArgumentError, ImportError, SQLAlchemyError) as error:
        raise StorageError(f"cannot use database URL: {error}") from None
    if migrate_schema:
        try:
            migrate(engine, datetime.now(UTC))
        except StorageError:
            engine.dispose()
            raise
        except SQLAlchemyError as error:
            engine.dispose()
            reason = str(error.orig if hasattr(error, "orig") else error).splitlines()[0]
            raise StorageError(f"cannot open the database: {reason}") from None
    return Store(engine)
