"""Frozen records the store hands out and takes in; ORM rows never leave `storage/`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any


@dataclass(frozen=True, slots=True)
class AlertIn:
    """One alert of an Alertmanager webhook, already validated."""

    fingerprint: str
    status: str  # "firing" | "resolved"
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "none")


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """An Alertmanager webhook payload (version 4), reduced to what is stored."""

    receiver: str
    status: str
    group_key: str
    alerts: tuple[AlertIn, ...]
    external_url: str = ""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    fingerprint: str
    alertname: str
    status: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    receiver: str
    group_key: str
    first_received: datetime
    last_received: datetime
    changed_at: datetime
    acked_by: str | None = None
    acked_at: datetime | None = None

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert whose state changed with a webhook: what a notifier must tell."""

    fingerprint: str
    old_status: str | None
    new_status: str


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    key: str
    kind: str
    metric: str
    statuses: tuple[str, ...]
    start: datetime
    end: datetime | None
    detected_at: datetime
    updated_at: datetime
    severity: str
    score: float
    expected: float
    observed: float
    explanation_pt: str
    explanation_en: str
    resolved: bool
    approvals_lost: float = 0.0
    slice: Mapping[str, str] | None = None  # {dimension: value} of a slice's finding; None: total


@dataclass(frozen=True, slots=True)
class SliceDimension:
    """A dimension and its slice values (`other` among them once the dimension is full), each
    with its transactions over a period, most first."""

    name: str
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One fire as the operator sees it (see `storage.incidents`)."""

    id: int
    title: str
    opened_by: str
    opened_at: datetime
    closed_by: str | None = None
    closed_at: datetime | None = None
    source: str = "manual"  # alerts | feed | manual
    severity: str = "warning"
    state: str = "open"  # open | resolved
    resolution: str | None = None  # resolved | closed | false
    last_activity: datetime | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    silenced_by: str | None = None
    silenced_until: datetime | None = None
    escalations: int = 0
    escalate_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "open"


@dataclass(frozen=True, slots=True)
class MemberGroup:
    """The members of an incident that share a name: an alert name, or a finding's kind:metric."""

    kind: str  # alert | finding
    name: str
    severity: str
    firing: int
    resolved: int
    spread: tuple[str, str] | None = None  # the first and last value of the label that differs
    summary: str = ""  # an alert's summary, or a finding's explanation (pt)
    summary_en: str = ""
    runbook: str = ""

    @property
    def total(self) -> int:
        return self.firing + self.resolved


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    event: str  # opened | joined | acked | escalated | silenced | resolved | false | ...
    actor: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident with what a card, `incidente N` or the handoff shows of it."""

    incident: IncidentRecord
    members: tuple[MemberGroup, ...]
    approvals_lost: float
    findings: tuple[str, ...] = ()  # the finding keys (for mutes and impact)
    alerts_firing: int = 0
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def id(self) -> int:
        return self.incident.id


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    detail: dict[str, object] = field(default_factory=dict)
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one stored batch did: rows accepted, and new events among them."""

    accepted: int
    new_events: int


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


def alert_from_row(row: Mapping[Any, Any]) -> AlertRecord:
    """An `alerts` row as a record."""
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


def anomaly_from_row(row: Mapping[Any, Any]) -> AnomalyRecord:
    """An `anomalies` row as a record."""
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
        approvals_lost=float(row.get("approvals_lost") or 0.0),
        slice=json.loads(row["slice"]) if row.get("slice") else None,
    )


SEVERITY_RANK = {"critical": 0, "warning": 1}


def worst(*severities: str) -> str:
    """The most severe of the given severities (critical, warning, then anything else)."""
    return min(severities, key=lambda s: (SEVERITY_RANK.get(s, 2), s))


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


def incident_from_row(row: Mapping[Any, Any]) -> IncidentRecord:
    """An `incidents` row as a record."""
    return IncidentRecord(**{name: row[name] for name in _INCIDENT_COLUMNS})
