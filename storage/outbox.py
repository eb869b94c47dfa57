"""The outbox: notifications and their deliveries, claimed by one worker at a time.

A notification is written in the transaction of the change it tells of; a delivery (one per
destination) is claimed with a lease, sent, and marked sent with the platform's message id.
A crashed worker's lease expires and another claims the row. On PostgreSQL claims use
`FOR UPDATE SKIP LOCKED`, so replicas never claim the same row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from storage import bulk, schema


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification due at one destination, as a worker claimed it."""

    id: int
    notification_id: int
    destination: str
    attempts: int
    subject_kind: str
    subject: str
    event: str
    severity: str
    body: dict[str, Any]
    created_at: datetime


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


def enqueue(
    conn: Connection,
    *,
    subject_kind: str,
    subject: str,
    event: str,
    severity: str,
    destinations: Sequence[str],
    now: datetime,
    body: Mapping[str, Any] | None = None,
) -> int | None:
    """A notification and its deliveries; None (nothing written) when nobody is to be told."""
    notice = Notice(subject_kind, subject, event, severity, destinations, now, body)
    return enqueue_many(conn, [notice])[0]


def enqueue_many(conn: Connection, notices: Sequence[Notice]) -> list[int | None]:
    """Several notifications in two statements (one per table), ids in the notices' order;
    None for a notice nobody is to be told (nothing written for it)."""
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
    result = conn.execute(insert(n).returning(n.c.id, sort_by_parameter_order=True), rows)
    new_ids = [int(i) for i in result.scalars()]
    bulk.insert_rows(
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


def claim(
    conn: Connection, now: datetime, lease: timedelta, limit: int, postgres: bool
) -> list[Delivery]:
    """Due deliveries, oldest first, leased to the caller until now + lease."""
    d, n = schema.deliveries, schema.notifications
    due = (
        select(d.c.id)
        .where(
            d.c.status == "pending",
            d.c.next_at <= now,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        .order_by(d.c.id)
        .limit(limit)
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    ids = [int(i) for i in conn.execute(due).scalars()]
    if not ids:
        return []
    conn.execute(update(d).where(d.c.id.in_(ids)).values(claimed_until=now + lease))
    rows = conn.execute(
        select(
            d.c.id,
            d.c.notification_id,
            d.c.destination,
            d.c.attempts,
            n.c.subject_kind,
            n.c.subject,
            n.c.event,
            n.c.severity,
            n.c.body,
            n.c.created_at,
        )
        .join(n, n.c.id == d.c.notification_id)
        .where(d.c.id.in_(ids))
        .order_by(d.c.id)
    )
    return [
        Delivery(
            id=int(r.id),
            notification_id=int(r.notification_id),
            destination=r.destination,
            attempts=int(r.attempts),
            subject_kind=r.subject_kind,
            subject=r.subject,
            event=r.event,
            severity=r.severity,
            body=dict(r.body or {}),
            created_at=r.created_at,
        )
        for r in rows
    ]


def finish(
    conn: Connection,
    ids: Sequence[int],
    status: str,
    now: datetime,
    *,
    ref: str | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Record how a claimed delivery went: sent, merged (into a digest), failed, or retry later."""
    d = schema.deliveries
    values: dict[str, Any] = {"claimed_until": None, "attempts": d.c.attempts + 1}
    if retry_at is not None:
        values.update(status="pending", next_at=retry_at, error=error)
    else:
        values.update(status=status, sent_at=now, message_ref=ref, error=error)
    conn.execute(update(d).where(d.c.id.in_(list(ids))).values(**values))


def message_ref(conn: Connection, subject_kind: str, subject: str, destination: str) -> str | None:
    """The platform id of the first message posted about a subject at a destination."""
    return message_refs(conn, subject_kind, [subject], destination).get(subject)


def message_refs(
    conn: Connection, subject_kind: str, subjects: Sequence[str], destination: str
) -> dict[str, str]:
    """`message_ref` of many subjects in one query: subject → ref, for those that have one."""
    d, n = schema.deliveries, schema.notifications
    refs: dict[str, str] = {}
    for start in range(0, len(subjects), 2000):
        rows = conn.execute(
            select(n.c.subject, d.c.message_ref)
            .join(n, n.c.id == d.c.notification_id)
            .where(
                n.c.subject_kind == subject_kind,
                n.c.subject.in_(subjects[start : start + 2000]),
                d.c.destination == destination,
                d.c.status == "sent",  # not a digest: a resolution must not overwrite one
                d.c.message_ref.is_not(None),
            )
            .order_by(d.c.id)
        )
        for subject, ref in rows:
            refs.setdefault(str(subject), str(ref))
    return refs


def destinations_told(conn: Connection, subject_kind: str, subject: str) -> list[str]:
    """Every destination that holds a message about the subject (for an ack's edits)."""
    d, n = schema.deliveries, schema.notifications
    rows = conn.execute(
        select(d.c.destination)
        .join(n, n.c.id == d.c.notification_id)
        .where(
            n.c.subject_kind == subject_kind,
            n.c.subject == subject,
            d.c.status == "sent",
        )
        .distinct()
    )
    return sorted(str(r[0]) for r in rows)


def counts(conn: Connection) -> dict[str, int]:
    """Deliveries by status: pending, sent, failed, merged."""
    d = schema.deliveries
    rows = conn.execute(select(d.c.status, func.count()).group_by(d.c.status))
    return {str(s): int(c) for s, c in rows}


def pending_for(conn: Connection, destination: str, now: datetime) -> int:
    d = schema.deliveries
    return int(
        conn.execute(
            select(func.count()).where(
                and_(d.c.destination == destination, d.c.status == "pending", d.c.next_at <= now)
            )
        ).scalar_one()
    )


def exists(conn: Connection, subject_kind: str, subject: str) -> bool:
    n = schema.notifications
    found = conn.execute(
        select(n.c.id).where(n.c.subject_kind == subject_kind, n.c.subject == subject).limit(1)
    ).first()
    return found is not None


def undelivered(conn: Connection, subject_kind: str, subject: str) -> list[str]:
    """Destinations of the subject's notifications whose delivery is not (yet) sent."""
    d, n = schema.deliveries, schema.notifications
    rows = conn.execute(
        select(d.c.destination)
        .join(n, n.c.id == d.c.notification_id)
        .where(n.c.subject_kind == subject_kind, n.c.subject == subject, d.c.status != "sent")
        .distinct()
    )
    return sorted(str(r[0]) for r in rows)
