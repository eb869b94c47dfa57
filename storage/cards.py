"""Cards: the one message each incident has in each chat, and the roll-up of a flood.

A card is due while `wanted > shown`: every change to its incident adds one to `wanted`, and the
courier that posts or edits the message records the `wanted` it rendered as `shown`. However
many changes come between two edits, they make one edit; and a card is a row, so it stands as
it was through a restart. A card with no `message_ref` has not been posted yet: posting it is a
new message (the phone rings); every later change edits it. Under a flood, a card may instead
be told inside a roll-up card ("N more incidents"), which is then the message to edit.

Cards are leased like outbox deliveries (`claimed_until`; `FOR UPDATE SKIP LOCKED` on
PostgreSQL), so two replicas never send the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, func, insert, or_, select, update

from storage import schema
from storage.database import Database


@dataclass(frozen=True, slots=True)
class Due:
    """A card a courier leased: what to render, and whether it is a post or an edit."""

    id: int
    kind: str  # incident | rollup
    incident_id: int | None
    destination: str
    message_ref: str | None
    wanted: int
    resolved_told: bool
    attempts: int


def reach(conn: Connection, incident: int, destinations: Sequence[str], now: datetime) -> None:
    """A card at each destination the incident does not have one at yet."""
    c = schema.cards
    if not destinations:
        return
    have = {
        str(d) for (d,) in conn.execute(select(c.c.destination).where(c.c.incident_id == incident))
    }
    rows = [
        {
            "kind": "incident",
            "incident_id": incident,
            "destination": d,
            "wanted": 1,
            "shown": 0,
            "resolved_told": False,
            "state": "active",
            "attempts": 0,
            "not_before": now,
            "created_at": now,
        }
        for d in dict.fromkeys(destinations)
        if d not in have
    ]
    if rows:
        conn.execute(insert(c), rows)


def bump(conn: Connection, incidents: Sequence[int], now: datetime) -> None:
    """The incidents changed: their cards (or the roll-ups telling them) are due again."""
    c = schema.cards
    if not incidents:
        return
    ids = list(incidents)
    conn.execute(
        update(c)
        .where(c.c.incident_id.in_(ids), c.c.rollup_id.is_(None), c.c.state == "active")
        .values(wanted=c.c.wanted + 1)
    )
    rolled = select(c.c.rollup_id).where(c.c.incident_id.in_(ids), c.c.rollup_id.is_not(None))
    conn.execute(update(c).where(c.c.id.in_(rolled)).values(wanted=c.c.wanted + 1))


def _due_at(destination: str, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The cards of `destination` with something to show now and no live lease on them."""
    c = schema.cards
    return (
        c.c.destination == destination,
        c.c.wanted > c.c.shown,
        c.c.state == "active",
        c.c.not_before <= now,
        or_(c.c.claimed_until.is_(None), c.c.claimed_until < now),
    )


def claim(
    conn: Connection,
    destination: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    holder: str | None = None,
) -> list[Due]:
    """Lease up to `limit` due cards of one destination to `holder`: first posts first, then
    edits."""
    c = schema.cards
    query = (
        select(
            c.c.id,
            c.c.kind,
            c.c.incident_id,
            c.c.message_ref,
            c.c.wanted,
            c.c.resolved_told,
            c.c.attempts,
        )
        .where(*_due_at(destination, now))
        .order_by(c.c.message_ref.is_not(None), c.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(query).all()
    if not rows:
        return []
    conn.execute(
        update(c)
        .where(c.c.id.in_([r.id for r in rows]))
        .values(claimed_until=now + lease, claimed_by=holder)
    )
    return [
        Due(
            id=int(r.id),
            kind=str(r.kind),
            incident_id=None if r.incident_id is None else int(r.incident_id),
            destination=destination,
            message_ref=None if r.message_ref is None else str(r.message_ref),
            wanted=int(r.wanted),
            resolved_told=bool(r.resolved_told),
            attempts=int(r.attempts),
        )
        for r in rows
    ]


def shown(
    conn: Connection,
    card: Due,
    ref: str,
    now: datetime,
    next_at: datetime,
    *,
    resolved_told: bool,
) -> None:
    """The message `ref` now shows the card as of `card.wanted`; the next edit waits for
    `next_at`."""
    c = schema.cards
    conn.execute(
        update(c)
        .where(c.c.id == card.id)
        .values(
            message_ref=ref,
            shown=card.wanted,
            posted_at=func.coalesce(c.c.posted_at, now),
            resolved_told=resolved_told,
            not_before=next_at,
            claimed_until=None,
            attempts=0,
            error=None,
        )
    )


def retry(conn: Connection, card: Due, error: str, at: datetime) -> None:
    c = schema.cards
    conn.execute(
        update(c)
        .where(c.c.id == card.id)
        .values(attempts=c.c.attempts + 1, not_before=at, claimed_until=None, error=error[:500])
    )


def failed(conn: Connection, card: Due, error: str) -> None:
    """Given up: the platform will not take this message (chat gone, bot removed)."""
    c = schema.cards
    conn.execute(
        update(c)
        .where(c.c.id == card.id)
        .values(state="failed", claimed_until=None, attempts=c.c.attempts + 1, error=error[:500])
    )


def repost(conn: Connection, card: Due) -> None:
    """The message can no longer be edited (deleted in the chat): post it anew."""
    c = schema.cards
    conn.execute(update(c).where(c.c.id == card.id).values(message_ref=None, claimed_until=None))


def posts_since(conn: Connection, destination: str, since: datetime) -> int:
    """Cards (incidents and roll-ups) first posted at a destination since a time."""
    c = schema.cards
    return int(
        conn.execute(
            select(func.count()).where(c.c.destination == destination, c.c.posted_at >= since)
        ).scalar_one()
    )


def roll(conn: Connection, card: Due, now: datetime, since: datetime) -> Due:
    """Tell the card inside the destination's roll-up of the flood (the one started since
    `since`, else a new one); returns the roll-up, due."""
    c = schema.cards
    current = conn.execute(
        select(c.c.id)
        .where(
            c.c.destination == card.destination,
            c.c.kind == "rollup",
            c.c.created_at >= since,
            c.c.state == "active",
        )
        .order_by(c.c.id.desc())
        .limit(1)
    ).scalar()
    if current is None:
        current = conn.execute(
            insert(c)
            .values(
                kind="rollup",
                incident_id=None,
                destination=card.destination,
                wanted=0,
                shown=0,
                resolved_told=False,
                state="active",
                attempts=0,
                not_before=now,
                created_at=now,
            )
            .returning(c.c.id)
        ).scalar_one()
    conn.execute(
        update(c)
        .where(c.c.id == card.id)
        .values(rollup_id=current, shown=card.wanted, claimed_until=None)
    )
    conn.execute(update(c).where(c.c.id == current).values(wanted=c.c.wanted + 1))
    row = conn.execute(select(c).where(c.c.id == current)).one()
    return Due(
        id=int(row.id),
        kind="rollup",
        incident_id=None,
        destination=card.destination,
        message_ref=None if row.message_ref is None else str(row.message_ref),
        wanted=int(row.wanted),
        resolved_told=False,
        attempts=int(row.attempts),
    )


def rolled(conn: Connection, rollup_id: int) -> list[int]:
    """The incidents a roll-up tells, in the order they came."""
    c = schema.cards
    return [
        int(i)
        for (i,) in conn.execute(
            select(c.c.incident_id).where(c.c.rollup_id == rollup_id).order_by(c.c.id)
        )
    ]


def destinations(conn: Connection, incident: int) -> list[str]:
    """Where an incident has a card (posted or not)."""
    c = schema.cards
    rows = conn.execute(select(c.c.destination).where(c.c.incident_id == incident).distinct())
    return sorted(str(d) for (d,) in rows)


def anything_due(conn: Connection, destination: str, now: datetime) -> bool:
    """Whether a due card or a due outbox delivery waits at the destination."""
    c, d = schema.cards, schema.deliveries
    card = select(c.c.id).where(*_due_at(destination, now)).limit(1)
    delivery = (
        select(d.c.id)
        .where(
            d.c.status == "pending",
            d.c.destination == destination,
            d.c.next_at <= now,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        .limit(1)
    )
    return conn.execute(card).first() is not None or conn.execute(delivery).first() is not None


def due_destinations(conn: Connection) -> list[str]:
    """Destinations with a due card or a pending outbox delivery."""
    c, d = schema.cards, schema.deliveries
    found = {
        str(x)
        for (x,) in conn.execute(
            select(c.c.destination).where(c.c.wanted > c.c.shown, c.c.state == "active").distinct()
        )
    }
    found |= {
        str(x)
        for (x,) in conn.execute(select(d.c.destination).where(d.c.status == "pending").distinct())
    }
    return sorted(found)


def release(conn: Connection, holder: str | None = None) -> int:
    """The leases `holder` holds let go, or every lease (None); returns how many there were.
    At start-up whoever held them is gone: on SQLite, the one process per database file; on
    PostgreSQL, this instance's previous run."""
    c, d = schema.cards, schema.deliveries
    mine = [] if holder is None else [c.c.claimed_by == holder]
    held = conn.execute(
        update(c).where(c.c.claimed_until.is_not(None), *mine).values(claimed_until=None)
    )
    mine = [] if holder is None else [d.c.claimed_by == holder]
    also = conn.execute(
        update(d)
        .where(and_(d.c.status == "pending", d.c.claimed_until.is_not(None), *mine))
        .values(claimed_until=None)
    )
    return int(held.rowcount or 0) + int(also.rowcount or 0)


def counts(conn: Connection) -> dict[str, int]:
    """Cards by state: due (waiting to be posted or edited), told, failed."""
    c = schema.cards
    rows = conn.execute(
        select(c.c.state, (c.c.wanted > c.c.shown).label("due"), func.count()).group_by(
            c.c.state, "due"
        )
    )
    out: dict[str, int] = {}
    for state, is_due, n in rows:
        name = "failed" if state == "failed" else ("due" if is_due else "told")
        out[name] = out.get(name, 0) + int(n)
    return out


class Cards(Database):
    """The store's part for cards: what a courier leases, posts, edits and rolls up."""

    def claim_cards(
        self,
        destination: str,
        now: datetime,
        lease: timedelta,
        limit: int = 20,
        holder: str | None = None,
    ) -> list[Due]:
        """Due cards of one destination leased to the caller (`holder`, the instance's id):
        first posts, then edits."""
        with self._write() as conn:
            return claim(conn, destination, now, lease, limit, holder)

    def card_shown(
        self, card: Due, ref: str, now: datetime, next_at: datetime, *, resolved_told: bool
    ) -> None:
        with self._write() as conn:
            shown(conn, card, ref, now, next_at, resolved_told=resolved_told)

    def card_retry(self, card: Due, error: str, at: datetime) -> None:
        with self._write() as conn:
            retry(conn, card, error, at)

    def card_failed(self, card: Due, error: str) -> None:
        with self._write() as conn:
            failed(conn, card, error)

    def card_repost(self, card: Due) -> None:
        with self._write() as conn:
            repost(conn, card)

    def card_posts_since(self, destination: str, since: datetime) -> int:
        with self._read() as conn:
            return posts_since(conn, destination, since)

    def roll_card(self, card: Due, now: datetime, since: datetime) -> Due:
        """Tell the card in the destination's roll-up instead of a message of its own."""
        with self._write() as conn:
            return roll(conn, card, now, since)

    def rolled(self, rollup_id: int) -> list[int]:
        with self._read() as conn:
            return rolled(conn, rollup_id)

    def card_destinations(self, incident_id: int) -> list[str]:
        with self._read() as conn:
            return destinations(conn, incident_id)

    def card_counts(self) -> dict[str, int]:
        with self._read() as conn:
            return counts(conn)

    def anything_due(self, destination: str, now: datetime) -> bool:
        """Whether a card or an outbox message waits at a destination (a read, no lock)."""
        with self._read() as conn:
            return anything_due(conn, destination, now)

    def due_destinations(self) -> list[str]:
        """Destinations with a card or an outbox message waiting (a courier is needed there)."""
        with self._read() as conn:
            return due_destinations(conn)

    def release_claims(self, holder: str | None = None) -> int:
        """Let go of the leases `holder` holds, or of every lease (SQLite at start-up: its one
        process is this one)."""
        with self._write() as conn:
            return release(conn, holder)
