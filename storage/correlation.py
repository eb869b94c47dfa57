"""The correlator: alert and finding changes joined to incidents, by explicit rules.

It takes the changes waiting in the inbox (`storage/inbox.py`), in the order they were stored,
and joins each to an open incident by the rules of `Correlation`, tried in this order (the
README lists them with examples):

1. group: an alert of the same Alertmanager group (groupKey) as a member, while it is open;
2. label: an alert sharing the value of the first correlation label it has (`service`, then
   `job`) with a member, within the window; an alert whose label names the feed's service
   (`payments`, `payments-api`, ...) joins the open feed incident;
3. name: an alert with the same name as a member and the same correlation label value (or
   neither has one), within the window: many instances of one alert at once are one storm;
4. feed: a detector finding joins the open feed incident, or an incident of an alert about
   the feed's service within the window (findings of one fire overlap in time).

Anything else opens a new incident. The incident's severity is its worst member's; it
resolves when every member has. Each change bumps the incident's cards (`storage/cards.py`), and
a new critical symptom (a name the incident did not have) is also told as a message of its own.
A pass (`plan`, then `apply`) writes in one transaction with the inbox rows it consumes, so a
crash loses and repeats nothing.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from storage import cards, outbox, schema
from storage.dialects import IN_LIST, Dialect
from storage.records import (
    AnomalyRecord,
    IncidentRecord,
    anomaly_from_row,
    incident_from_row,
    worst,
)

# Labels → destinations: the composition root's routing, applied to each member as it joins.
Route = Callable[[Mapping[str, str]], Sequence[str]]

_LOCK_ID = 0x6E696763  # "nigc": the advisory lock the correlator holds on PostgreSQL
INBOX_BATCH = 2000  # changes one pass takes


@dataclass(frozen=True, slots=True)
class Correlation:
    """The correlation rules, as data: which labels join alerts, and how far back they look."""

    labels: tuple[str, ...] = ("service", "job")
    window: timedelta = timedelta(minutes=15)
    feed_service: str = "payments"
    escalate_after: timedelta = timedelta(minutes=10)

    def key_label(self, labels: Mapping[str, str]) -> str:
        """`label=value` of the first correlation label present, or "" if none is."""
        for name in self.labels:
            value = labels.get(name, "")
            if value:
                return f"{name}={value}"
        return ""

    def names_feed(self, label: str) -> bool:
        """Whether a `label=value` names the feed's service (itself or `service-…`)."""
        value = label.partition("=")[2]
        return bool(value) and (
            value == self.feed_service or value.startswith(self.feed_service + "-")
        )


@dataclass
class _Open:
    """An incident touched by a correlation pass (mutable working state)."""

    record: IncidentRecord
    keys: set[str]
    names: set[str]
    destinations: set[str]
    firing: int = 0  # members firing, as the pass leaves them
    changed: bool = False
    new: dict[str, Any] | None = None  # the row of an incident this pass opens
    raised: bool = False  # its severity rose to critical in this pass
    fresh_destinations: set[str] = field(default_factory=set)
    touched_at: datetime | None = None  # its last activity in this pass (None: none yet)

    @property
    def last_activity(self) -> datetime:
        return self.touched_at or self.record.last_activity or self.record.opened_at


@dataclass
class _Member:
    """An alert or finding's membership as the pass sees it: stored (`row_id`) or new (`row`)."""

    incident: int
    status: str
    severity: str
    row_id: int | None = None
    row: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)

    def set(self, now: datetime, **values: Any) -> None:
        self.status = values.get("status", self.status)
        self.severity = values.get("severity", self.severity)
        target = self.row if self.row is not None else self.changes
        target.update(values, changed_at=now)


@dataclass
class _Pass:
    """One correlation pass: what it read, and what it will write."""

    now: datetime  # the time of the change being joined (its arrival), for windows and timeline
    rules: Correlation
    route: Route
    open: dict[int, _Open]
    by_key: dict[str, int]  # incident key → open incident
    mutes: dict[str, datetime]  # finding kinds muted: `mute:kind:metric` → until
    members: dict[tuple[str, str], _Member]  # (kind, key) → its open incident's membership
    events: list[dict[str, Any]] = field(default_factory=list)
    key_rows: set[tuple[int, str]] = field(default_factory=set)
    joined: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    symptoms: list[tuple[int, str, str]] = field(default_factory=list)
    inbox: list[int] = field(default_factory=list)  # the inbox rows the pass consumes
    provisional: int = 0  # ids of incidents opened in the pass are -1, -2, … until written

    def event(self, incident: int, event: str, actor: str, **detail: Any) -> None:
        self.events.append(
            {
                "incident_id": incident,
                "at": self.now,
                "event": event,
                "actor": actor,
                "detail": detail,
            }
        )


@dataclass(frozen=True, slots=True)
class Joined:
    """What a correlation pass did: the incidents that changed, the inbox rows it consumed."""

    changed: tuple[int, ...] = ()
    consumed: int = 0


def correlate(
    conn: Connection, dialect: Dialect, now: datetime, rules: Correlation, route: Route
) -> Joined:
    """Join up to INBOX_BATCH of the inbox's changes to incidents (see the module docstring),
    in one transaction. On PostgreSQL an advisory lock lets one correlator run at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    work = plan(conn, dialect, now, rules, route)
    return Joined() if work is None else apply(conn, dialect, work)


def plan(
    conn: Connection,
    dialect: Dialect,
    now: datetime,
    rules: Correlation,
    route: Route,
    limit: int = INBOX_BATCH,
) -> _Pass | None:
    """Read the waiting changes and decide what they join (reads only; None: none waits).
    Its decisions stay right until `apply` as long as no other correlator runs meanwhile."""
    box = schema.incident_inbox
    items = conn.execute(select(box).order_by(box.c.id).limit(limit)).all()
    if not items:
        return None
    alerts = _alerts(conn, dialect, [r.key for r in items if r.kind == "alert"])
    findings = _findings(conn, [r.key for r in items if r.kind == "finding"])
    work = _load(conn, dialect, now, rules, route, items)
    for item in items:
        work.now = min(item.at, now)
        if item.kind == "alert" and item.key in alerts:
            _alert(work, alerts[item.key], str(item.status))
        elif item.kind == "finding" and item.key in findings:
            _finding(work, findings[item.key])
    work.now = now
    work.inbox = [int(r.id) for r in items]
    return work


def apply(conn: Connection, dialect: Dialect, work: _Pass) -> Joined:
    """Write what `plan` decided and consume its inbox rows."""
    _write(conn, dialect, work)
    for start in range(0, len(work.inbox), IN_LIST):
        where, ids = dialect.one_of("id", work.inbox[start : start + IN_LIST])
        conn.exec_driver_sql(f"DELETE FROM incident_inbox WHERE {where}", ids)  # noqa: S608
    return Joined(tuple(i for i, o in work.open.items() if o.changed), len(work.inbox))


@dataclass(frozen=True, slots=True)
class _Alert:
    """What the correlator needs of an alert (a light read of its row)."""

    fingerprint: str
    alertname: str
    severity: str
    labels: Mapping[str, str]
    group_key: str
    summary: str


def _alerts(conn: Connection, dialect: Dialect, keys: Sequence[str]) -> dict[str, _Alert]:
    """The alerts of these fingerprints, read at the driver (a pass reads hundreds)."""
    a = schema.alerts
    columns = ("fingerprint", "alertname", "severity", "group_key", "labels", "annotations")
    queries = dialect.select_in(a, columns, "fingerprint", list(dict.fromkeys(keys)))
    read_labels, read_notes = dialect.readers(conn, a, columns[4:])
    out: dict[str, _Alert] = {}
    for rows in dialect.fetch(conn, *queries):
        for fingerprint, name, severity, group_key, labels, notes in rows:
            labels = read_labels(labels) if read_labels else labels
            texts = (read_notes(notes) if read_notes else notes) or {}
            out[str(fingerprint)] = _Alert(
                str(fingerprint),
                str(name),
                str(severity),
                labels or {},
                str(group_key),
                texts.get("summary") or texts.get("description") or "",
            )
    return out


def _findings(conn: Connection, keys: Sequence[str]) -> dict[str, AnomalyRecord]:
    n = schema.anomalies
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    rows = conn.execute(select(n).where(n.c.key.in_(unique)))
    return {str(r.key): anomaly_from_row(r._mapping) for r in rows}


def _load(
    conn: Connection,
    dialect: Dialect,
    now: datetime,
    rules: Correlation,
    route: Route,
    items: Sequence[Any],
) -> _Pass:
    """The open incidents with their keys, names and destinations; the members among `items`."""
    i, k, m, c = schema.incidents, schema.incident_keys, schema.incident_members, schema.cards
    opened = {
        int(r.id): _Open(incident_from_row(r._mapping), set(), set(), set())
        for r in conn.execute(select(i).where(i.c.state == "open"))
    }
    by_key: dict[str, int] = {}
    if opened:
        rows = conn.execute(
            select(k.c.incident_id, k.c.key).where(k.c.incident_id.in_(list(opened)))
        )
        for incident, key in sorted(rows, key=lambda r: int(r[0])):
            opened[int(incident)].keys.add(str(key))
            by_key[str(key)] = int(incident)  # the newest incident wins a shared key
        for one in opened.values():  # the names it has are keys too, `member:<name>`
            one.names = {k[7:] for k in one.keys if k.startswith("member:")}
        for incident, destination in conn.execute(
            select(c.c.incident_id, c.c.destination).where(c.c.incident_id.in_(list(opened)))
        ):
            opened[int(incident)].destinations.add(str(destination))
        # Only a pass changes members, so these counts stay true until its `apply`: a pass
        # keeps them as it goes and resolves, without a read while it writes, what has none.
        for incident, firing in conn.execute(
            select(m.c.incident_id, func.count())
            .where(m.c.incident_id.in_(list(opened)), m.c.status == "firing")
            .group_by(m.c.incident_id)
        ):
            opened[int(incident)].firing = int(firing)
    # The memberships of these keys in open incidents, read at the driver (hundreds of keys).
    members: dict[tuple[str, str], _Member] = {}
    columns = ("incident_id", "kind", "key", "id", "status", "severity")
    queries = dialect.select_in(m, columns, "key", list({str(r.key) for r in items}))
    found = sorted(row for rows in dialect.fetch(conn, *queries) for row in rows)
    for incident, kind, key, row_id, status, severity in found:
        if int(incident) in opened:
            members[(str(kind), str(key))] = _Member(
                int(incident), str(status), str(severity), row_id=int(row_id)
            )
    st = schema.state
    mutes = {
        str(key): datetime.fromisoformat(str(value))
        for key, value in conn.execute(select(st.c.key, st.c.value).where(st.c.key.like("mute:%")))
    }
    return _Pass(now, rules, route, opened, by_key, mutes, members)


def _recent(work: _Pass, incident: int) -> bool:
    return work.open[incident].last_activity >= work.now - work.rules.window


def _match_alert(work: _Pass, alert: _Alert) -> int | None:
    rules = work.rules
    found = work.by_key.get(f"group:{alert.group_key}")
    if found is not None:
        return found
    label = rules.key_label(alert.labels)
    if label:
        found = work.by_key.get(f"label:{label}")
        if found is not None and _recent(work, found):
            return found
        if rules.names_feed(label):
            found = work.by_key.get("feed")
            if found is not None and _recent(work, found):
                return found
    found = work.by_key.get(f"name:{alert.alertname}:{label}")
    if found is not None and _recent(work, found):
        return found
    return None


def _match_finding(work: _Pass) -> int | None:
    found = work.by_key.get("feed")
    if found is not None:
        return found
    feedish = [
        incident
        for key, incident in work.by_key.items()
        if key.startswith("label:") and work.rules.names_feed(key[6:]) and _recent(work, incident)
    ]
    return max(feedish) if feedish else None


def _alert(work: _Pass, alert: _Alert, status: str) -> None:
    known = work.members.get(("alert", alert.fingerprint))
    labels = {**alert.labels, "severity": alert.severity}
    if known is not None:
        if known.status != status:
            _change(work, known, status=status)
            _touch(work, known.incident)
        if status == "firing":
            _reach(work, known.incident, work.route(labels))
        return
    if status != "firing":
        return  # a resolution nobody saw fire is history, not news
    label = work.rules.key_label(alert.labels)
    keys = {f"group:{alert.group_key}", f"name:{alert.alertname}:{label}"}
    if label:
        keys.add(f"label:{label}")
    if label and work.rules.names_feed(label):
        keys.add("feed")
    title = alert.alertname + (f" — {alert.summary}" if alert.summary else "")
    incident = _match_alert(work, alert)
    if incident is None:
        incident = _open(work, "alerts", title[:300], "alertmanager", alert.severity)
    _join(work, incident, "alert", alert.fingerprint, alert.alertname, alert.severity, keys)
    _reach(work, incident, work.route(labels))


def _finding(work: _Pass, finding: AnomalyRecord) -> None:
    status = "resolved" if finding.resolved else "firing"
    name = f"{finding.kind}:{finding.metric}"
    labels = {
        "alertname": name,
        "severity": finding.severity,
        "source": "detector",
        "kind": finding.kind,
        "metric": finding.metric,
    }
    muted = any(
        work.mutes.get(f"mute:{finding.kind}:{metric}", work.now) > work.now
        for metric in (finding.metric, "*")
    )
    # Only critical findings are pushed (a warning is kept, and shown on request).
    told = () if muted or finding.severity != "critical" else work.route(labels)
    known = work.members.get(("finding", finding.key))
    if known is not None:
        if known.severity != finding.severity:
            _raise(work, known.incident, finding.severity)
        _change(work, known, status=status, severity=finding.severity)
        _touch(work, known.incident)  # impact and explanation change by the minute
        if status == "firing":
            _reach(work, known.incident, told)
        return
    if finding.resolved:
        return
    incident = _match_finding(work)
    if incident is None:
        incident = _open(work, "feed", name, "detector", finding.severity)
    _join(work, incident, "finding", finding.key, name, finding.severity, {"feed"})
    _reach(work, incident, told)


def _change(work: _Pass, member: _Member, **values: Any) -> None:
    """A member's status or severity changes (its incident's firing count with it)."""
    status = values.get("status", member.status)
    if status != member.status:
        work.open[member.incident].firing += 1 if status == "firing" else -1
    member.set(work.now, **values)


def _open(work: _Pass, source: str, title: str, actor: str, severity: str) -> int:
    values = {
        "title": title,
        "opened_by": actor,
        "opened_at": work.now,
        "source": source,
        "severity": severity,
        "state": "open",
        "last_activity": work.now,
        "escalations": 0,
        "escalate_at": (work.now + work.rules.escalate_after) if severity == "critical" else None,
    }
    work.provisional -= 1
    new_id = work.provisional
    work.open[new_id] = _Open(
        IncidentRecord(id=new_id, **values),  # type: ignore[arg-type]
        set(),
        set(),
        set(),
        changed=True,
        new=values,
    )
    work.event(new_id, "opened", actor, title=title, severity=severity)
    return new_id


def _join(
    work: _Pass, incident: int, kind: str, key: str, name: str, severity: str, keys: set[str]
) -> None:
    opened = work.open[incident]
    if name not in opened.names and opened.new is None and severity == "critical":
        work.symptoms.append((incident, kind, name))
    opened.names.add(name)
    row = {
        "incident_id": incident,
        "kind": kind,
        "key": key,
        "name": name[:256],
        "severity": severity,
        "status": "firing",
        "joined_at": work.now,
        "changed_at": work.now,
    }
    work.members[(kind, key)] = _Member(incident, "firing", severity, row=row)
    opened.firing += 1
    keys = keys | {f"member:{name}"}
    work.joined[(incident, name)] += 1
    for k in keys - opened.keys:
        opened.keys.add(k)
        work.key_rows.add((incident, k))
        work.by_key[k] = incident
    _raise(work, incident, severity)
    _touch(work, incident)


def _raise(work: _Pass, incident: int, severity: str) -> None:
    opened = work.open[incident]
    current = opened.record
    if worst(current.severity, severity) == current.severity:
        return
    escalate_at = current.escalate_at
    if severity == "critical" and current.acked_at is None and current.silenced_until is None:
        escalate_at = work.now + work.rules.escalate_after
    opened.record = replace(current, severity=severity, escalate_at=escalate_at)
    opened.raised = severity == "critical"
    if not opened.new:
        work.event(incident, "severity", "nightshift", severity=severity)


def _touch(work: _Pass, incident: int) -> None:
    opened = work.open[incident]
    opened.changed = True
    opened.touched_at = work.now


def _reach(work: _Pass, incident: int, destinations: Sequence[str]) -> None:
    opened = work.open[incident]
    for destination in destinations:
        if destination not in opened.destinations:
            opened.destinations.add(destination)
            opened.fresh_destinations.add(destination)


def _write(conn: Connection, dialect: Dialect, work: _Pass) -> None:
    """Everything the pass decided, one statement per kind of row and shape of change.

    Incidents the pass opened are inserted first and their provisional ids replaced. Changes
    to incidents that already were open are guarded, as an operator may have acted since the
    pass read them: a resolution only closes what is still open, and a raised severity only
    schedules an escalation if nobody has acknowledged or silenced the incident.
    """
    now = work.now
    m, i = schema.incident_members, schema.incidents
    real: dict[int, int] = {}
    for provisional, opened in sorted(work.open.items(), reverse=True):
        if opened.new is not None:
            new_id = conn.execute(insert(i).values(**opened.new).returning(i.c.id)).scalar_one()
            real[provisional] = int(new_id)

    def ident(n: int) -> int:
        return real.get(n, n)

    new_rows = [{**x.row, "incident_id": ident(x.incident)} for x in work.members.values() if x.row]
    dialect.insert_rows(conn, m, new_rows)
    _update_many(
        conn,
        dialect,
        m,
        [{"_id": x.row_id, **x.changes} for x in work.members.values() if x.row_id and x.changes],
    )
    dialect.insert_rows(
        conn,
        schema.incident_keys,
        [{"incident_id": ident(n), "key": k[:512]} for n, k in sorted(work.key_rows)],
    )
    rang = {(incident, name) for incident, _kind, name in work.symptoms}
    for (incident, name), count in work.joined.items():
        # A new critical symptom is its own entry; the first member is in "opened".
        if (incident, name) not in rang and (work.open[incident].new is None or count > 1):
            work.event(incident, "joined", "nightshift", name=name, count=count)
    touched = [n for n, o in work.open.items() if o.changed]
    changes, raised, resolved = [], [], []
    for incident in touched:
        opened, real_id = work.open[incident], ident(incident)
        last = opened.last_activity
        changes.append({"_id": real_id, "severity": opened.record.severity, "last_activity": last})
        if opened.raised and opened.new is None:
            raised.append({"_id": real_id, "escalate_at": opened.record.escalate_at})
        if opened.firing == 0 and opened.record.source != "manual":
            resolved.append({"_id": real_id, "closed_at": last})
            work.events.append(
                {"incident_id": incident, "at": last, "event": "resolved", "actor": "nightshift"}
            )
        if opened.fresh_destinations:
            cards.reach(conn, real_id, sorted(opened.fresh_destinations), now)
    _update_many(conn, dialect, i, changes)
    if raised:
        conn.execute(
            update(i)
            .where(i.c.id == bindparam("_id"), i.c.acked_at.is_(None))
            .where(or_(i.c.silenced_until.is_(None), i.c.silenced_until <= now))
            .values(escalate_at=bindparam("escalate_at")),
            raised,
        )
    if resolved:
        conn.execute(
            update(i)
            .where(i.c.id == bindparam("_id"), i.c.state == "open")
            .values(
                state="resolved",
                resolution="resolved",
                closed_at=bindparam("closed_at"),
                closed_by="nightshift",
                escalate_at=None,
            ),
            resolved,
        )
    cards.bump(conn, [ident(n) for n in touched], now)
    _symptoms(conn, dialect, work, ident)
    rows = [{"detail": {}, **e, "incident_id": ident(int(e["incident_id"]))} for e in work.events]
    dialect.insert_rows(conn, schema.incident_events, rows)
    for provisional, new_id in real.items():  # the caller sees real ids from now on
        work.open[new_id] = work.open.pop(provisional)


def _update_many(
    conn: Connection, dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """UPDATE rows by id (`_id`, distinct), one statement per shape of change."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shapes[tuple(sorted(k for k in row if k != "_id"))].append(row)
    for columns, same in shapes.items():
        ids = [row["_id"] for row in same]
        dialect.update_rows(conn, table, "id", ids, [{c: row[c] for c in columns} for row in same])


def _symptoms(conn: Connection, dialect: Dialect, work: _Pass, ident: Callable[[int], int]) -> None:
    """A new critical symptom of an incident already told rings: a message of its own where the
    incident's card already is (a destination reached now gets the whole card instead)."""
    notices = []
    for incident, kind, name in work.symptoms:
        opened = work.open[incident]
        told = sorted(opened.destinations - opened.fresh_destinations)
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:12]
        notices.append(
            outbox.Notice(
                subject_kind="symptom",
                subject=f"{ident(incident)}:{digest}",
                event="joined",
                severity="critical",
                destinations=told,
                now=work.now,
                body={"incident": ident(incident), "kind": kind, "name": name},
            )
        )
        work.event(incident, "symptom", "nightshift", name=name)
    if notices:
        outbox.enqueue_many(conn, dialect, notices)
