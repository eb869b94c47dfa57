"""The outbox: notifications and their deliveries, claimed by one worker at a time.

A notification is written in the transaction of the change it tells of (`enqueue`,
`enqueue_many`, called by the alert and finding writes); a delivery (one per destination) is
claimed with a lease, sent, and marked sent with the platform's message id. A crashed worker's
lease expires and another claims the row; replicas never claim the same row (how a lease is
taken is the dialect's `claim_deliveries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, func, select

from storage import schema
from storage.database import Database
from storage.dialects import Dialect
from storage.records import Delivery as Delivery  # the outbox's record, imported from here too

_CLAIM_CHUNK = 500  # deliveries a lease takes at most: a transaction of its own each


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification to write: what it tells of, and who is to be told."""

    subject_kind: str
    subject: str
    event: str
    severity: str
    destinations: Sequence[str]
    now: datetime
    body: Mapping[str, Any] | None = None


def enqueue(conn: Connection, dialect: Dialect, notice: Notice) -> int | None:
    """A notification and its deliveries; None (nothing written) when nobody is to be told."""
    return enqueue_many(conn, dialect, [notice])[0]


def told(notices: Sequence[Notice]) -> int:
    """How many of the notices have someone to tell (the notifications `enqueue_many` writes)."""
    return sum(1 for notice in notices if notice.destinations)


def enqueue_many(
    conn: Connection, dialect: Dialect, notices: Sequence[Notice], ids: Sequence[int] | None = None
) -> list[int | None]:
    """Several notifications in two statements (one per table), ids in the notices' order;
    None for a notice nobody is to be told (nothing written for it). `ids`: reserved with
    the dialect's `reserve_query` for the `told(notices)` notifications."""
    told = [notice for notice in notices if notice.destinations]
    if not told:
        return [None] * len(notices)
    n = schema.notifications
    rows = [
        {
            "subject_kind": t.subject_kind,
            "subject": t.subject,
            "event": t.event,
            "severity": t.severity,
            "body": dict(t.body or {}),
            "created_at": t.now,
        }
        for t in told
    ]
    new_ids = dialect.insert_returning_ids(conn, n, rows, ids)
    dialect.insert_rows(
        conn,
        schema.deliveries,
        [
            {
                "notification_id": notification_id,
                "destination": d,
                "status": "pending",
                "attempts": 0,
                "next_at": t.now,
            }
            for t, notification_id in zip(told, new_ids, strict=True)
            for d in dict.fromkeys(t.destinations)
        ],
    )
    by_notice = iter(new_ids)
    return [next(by_notice) if notice.destinations else None for notice in notices]


def exists(conn: Connection, subject_kind: str, subject: str) -> bool:
    n = schema.notifications
    found = conn.execute(
        select(n.c.id).where(n.c.subject_kind == subject_kind, n.c.subject == subject).limit(1)
    ).first()
    return found is not None


class Outbox(Database):
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
        notice = Notice(subject_kind, subject, event, severity, destinations, now, body)
        with self._write() as conn:
            if once and exists(conn, subject_kind, subject):
                return None
            return enqueue(conn, self._dialect, notice)

    def claim_deliveries(
        self,
        now: datetime,
        lease: timedelta,
        limit: int = 100,
        destination: str | None = None,
        holder: str | None = None,
    ) -> list[Delivery]:
        """Due deliveries (of one destination, or all) leased to the caller (`holder`, the
        instance's id); another replica cannot claim them meanwhile. Leased in transactions of
        at most 500, so a backlog does not hold the write lock (and the webhooks behind it) for
        long."""
        out: list[Delivery] = []
        write = partial(self._write, pipelined=True)
        while len(out) < limit:
            want = min(_CLAIM_CHUNK, limit - len(out))
            got = self._dialect.claim_deliveries(
                write, self._read, now, lease, want, destination, holder
            )
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
        """Record how claimed deliveries went: sent, merged (into a digest), failed, or
        (retry_at) due again."""
        d, dialect, mark = schema.deliveries, self._dialect, self._dialect.mark
        with self._write(pipelined=True) as conn:
            if retry_at is not None:
                sets = f"status = {mark}, next_at = {mark}, error = {mark}"
                values: tuple[Any, ...] = (
                    "pending",
                    dialect.bound(conn, d, "next_at", retry_at),
                    error,
                )
            else:
                sets = f"status = {mark}, sent_at = {mark}, message_ref = {mark}, error = {mark}"
                values = (status, dialect.bound(conn, d, "sent_at", now), ref, error)
            for start in range(0, len(ids), 2000):
                where, chosen = dialect.one_of("id", [int(i) for i in ids[start : start + 2000]])
                conn.exec_driver_sql(
                    f"UPDATE deliveries SET claimed_until = NULL, attempts = attempts + 1, {sets} "  # noqa: S608
                    f"WHERE {where}",
                    values + chosen,
                )

    def undelivered(self, subject_kind: str, subject: str) -> list[str]:
        """Destinations a notification has not reached yet (empty: delivered everywhere)."""
        d, n = schema.deliveries, schema.notifications
        with self._read() as conn:
            rows = conn.execute(
                select(d.c.destination)
                .join(n, n.c.id == d.c.notification_id)
                .where(
                    n.c.subject_kind == subject_kind, n.c.subject == subject, d.c.status != "sent"
                )
                .distinct()
            )
            return sorted(str(r[0]) for r in rows)

    def outbox_counts(self) -> dict[str, int]:
        """Deliveries by status: pending, sent, failed, merged."""
        d = schema.deliveries
        with self._read() as conn:
            rows = conn.execute(select(d.c.status, func.count()).group_by(d.c.status))
            return {str(s): int(c) for s, c in rows}
