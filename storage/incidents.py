"""Incidents: what belongs to one fire, its timeline, and what the operator did about it.

An incident joins alerts and detector findings (the correlator, `storage/correlation.py`,
decides which), or is opened by hand. It has a severity (its worst member's), a state (open,
resolved: resolved, closed by hand, or judged a false alarm), who acknowledged or silenced it,
how often it was escalated, and a timeline of all of that. `Incidents` is the store's part for
them; the functions below work inside a caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from storage import cards, outbox, schema
from storage.correlation import INBOX_BATCH, Correlation, Joined, Route, apply, correlate, plan
from storage.dialects import Dialect
from storage.records import (
    SEVERITY_RANK,
    AlertRecord,
    IncidentRecord,
    IncidentView,
    MemberGroup,
    TimelineEntry,
    alert_from_row,
    incident_from_row,
    worst,
)
from storage.state import State

# Labels that tell instances of one alert apart, in the order a card names their range; a lone
# alert names only where it runs (its service is in its summary and labels already).
SPREAD_LABELS = ("instance", "pod", "host", "node", "service", "job")
_WHERE = SPREAD_LABELS[:4]


def get(conn: Connection, incident_id: int) -> IncidentRecord | None:
    i = schema.incidents
    row = conn.execute(select(i).where(i.c.id == incident_id)).first()
    return None if row is None else incident_from_row(row._mapping)


def listed(
    conn: Connection,
    *,
    open_only: bool = False,
    since: datetime | None = None,
    limit: int = 50,
) -> list[IncidentRecord]:
    """Incidents newest first; `since`: opened, or still open, or closed since then."""
    i = schema.incidents
    query = select(i).order_by(i.c.opened_at.desc(), i.c.id.desc()).limit(limit)
    if open_only:
        query = query.where(i.c.state == "open")
    if since is not None:
        query = query.where(
            or_(i.c.state == "open", i.c.opened_at >= since, i.c.closed_at >= since)
        )
    return [incident_from_row(row._mapping) for row in conn.execute(query)]


def of_member(conn: Connection, kind: str, key: str) -> IncidentRecord | None:
    """The incident an alert (fingerprint) or finding (key) belongs to: the open one, else the
    newest."""
    i, m = schema.incidents, schema.incident_members
    row = conn.execute(
        select(i)
        .join(m, m.c.incident_id == i.c.id)
        .where(m.c.kind == kind, m.c.key == key)
        .order_by((i.c.state == "open").desc(), i.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else incident_from_row(row._mapping)


def membership(conn: Connection, kind: str, keys: Sequence[str]) -> dict[str, int]:
    """key → the incident each of these alerts or findings belongs to (the newest)."""
    m = schema.incident_members
    out: dict[str, int] = {}
    for start in range(0, len(keys), 2000):
        rows = conn.execute(
            select(m.c.key, m.c.incident_id)
            .where(m.c.kind == kind, m.c.key.in_(keys[start : start + 2000]))
            .order_by(m.c.incident_id)
        )
        out.update((str(k), int(i)) for k, i in rows)
    return out


def timeline(conn: Connection, incident_id: int) -> list[TimelineEntry]:
    e = schema.incident_events
    rows = conn.execute(
        select(e.c.at, e.c.event, e.c.actor, e.c.detail)
        .where(e.c.incident_id == incident_id)
        .order_by(e.c.at, e.c.id)
    )
    return [TimelineEntry(at, str(ev), str(actor), dict(d or {})) for at, ev, actor, d in rows]


def events_since(conn: Connection, event: str, since: datetime) -> list[tuple[int, datetime]]:
    """(incident, when) of every timeline entry of a kind since a time (escalations, ...)."""
    e = schema.incident_events
    rows = conn.execute(
        select(e.c.incident_id, e.c.at).where(e.c.event == event, e.c.at >= since).order_by(e.c.at)
    )
    return [(int(i), at) for i, at in rows]


def view(
    conn: Connection, incident: IncidentRecord, *, with_timeline: bool = False
) -> IncidentView:
    """The incident with its members grouped by name, its impact and (optionally) timeline."""
    m, a, n = schema.incident_members, schema.alerts, schema.anomalies
    alert_rows = conn.execute(
        select(m.c.name, m.c.severity, m.c.status, a.c.labels, a.c.annotations)
        .join(a, a.c.fingerprint == m.c.key, isouter=True)
        .where(m.c.incident_id == incident.id, m.c.kind == "alert")
        .order_by(m.c.id)
    ).all()
    finding_rows = conn.execute(
        select(
            m.c.key,
            m.c.name,
            m.c.severity,
            m.c.status,
            n.c.explanation_pt,
            n.c.explanation_en,
            n.c.approvals_lost,
        )
        .join(n, n.c.key == m.c.key, isouter=True)
        .where(m.c.incident_id == incident.id, m.c.kind == "finding")
        .order_by(m.c.id)
    ).all()
    groups: list[MemberGroup] = []
    by_name: dict[str, list[Any]] = defaultdict(list)
    for row in alert_rows:
        by_name[str(row.name)].append(row)
    for name, rows in by_name.items():
        labels = [dict(r.labels or {}) for r in rows]
        notes = [dict(r.annotations or {}) for r in rows]
        summary = next((x.get("summary") or x.get("description") or "" for x in notes), "")
        runbook = next((x["runbook"] for x in notes if x.get("runbook")), "")
        groups.append(
            MemberGroup(
                kind="alert",
                name=name,
                severity=worst(*(str(r.severity) for r in rows)),
                firing=sum(1 for r in rows if r.status == "firing"),
                resolved=sum(1 for r in rows if r.status != "firing"),
                spread=spread_of(labels),
                summary=summary,
                summary_en=summary,
                runbook=runbook,
            )
        )
    # The findings of one fire cover the same minutes (a denial surge and the approval drop it
    # causes; a slice and the total it is part of): their lost approvals are one loss, so the
    # incident's is the largest, not the sum.
    lost = 0.0
    for found in finding_rows:
        lost = max(lost, float(found.approvals_lost or 0.0))
        groups.append(
            MemberGroup(
                kind="finding",
                name=str(found.name),
                severity=str(found.severity),
                firing=int(found.status == "firing"),
                resolved=int(found.status != "firing"),
                summary=str(found.explanation_pt or ""),
                summary_en=str(found.explanation_en or ""),
            )
        )
    groups.sort(key=lambda g: (g.firing == 0, SEVERITY_RANK.get(g.severity, 2), -g.total))
    return IncidentView(
        incident=incident,
        members=tuple(groups),
        approvals_lost=max(lost, 0.0),
        findings=tuple(str(r.key) for r in finding_rows),
        alerts_firing=sum(1 for r in alert_rows if r.status == "firing"),
        timeline=tuple(timeline(conn, incident.id)) if with_timeline else (),
    )


def _natural(value: str) -> tuple[Any, ...]:
    """Sort key that puts pay-9 before pay-10."""
    parts: list[Any] = []
    digits = ""
    word = ""
    for ch in value:
        if ch.isdigit():
            if word:
                parts.append((1, word))
                word = ""
            digits += ch
        else:
            if digits:
                parts.append((0, int(digits)))
                digits = ""
            word += ch
    if digits:
        parts.append((0, int(digits)))
    if word:
        parts.append((1, word))
    return tuple(parts)


def spread_of(labels: Sequence[Mapping[str, str]]) -> tuple[str, str] | None:
    """The first and last value of the first label that tells the alerts apart, if any."""
    for name in SPREAD_LABELS if len(labels) > 1 else _WHERE:
        values = sorted({x[name] for x in labels if x.get(name)}, key=_natural)
        if len(values) > 1 or (values and len(labels) == 1):
            return values[0], values[-1]
    return None


# -- what operators do ----------------------------------------------------------------------------


def open_manual(conn: Connection, title: str, who: str, now: datetime, route: Sequence[str]) -> int:
    """An incident an operator declares; they are on it (acknowledged), so it never escalates."""
    i = schema.incidents
    new_id = int(
        conn.execute(
            insert(i)
            .values(
                title=title,
                opened_by=who,
                opened_at=now,
                source="manual",
                severity="warning",
                state="open",
                last_activity=now,
                acked_by=who,
                acked_at=now,
                escalations=0,
            )
            .returning(i.c.id)
        ).scalar_one()
    )
    _events(conn, new_id, now, "opened", who, title=title)
    cards.reach(conn, new_id, route, now)
    return new_id


def close(conn: Connection, incident_id: int, who: str, now: datetime, how: str) -> bool:
    """Close an open incident by hand (`closed`) or as a false alarm (`false`)."""
    i = schema.incidents
    done = conn.execute(
        update(i)
        .where(i.c.id == incident_id, i.c.state == "open")
        .values(
            state="resolved",
            resolution=how,
            closed_by=who,
            closed_at=now,
            last_activity=now,
            escalate_at=None,
        )
    ).rowcount
    if done:
        _events(conn, incident_id, now, "false" if how == "false" else "closed", who)
        cards.bump(conn, [incident_id], now)
    return bool(done)


def ack(conn: Connection, incident_id: int, who: str, now: datetime) -> bool:
    """Someone is on it: recorded once, escalation stops, member alerts marked, cards edited."""
    i, m, a = schema.incidents, schema.incident_members, schema.alerts
    done = conn.execute(
        update(i)
        .where(i.c.id == incident_id, i.c.acked_at.is_(None))
        .values(acked_by=who, acked_at=now, escalate_at=None)
    ).rowcount
    if not done:
        return False
    firing = select(m.c.key).where(
        m.c.incident_id == incident_id, m.c.kind == "alert", m.c.status == "firing"
    )
    conn.execute(
        update(a)
        .where(a.c.fingerprint.in_(firing), a.c.acked_at.is_(None))
        .values(acked_by=who, acked_at=now)
    )
    _events(conn, incident_id, now, "acked", who)
    cards.bump(conn, [incident_id], now)
    return True


def silence(conn: Connection, incident_id: int, who: str, until: datetime, now: datetime) -> None:
    """Silenced until a time: no escalation; the cards say so."""
    i = schema.incidents
    conn.execute(
        update(i)
        .where(i.c.id == incident_id)
        .values(silenced_by=who, silenced_until=until, escalate_at=None)
    )
    _events(conn, incident_id, now, "silenced", who, until=until.isoformat())
    cards.bump(conn, [incident_id], now)


def _events(
    conn: Connection, incident_id: int, at: datetime, event: str, actor: str, **detail: Any
) -> None:
    conn.execute(
        insert(schema.incident_events).values(
            incident_id=incident_id, at=at, event=event, actor=actor, detail=detail
        )
    )


def finding_kinds(conn: Connection, incident_id: int) -> list[tuple[str, str]]:
    """(kind, metric) of each of the incident's findings."""
    m, n = schema.incident_members, schema.anomalies
    rows = conn.execute(
        select(n.c.kind, n.c.metric)
        .join(m, m.c.key == n.c.key)
        .where(m.c.incident_id == incident_id, m.c.kind == "finding")
        .distinct()
    )
    return sorted((str(k), str(metric)) for k, metric in rows)


# -- escalation -----------------------------------------------------------------------------------


def escalate_due(
    conn: Connection,
    dialect: Dialect,
    now: datetime,
    every: timedelta,
    times: int,
    destinations: Sequence[str] | None,
) -> list[int]:
    """Critical open incidents nobody acknowledged or silenced in time: each is escalated once
    more (up to `times`), told anew to `destinations` (default: where its cards are); the
    incidents escalated."""
    i, c = schema.incidents, schema.cards
    due = conn.execute(
        select(i.c.id, i.c.escalations).where(
            i.c.state == "open",
            i.c.severity == "critical",
            i.c.acked_at.is_(None),
            i.c.escalate_at.is_not(None),
            i.c.escalate_at <= now,
            i.c.escalations < times,
            or_(i.c.silenced_until.is_(None), i.c.silenced_until <= now),
        )
    ).all()
    escalated: list[int] = []
    notices = []
    for incident, done in due:
        n = int(done) + 1
        targets = list(destinations or ())
        if not targets:
            targets = sorted(
                str(d)
                for (d,) in conn.execute(
                    select(c.c.destination).where(c.c.incident_id == incident).distinct()
                )
            )
        conn.execute(
            update(i)
            .where(i.c.id == incident)
            .values(escalations=n, escalate_at=now + every if n < times else None)
        )
        _events(conn, int(incident), now, "escalated", "nightshift", n=n, to=targets)
        notices.append(
            outbox.Notice(
                subject_kind="escalation",
                subject=f"{incident}:{n}",
                event="escalated",
                severity="critical",
                destinations=targets,
                now=now,
                body={"incident": int(incident), "n": n, "of": times},
            )
        )
        escalated.append(int(incident))
    if notices:
        outbox.enqueue_many(conn, dialect, notices)
        cards.bump(conn, escalated, now)
    return escalated


# -- judgement ------------------------------------------------------------------------------------


def judged(conn: Connection, since: datetime) -> tuple[int, int]:
    """(feed incidents opened since, of which operators judged false): the detector's precision
    as the operators see it."""
    i, m = schema.incidents, schema.incident_members
    with_findings = select(m.c.incident_id).where(m.c.kind == "finding")
    query = select(
        func.count(), func.coalesce(func.sum(case((i.c.resolution == "false", 1), else_=0)), 0)
    ).where(i.c.opened_at >= since, i.c.id.in_(with_findings))
    total, false = conn.execute(query).one()
    return int(total), int(false)


def mute_key(kind: str, metric: str) -> str:
    """The state key of a finding kind's mute on a metric (`*`: every metric)."""
    return f"mute:{kind}:{metric}"


class Incidents(State):
    """The store's part for incidents: correlation passes, what operators do, what they read."""

    def correlate(self, now: datetime, rules: Correlation, route: Route) -> list[int]:
        """Join waiting alert and finding changes to incidents (see `storage.incidents`);
        returns the incidents that changed. Loops until the inbox is empty.

        On SQLite the pass reads and decides on a read connection and takes the write lock only
        to write what it decided (one correlator at a time, in this one process), so webhooks
        do not wait behind its reading; on PostgreSQL it is one transaction under an advisory
        lock, as replicas may correlate at the same time.
        """
        changed: set[int] = set()
        while True:
            joined = Joined()
            if self._dialect.name == "sqlite":
                with self._correlating:
                    with self._read() as conn:
                        work = plan(conn, self._dialect, now, rules, route)
                    if work is not None:
                        with self._write() as conn:
                            joined = apply(conn, self._dialect, work)
            else:
                with self._write() as conn:
                    joined = correlate(conn, self._dialect, now, rules, route)
            changed.update(joined.changed)
            if joined.consumed < INBOX_BATCH:
                return sorted(changed)

    def open_incident(
        self, title: str, who: str, now: datetime, route: Sequence[str] = ()
    ) -> IncidentRecord:
        """An incident declared by an operator, told at `route`'s destinations."""
        with self._write() as conn:
            new_id = open_manual(conn, title, who, now, route)
            found = get(conn, new_id)
        assert found is not None  # noqa: S101 - just written
        return found

    def close_incident(
        self, incident_id: int, who: str, now: datetime, *, how: str = "closed"
    ) -> IncidentRecord | None:
        """Close an incident by hand (`closed`), or as a false alarm (`false`); None if there is
        no such incident. Closing one already closed changes nothing."""
        with self._write() as conn:
            close(conn, incident_id, who, now, how)
            return get(conn, incident_id)

    def judge_false(
        self, incident_id: int, who: str, now: datetime, mute_for: timedelta
    ) -> IncidentRecord | None:
        """An operator judged the incident a false alarm: it resolves as such and each of its
        findings' kinds is muted on its metric for `mute_for`."""
        with self._write() as conn:
            found = get(conn, incident_id)
            if found is None or not close(conn, incident_id, who, now, "false"):
                return found
            for kind, metric in finding_kinds(conn, incident_id):
                self._set_state(conn, mute_key(kind, metric), (now + mute_for).isoformat(), now)
            return get(conn, incident_id)

    def ack_incident(self, incident_id: int, who: str, now: datetime) -> bool:
        """Acknowledge an incident (once); its alerts are marked acknowledged too."""
        with self._write() as conn:
            return ack(conn, incident_id, who, now)

    def silence_incident(self, incident_id: int, who: str, until: datetime, now: datetime) -> None:
        with self._write() as conn:
            silence(conn, incident_id, who, until, now)

    def escalate_due(
        self, now: datetime, every: timedelta, times: int, destinations: Sequence[str] | None
    ) -> list[int]:
        """Escalate what is due (see `escalate_due`); the incidents escalated."""
        with self._write() as conn:
            return escalate_due(conn, self._dialect, now, every, times, destinations)

    def incident(self, incident_id: int) -> IncidentRecord | None:
        with self._read() as conn:
            return get(conn, incident_id)

    def incident_view(
        self, incident_id: int, *, with_timeline: bool = False
    ) -> IncidentView | None:
        with self._read() as conn:
            found = get(conn, incident_id)
            return None if found is None else view(conn, found, with_timeline=with_timeline)

    def incident_views(
        self, records: Sequence[IncidentRecord], *, with_timeline: bool = False
    ) -> list[IncidentView]:
        with self._read() as conn:
            return [view(conn, r, with_timeline=with_timeline) for r in records]

    def incidents(
        self, *, open_only: bool = False, since: datetime | None = None, limit: int = 50
    ) -> list[IncidentRecord]:
        """Incidents newest first (`since`: opened, still open, or closed since then)."""
        with self._read() as conn:
            return listed(conn, open_only=open_only, since=since, limit=limit)

    def incident_of(self, kind: str, key: str) -> IncidentRecord | None:
        """The incident an alert (`alert`, fingerprint) or finding (`finding`, key) is in."""
        with self._read() as conn:
            return of_member(conn, kind, key)

    def incident_alerts(self, incident_id: int, *, firing_only: bool = True) -> list[AlertRecord]:
        """The incident's alerts (by default only those firing)."""
        a, m = schema.alerts, schema.incident_members
        query = (
            select(a)
            .join(m, and_(m.c.key == a.c.fingerprint, m.c.kind == "alert"))
            .where(m.c.incident_id == incident_id)
            .order_by(a.c.alertname, a.c.fingerprint)
        )
        if firing_only:
            query = query.where(m.c.status == "firing")
        with self._read() as conn:
            return [alert_from_row(row._mapping) for row in conn.execute(query)]

    def finding_kinds(self, incident_id: int) -> list[tuple[str, str]]:
        """(kind, metric) of the incident's findings."""
        with self._read() as conn:
            return finding_kinds(conn, incident_id)

    def incident_membership(self, kind: str, keys: Sequence[str]) -> dict[str, int]:
        with self._read() as conn:
            return membership(conn, kind, keys)

    def incident_events_since(self, event: str, since: datetime) -> list[tuple[int, datetime]]:
        with self._read() as conn:
            return events_since(conn, event, since)

    def judged(self, since: datetime) -> tuple[int, int]:
        """(feed incidents since, of which judged false by an operator)."""
        with self._read() as conn:
            return judged(conn, since)

    def mute(self, kind: str, metric: str, until: datetime, now: datetime) -> None:
        """Findings of a kind on a metric (`*`: any) are not pushed until a time."""
        self.set_state(mute_key(kind, metric), until.isoformat(), now)

    def muted_until(self, kind: str, metric: str, now: datetime) -> datetime | None:
        """Until when a finding kind is muted on a metric (None: it is not)."""
        for key in (mute_key(kind, metric), mute_key(kind, "*")):
            value = self.get_state(key)
            if value and datetime.fromisoformat(value) > now:
                return datetime.fromisoformat(value)
        return None
