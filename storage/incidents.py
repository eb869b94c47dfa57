"""Incidents: what belongs to one fire, its timeline, and what the operator did about it.

The correlator (`correlate`) takes the alert and finding changes waiting in the inbox, in the
order they were stored, and joins each to an open incident by the rules of `Correlation`,
tried in this order (the README lists them with examples):

1. group: an alert of the same Alertmanager group (groupKey) as a member, while it is open;
2. label: an alert sharing the value of the first correlation label it has (`service`, then
   `job`) with a member, within the window; an alert whose label names the feed's service
   (`payments`, `payments-api`, ...) joins the open feed incident;
3. name: an alert with the same name as a member and the same correlation label value (or
   neither has one), within the window: many instances of one alert at once are one storm;
4. feed: a detector finding joins the open feed incident, or an incident of an alert about
   the feed's service within the window (findings of one fire overlap in time).

Anything else opens a new incident. The incident's severity is its worst member's; it
resolves when every member has. Each change bumps the incident's cards (`storage.cards`), and a
new critical symptom (a name the incident did not have) is also told as a message of its own.
All of it happens in one transaction with the inbox rows it consumes, so a crash loses and
repeats nothing. On PostgreSQL the correlator holds an advisory lock: one runs at a time.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from storage import cards, outbox, schema
from storage.records import (
    AnomalyRecord,
    IncidentRecord,
    IncidentView,
    MemberGroup,
    TimelineEntry,
    anomaly_from_row,
)

# Labels → destinations: the composition root's routing, applied to each member as it joins.
Route = Callable[[Mapping[str, str]], Sequence[str]]

_LOCK_ID = 0x6E696763  # "nigc": the advisory lock the correlator holds on PostgreSQL
INBOX_BATCH = 2000  # changes one pass takes
SEVERITY_RANK = {"critical": 0, "warning": 1}
# Labels that tell instances of one alert apart, in the order a card names their range; a lone
# alert names only where it runs (its service is in its summary and labels already).
SPREAD_LABELS = ("instance", "pod", "host", "node", "service", "job")
_WHERE = SPREAD_LABELS[:4]


def worst(*severities: str) -> str:
    """The most severe of the given severities (critical, warning, then anything else)."""
    return min(severities, key=lambda s: (SEVERITY_RANK.get(s, 2), s))


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


# -- records --------------------------------------------------------------------------------------

_INCIDENT_COLUMNS = (
    "id",
    "title",
    "opened_by",
    "opened_at",
    "closed_by",
    "closed_at",
    "source",
    "severity",
    "state",
    "resolution",
    "last_activity",
    "acked_by",
    "acked_at",
    "silenced_by",
    "silenced_until",
    "escalations",
    "escalate_at",
)


def record(row: RowMapping) -> IncidentRecord:
    return IncidentRecord(**{name: row[name] for name in _INCIDENT_COLUMNS})


def get(conn: Connection, incident_id: int) -> IncidentRecord | None:
    i = schema.incidents
    row = conn.execute(select(i).where(i.c.id == incident_id)).first()
    return None if row is None else record(row._mapping)


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
    return [record(row._mapping) for row in conn.execute(query)]


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
    return None if row is None else record(row._mapping)


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
    lost = 0.0
    for found in finding_rows:
        lost += float(found.approvals_lost or 0.0)
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


# -- the inbox ------------------------------------------------------------------------------------


def inbox_rows(
    kind: str, changes: Iterable[tuple[str, str]], now: datetime
) -> list[dict[str, Any]]:
    """Inbox rows for changes (key, status) of alerts or findings, stored with the change."""
    return [{"kind": kind, "key": key, "status": status, "at": now} for key, status in changes]


def pending(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(schema.incident_inbox)).scalar_one())


# -- the correlator -------------------------------------------------------------------------------


@dataclass
class _Open:
    """An incident touched by a correlation pass (mutable working state)."""

    record: IncidentRecord
    keys: set[str]
    names: set[str]
    destinations: set[str]
    changed: bool = False
    new: dict[str, Any] | None = None  # the row of an incident this pass opens
    raised: bool = False  # its severity rose to critical in this pass
    fresh_destinations: set[str] = field(default_factory=set)


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
    conn: Connection, now: datetime, rules: Correlation, route: Route, limit: int = INBOX_BATCH
) -> Joined:
    """Join the inbox's changes to incidents (see the module docstring), in one transaction.
    On PostgreSQL an advisory lock lets one correlator run at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    work = plan(conn, now, rules, route, limit)
    return Joined() if work is None else apply(conn, work)


def plan(
    conn: Connection, now: datetime, rules: Correlation, route: Route, limit: int = INBOX_BATCH
) -> _Pass | None:
    """Read the waiting changes and decide what they join (reads only; None: none waits).
    Its decisions stay right until `apply` as long as no other correlator runs meanwhile."""
    box = schema.incident_inbox
    items = conn.execute(select(box).order_by(box.c.id).limit(limit)).all()
    if not items:
        return None
    alerts = _alerts(conn, [r.key for r in items if r.kind == "alert"])
    findings = _findings(conn, [r.key for r in items if r.kind == "finding"])
    work = _load(conn, now, rules, route, items)
    for item in items:
        work.now = min(item.at, now)
        if item.kind == "alert" and item.key in alerts:
            _alert(work, alerts[item.key], str(item.status))
        elif item.kind == "finding" and item.key in findings:
            _finding(work, findings[item.key])
    work.now = now
    work.inbox = [int(r.id) for r in items]
    return work


def apply(conn: Connection, work: _Pass) -> Joined:
    """Write what `plan` decided and consume its inbox rows."""
    _write(conn, work)
    box = schema.incident_inbox
    for start in range(0, len(work.inbox), 2000):
        conn.execute(delete(box).where(box.c.id.in_(work.inbox[start : start + 2000])))
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


def _alerts(conn: Connection, keys: Sequence[str]) -> dict[str, _Alert]:
    a = schema.alerts
    out: dict[str, _Alert] = {}
    unique = list(dict.fromkeys(keys))
    columns = (a.c.fingerprint, a.c.alertname, a.c.severity, a.c.labels, a.c.group_key)
    notes = a.c.annotations
    for start in range(0, len(unique), 2000):
        rows = conn.execute(
            select(*columns, notes).where(a.c.fingerprint.in_(unique[start : start + 2000]))
        )
        for fingerprint, name, severity, labels, group_key, texts in rows:
            summary = (texts or {}).get("summary") or (texts or {}).get("description")
            out[str(fingerprint)] = _Alert(
                str(fingerprint),
                str(name),
                str(severity),
                labels or {},
                str(group_key),
                summary or "",
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
    conn: Connection, now: datetime, rules: Correlation, route: Route, items: Sequence[Any]
) -> _Pass:
    """The open incidents with their keys, names and destinations; the members among `items`."""
    i, k, m, c = schema.incidents, schema.incident_keys, schema.incident_members, schema.cards
    opened = {
        int(r.id): _Open(record(r._mapping), set(), set(), set())
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
    members: dict[tuple[str, str], _Member] = {}
    for kind in ("alert", "finding"):
        keys = list({str(r.key) for r in items if r.kind == kind})
        for start in range(0, len(keys), 2000):
            found = conn.execute(
                select(m.c.key, m.c.incident_id, m.c.id, m.c.status, m.c.severity)
                .join(i, i.c.id == m.c.incident_id)
                .where(m.c.kind == kind, m.c.key.in_(keys[start : start + 2000]))
                .where(i.c.state == "open")
            )
            for key, incident, row_id, status, severity in found:
                members[(kind, str(key))] = _Member(
                    int(incident), str(status), str(severity), row_id=int(row_id)
                )
    st = schema.state
    mutes = {
        str(key): datetime.fromisoformat(str(value))
        for key, value in conn.execute(select(st.c.key, st.c.value).where(st.c.key.like("mute:%")))
    }
    return _Pass(now, rules, route, opened, by_key, mutes, members)


def _recent(work: _Pass, incident: int) -> bool:
    last = work.open[incident].record.last_activity or work.open[incident].record.opened_at
    return last >= work.now - work.rules.window


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
            known.set(work.now, status=status)
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
        known.set(work.now, status=status, severity=finding.severity)
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
    opened.record = replace(opened.record, last_activity=work.now)


def _reach(work: _Pass, incident: int, destinations: Sequence[str]) -> None:
    opened = work.open[incident]
    for destination in destinations:
        if destination not in opened.destinations:
            opened.destinations.add(destination)
            opened.fresh_destinations.add(destination)


def _write(conn: Connection, work: _Pass) -> None:
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
    if new_rows:
        conn.execute(insert(m), new_rows)
    _update_many(
        conn,
        m,
        [{"_id": x.row_id, **x.changes} for x in work.members.values() if x.row_id and x.changes],
    )
    if work.key_rows:
        conn.execute(
            insert(schema.incident_keys),
            [{"incident_id": ident(n), "key": k[:512]} for n, k in sorted(work.key_rows)],
        )
    rang = {(incident, name) for incident, _kind, name in work.symptoms}
    for (incident, name), count in work.joined.items():
        # A new critical symptom is its own entry; the first member is in "opened".
        if (incident, name) not in rang and (work.open[incident].new is None or count > 1):
            work.event(incident, "joined", "nightshift", name=name, count=count)
    touched = [n for n, o in work.open.items() if o.changed]
    firing = _firing(conn, [ident(n) for n in touched])
    changes, raised, resolved = [], [], []
    for incident in touched:
        opened, real_id = work.open[incident], ident(incident)
        last = opened.record.last_activity or now
        changes.append({"_id": real_id, "severity": opened.record.severity, "last_activity": last})
        if opened.raised and opened.new is None:
            raised.append({"_id": real_id, "escalate_at": opened.record.escalate_at})
        if firing.get(real_id, 0) == 0 and opened.record.source != "manual":
            resolved.append({"_id": real_id, "closed_at": last})
            work.events.append(
                {"incident_id": incident, "at": last, "event": "resolved", "actor": "nightshift"}
            )
        if opened.fresh_destinations:
            cards.reach(conn, real_id, sorted(opened.fresh_destinations), now)
    _update_many(conn, i, changes)
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
    _symptoms(conn, work, ident)
    if work.events:
        rows = [
            {"detail": {}, **e, "incident_id": ident(int(e["incident_id"]))} for e in work.events
        ]
        conn.execute(insert(schema.incident_events), rows)
    for provisional, new_id in real.items():  # the caller sees real ids from now on
        work.open[new_id] = work.open.pop(provisional)


def _update_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE rows by id (`_id`), one executemany per shape of change."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shapes[tuple(sorted(k for k in row if k != "_id"))].append(row)
    for columns, same in shapes.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in columns})
        )
        conn.execute(statement, same)


def _firing(conn: Connection, incidents: Sequence[int]) -> dict[int, int]:
    m = schema.incident_members
    if not incidents:
        return {}
    rows = conn.execute(
        select(m.c.incident_id, func.count())
        .where(m.c.incident_id.in_(list(incidents)), m.c.status == "firing")
        .group_by(m.c.incident_id)
    )
    return {int(i): int(n) for i, n in rows}


def _symptoms(conn: Connection, work: _Pass, ident: Callable[[int], int]) -> None:
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
        outbox.enqueue_many(conn, notices)


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
        outbox.enqueue_many(conn, notices)
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


__all__ = [
    "Correlation",
    "Joined",
    "ack",
    "close",
    "correlate",
    "escalate_due",
    "get",
    "judged",
    "listed",
    "of_member",
    "open_manual",
    "silence",
    "view",
    "worst",
]
