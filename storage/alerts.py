"""Alertmanager alerts: each webhook applied to the alerts' state and history, and read back.

A webhook group is applied in memory (`_AlertPlan`) and written with one statement per kind of
row; each firing or resolution goes to the incidents' inbox in the same transaction, where the
correlator (`storage/incidents.py`) takes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, or_, select, update

from storage import schema
from storage.database import Database
from storage.dialects import Dialect
from storage.inbox import inbox_rows
from storage.records import AlertChange, AlertGroup, AlertRecord, alert_from_row


class Alerts(Database):
    def apply_alert_group(self, group: AlertGroup, now: datetime) -> list[AlertChange]:
        """Store a webhook's alerts; returns the state changes (none for a re-sent group).

        Each firing or resolution is also put in the incidents' inbox in the same transaction,
        so the correlator joins it to an incident exactly once.
        """
        return self.apply_alert_groups([(group, now)])[0]

    def apply_alert_groups(
        self, groups: Sequence[tuple[AlertGroup, datetime]]
    ) -> list[list[AlertChange]]:
        """Several webhooks in one transaction (a group commit), each with the time it came in:
        the same rows and changes as applying them one by one in this order, in a handful of
        statements instead of several per alert."""
        with self._write(pipelined=True) as conn:
            plan = _AlertPlan(self._alert_states(conn, groups))
            changes = [plan.apply(group, now) for group, now in groups]
            plan.write(conn, self._dialect)
        return changes

    def _alert_states(
        self, conn: Connection, groups: Sequence[tuple[AlertGroup, datetime]]
    ) -> dict[str, str]:
        """The stored status of each alert in `groups`: in a pipelined transaction, the one wait
        before the writes."""
        fingerprints = list({a.fingerprint: None for g, _ in groups for a in g.alerts})
        states = self._dialect.select_in(
            schema.alerts, ("fingerprint", "status"), "fingerprint", fingerprints
        )
        found = self._dialect.fetch(conn, *states)
        return {str(f): str(status) for rows in found for f, status in rows}

    def alerts(self, *, active_only: bool = True, limit: int = 200) -> list[AlertRecord]:
        """Alerts, newest change first; active means firing."""
        a = schema.alerts
        query = select(a).order_by(a.c.changed_at.desc()).limit(limit)
        if active_only:
            query = query.where(a.c.status == "firing")
        with self._read() as conn:
            return [alert_from_row(row._mapping) for row in conn.execute(query)]

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
            return count, [alert_from_row(row._mapping) for row in rows]

    def alert(self, fingerprint: str) -> AlertRecord | None:
        a = schema.alerts
        with self._read() as conn:
            row = conn.execute(select(a).where(a.c.fingerprint == fingerprint)).first()
        return None if row is None else alert_from_row(row._mapping)

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
            return [alert_from_row(row._mapping) for row in conn.execute(query)]

    def ack_alert(self, fingerprint: str, who: str, now: datetime) -> bool:
        """Record who acknowledged an alert that has no open incident (yet)."""
        a = schema.alerts
        with self._write() as conn:
            done = conn.execute(
                update(a).where(a.c.fingerprint == fingerprint).values(acked_by=who, acked_at=now)
            ).rowcount
        return bool(done)

    def alert_counts_since(self, since: datetime) -> dict[str, int]:
        """How many alerts fired and resolved since `since` (from the history)."""
        h = schema.alert_history
        query = select(h.c.status, func.count()).where(h.c.at >= since).group_by(h.c.status)
        with self._read() as conn:
            return {str(s): int(n) for s, n in conn.execute(query).all()}


class _AlertPlan:
    """Alert webhooks applied in memory, in order, then written with one statement per kind.

    Rows for one fingerprint merge in order (a later webhook's values win), exactly as the
    row-by-row updates they replace would leave them.
    """

    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self.inserts: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.inbox: list[dict[str, Any]] = []

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
            if old is not None or alert.status == "firing":
                self.inbox.extend(inbox_rows("alert", [(alert.fingerprint, alert.status)], now))
        return changes

    def _set(self, fingerprint: str, **values: Any) -> None:
        row = self.inserts.get(fingerprint)
        if row is None:
            row = self.updates.setdefault(fingerprint, {})
        row.update(values)

    def write(self, conn: Connection, dialect: Dialect) -> None:
        """Every row, in a statement per table (per shape of update)."""
        a = schema.alerts
        dialect.insert_rows(conn, a, list(self.inserts.values()))
        # executemany needs one shape of row per statement: group the updates by their columns.
        shapes: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for fingerprint, values in self.updates.items():
            shapes[tuple(values)].append((fingerprint, values))
        for same in shapes.values():
            keys, rows = zip(*same, strict=True)
            dialect.update_rows(conn, a, "fingerprint", keys, rows)
        dialect.insert_rows(conn, schema.alert_history, self.history)
        dialect.insert_rows(conn, schema.incident_inbox, self.inbox)
