"""Frozen records the store hands out and takes in; ORM rows never leave `storage/`."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    id: int
    title: str
    opened_by: str
    opened_at: datetime
    closed_by: str | None = None
    closed_at: datetime | None = None


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
