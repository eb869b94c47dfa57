"""The one mapping from a detector `Finding` to the store's `AnomalyRecord`, worded in pt and en."""

from __future__ import annotations

from datetime import datetime, tzinfo

from detector.findings import Finding
from skills.wording import explain
from storage.records import AnomalyRecord


def anomaly_record(
    finding: Finding, now: datetime, tz: tzinfo, approvals_lost: float = 0.0
) -> AnomalyRecord:
    """`finding` as stored at `now`, explained in both languages on `tz`'s clock, with the
    approvals it has cost so far."""
    return AnomalyRecord(
        key=finding.key,
        kind=finding.kind,
        metric=finding.metric,
        statuses=finding.statuses,
        start=finding.start,
        end=finding.end,
        detected_at=finding.detected_at,
        updated_at=now,
        severity=finding.severity,
        score=finding.score,
        expected=finding.expected,
        observed=finding.observed,
        explanation_pt=explain(finding.evidence, "pt", tz),
        explanation_en=explain(finding.evidence, "en", tz),
        resolved=finding.resolved,
        approvals_lost=round(approvals_lost, 1),
        slice=dict(finding.slice) if finding.slice else None,
    )
