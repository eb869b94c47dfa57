"""Alertmanager webhook payloads (version 4) as Alertmanager really sends them."""

from __future__ import annotations

import json
from typing import Any

FIRING_ENDS_AT = "0001-01-01T00:00:00Z"


def alert(
    name: str = "PaymentsApiDown",
    *,
    fingerprint: str = "8f1c2a9b3d4e5f60",
    status: str = "firing",
    severity: str = "critical",
    starts_at: str = "2025-07-14T14:52:00.000Z",
    ends_at: str = FIRING_ENDS_AT,
    summary: str = "payments-api is not answering",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "service": "payments-api", **labels},
        "annotations": {"summary": summary, "runbook": "check-http"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus.local:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    alerts = alerts or (alert(),)
    group_status = status or (
        "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    )
    return {
        "receiver": "nightshift",
        "status": group_status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"severity": alerts[0]["labels"]["severity"]},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "version": "4",
        "groupKey": '{}:{alertname="' + alerts[0]["labels"]["alertname"] + '"}',
        "truncatedAlerts": 0,
        "notification_reason": "new",  # newer Alertmanagers add keys; they must be ignored
    }


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
