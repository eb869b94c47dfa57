"""The outbox: notifications and their deliveries, claimed by one worker at a time.

A notification is written in the transaction of the change it tells of; a delivery (one per
destination) is claimed with a lease, sent, and marked sent with the platform's message id.
A crashed worker's lease expires and another claims the row. On PostgreSQL claims use
`FOR UPDATE SKIP LOCKED`, so replicas never claim the same row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, and_, func, select

from storage import bulk, schema


@dataclass(frozen=True)
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
    stored_body: Any = field(repr=False)  # as the driver returned it
    read_body: Callable[[Any], Any] | None = field(repr=False, compare=False)

    @cached_property
    def body(self) -> dict[str, Any]:
        """The notification's body, decoded when first asked for: only a reply's is read, and
        a storm claims thousands of deliveries a pass."""
        raw = self.stored_body
        return dict((raw if self.read_body is None else self.read_body(raw)) or {})


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


def told(notices: Sequence[Notice]) -> int:
    """How many of the notices have someone to tell (the notifications `enqueue_many` writes)."""
    return sum(1 for notice in notices if notice.destinations)


def enqueue_many(
    conn: Connection, notices: Sequence[Notice], ids: Sequence[int] | None = None
) -> list[int | None]:
    """Several notifications in two statements (one per table), ids in the notices' order;
    None for a notice nobody is to be told (nothing written for it). `ids`: reserved with
    `bulk.reserve_ids` for the `told(notices)` notifications."""
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
    new_ids = bulk.insert_returning_ids(conn, n, rows, ids)
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


_NOTIFICATION = ("id", "subject_kind", "subject", "event", "severity", "body")
Leased = tuple[int, int, str, int]  # a claimed delivery: id, notification_id, destination, attempts
LEASED = ("id", "notification_id", "destination", "attempts")


_DUE = (
    "SELECT {columns} FROM deliveries WHERE status = 'pending' AND next_at <= {m} "
    "AND (claimed_until IS NULL OR claimed_until < {m}){where} ORDER BY id LIMIT {m}"
)


def _due(columns: str, mark: str, destination: str | None) -> tuple[str, tuple[Any, ...]]:
    """The due-deliveries query (all, or one destination's) and the destination parameter."""
    if destination is None:
        return _DUE.format(columns=columns, m=mark, where=""), ()
    return _DUE.format(columns=columns, m=mark, where=f" AND destination = {mark}"), (destination,)


def lease(
    conn: Connection, now: datetime, term: timedelta, limit: int, destination: str | None = None
) -> list[Leased]:
    """SQLite: lease due deliveries, oldest first, to the caller until now + term (see
    `claimed`). Plain SQL at the driver: a pass under a storm claims thousands of rows, and
    this runs under the write lock.

    The transaction takes the write lock first (a write that changes nothing), then one SELECT
    returns all the rows as a single JSON array and one UPDATE leases them. Python's sqlite3
    hands the interpreter lock back and forth for every row it fetches; under load each
    handover can wait, and this way there is one fetch instead of hundreds while the webhooks
    wait for the lock.
    """
    d = schema.deliveries
    at = bulk.bound(conn, d, "next_at", now)
    until = bulk.bound(conn, d, "claimed_until", now + term)
    conn.exec_driver_sql("UPDATE deliveries SET id = id WHERE 0")
    columns = ", ".join(LEASED)
    due, where = _due(columns, "?", destination)
    found = conn.exec_driver_sql(
        f"SELECT json_group_array(json_array({columns})) FROM ({due})",  # noqa: S608
        (at, at, *where, limit),
    ).scalar_one()
    rows = json.loads(found)
    if rows:
        conn.exec_driver_sql(
            "UPDATE deliveries SET claimed_until = ? WHERE id IN (SELECT value FROM json_each(?))",
            (until, json.dumps([r[0] for r in rows])),
        )
    return sorted((int(i), int(n), str(dest), int(a)) for i, n, dest, a in rows)


def claimed(conn: Connection, leased: Sequence[Leased]) -> list[Delivery]:
    """SQLite: the leased deliveries with what their notifications say, read after the lease
    is committed (a notification never changes once written), as one JSON array for the reason
    `lease` gives."""
    names = ", ".join(_NOTIFICATION)
    found = conn.exec_driver_sql(
        f"SELECT json_group_array(json_array({names})) FROM notifications "  # noqa: S608
        "WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list({notification_id for _, notification_id, _, _ in leased})),),
    ).scalar_one()
    notes = {int(row[0]): row[1:] for row in json.loads(found)}
    (read_body,) = bulk.readers(conn, schema.notifications, ["body"])
    return _deliveries([(*lease, *notes[lease[1]]) for lease in leased], read_body)


def lease_claimed(
    conn: Connection, now: datetime, term: timedelta, limit: int, destination: str | None = None
) -> list[Delivery]:
    """PostgreSQL: `lease` and `claimed` in one statement, which in a pipelined transaction
    (`bulk.pipelined`) is one round trip. One UPDATE takes the lease, the due rows locked with
    SKIP LOCKED so two replicas never take the same one, and returns the rows joined with their
    notifications. A body comes as text, decoded only if it is read (a storm's deliveries
    merged into a digest never are)."""
    d = schema.deliveries
    at = bulk.bound(conn, d, "next_at", now)
    until = bulk.bound(conn, d, "claimed_until", now + term)
    notes = ", ".join(f"n.{c}" for c in _NOTIFICATION[1:-1])
    due, where = _due("id", "%s", destination)
    returned = ", ".join(LEASED)
    sql = (
        f"WITH leased AS (UPDATE deliveries SET claimed_until = %s WHERE id IN ({due} "  # noqa: S608
        f"FOR UPDATE SKIP LOCKED) RETURNING {returned}) "
        f"SELECT {', '.join(f'l.{c}' for c in LEASED)}, {notes}, n.body::text "
        "FROM leased AS l JOIN notifications AS n ON n.id = l.notification_id ORDER BY l.id"
    )
    (rows,) = bulk.fetch(conn, bulk.Query(sql, (until, at, at, *where, limit)))
    return _deliveries(rows, json.loads)


def _deliveries(
    rows: Iterable[Sequence[Any]], read_body: Callable[[Any], Any] | None
) -> list[Delivery]:
    """Deliveries from rows of the LEASED columns, then the notification's (but its id)."""
    return [
        Delivery(
            id=int(delivery_id),
            notification_id=int(notification_id),
            destination=str(destination),
            attempts=int(attempts),
            subject_kind=str(kind),
            subject=str(subject),
            event=str(event),
            severity=str(severity),
            stored_body=body,
            read_body=read_body,
        )
        for (
            delivery_id,
            notification_id,
            destination,
            attempts,
            kind,
            subject,
            event,
            severity,
            body,
        ) in rows
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
    mark = bulk.placeholder(conn)
    if retry_at is not None:
        sets = f"status = {mark}, next_at = {mark}, error = {mark}"
        values: tuple[Any, ...] = ("pending", bulk.bound(conn, d, "next_at", retry_at), error)
    else:
        sets = f"status = {mark}, sent_at = {mark}, message_ref = {mark}, error = {mark}"
        values = (status, bulk.bound(conn, d, "sent_at", now), ref, error)
    for start in range(0, len(ids), 2000):
        where, chosen = bulk.one_of(conn, "id", [int(i) for i in ids[start : start + 2000]])
        conn.exec_driver_sql(
            f"UPDATE deliveries SET claimed_until = NULL, attempts = attempts + 1, {sets} "  # noqa: S608
            f"WHERE {where}",
            values + chosen,
        )


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
