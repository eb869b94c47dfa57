"""The correlation rules, one test each, on SQLite and PostgreSQL: what joins an incident, what
opens a new one, and what each change does to its cards and timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from storage.correlation import Correlation
from storage.records import AlertGroup, AlertIn, AnomalyRecord
from storage.store import Store

NOW = datetime(2025, 7, 14, 6, 0, tzinfo=UTC)
RULES = Correlation()


def route(labels: Mapping[str, str]) -> Sequence[str]:
    return ("telegram:-1", "slack:C") if labels.get("severity") == "critical" else ("slack:C",)


def fire(
    store: Store,
    fingerprint: str,
    name: str,
    *,
    group: str | None = None,
    at: datetime = NOW,
    status: str = "firing",
    severity: str = "critical",
    **labels: str,
) -> None:
    alert = AlertIn(
        fingerprint,
        status,
        {"alertname": name, "severity": severity, **labels},
        {"summary": f"{name} down"},
        at,
        None if status == "firing" else at,
    )
    store.apply_alert_group(AlertGroup("r", status, group or f"g-{fingerprint}", (alert,)), at)


def finding(
    store: Store,
    key: str,
    *,
    at: datetime = NOW,
    resolved: bool = False,
    severity: str = "critical",
) -> None:
    store.save_anomaly(
        AnomalyRecord(
            key=key,
            kind="surge",
            metric="denied_rate",
            statuses=("denied",),
            start=at - timedelta(minutes=2),
            end=at if resolved else None,
            detected_at=at,
            updated_at=at,
            severity=severity,
            score=0.8,
            expected=4.0,
            observed=30.0,
            explanation_pt="denied 7× o normal",
            explanation_en="denied 7× normal",
            resolved=resolved,
            approvals_lost=120.0,
        )
    )


def correlate(store: Store, at: datetime = NOW, rules: Correlation = RULES) -> list[int]:
    return store.correlate(at, rules, route)


def incident_of(store: Store, fingerprint: str) -> int:
    found = store.incident_of("alert", fingerprint)
    assert found is not None
    return found.id


def test_rule_group_same_alertmanager_group_joins_while_open(store: Store) -> None:
    fire(store, "a", "DiskFull", group="team-x")
    correlate(store)
    fire(store, "b", "CpuHigh", group="team-x", at=NOW + timedelta(hours=3))  # long after
    correlate(store, NOW + timedelta(hours=3))
    assert incident_of(store, "a") == incident_of(store, "b")


def test_rule_label_shared_service_joins_within_the_window(store: Store) -> None:
    fire(store, "a", "ApiDown", service="pix")
    fire(store, "b", "DbDown", service="pix", at=NOW + timedelta(minutes=5))
    fire(store, "c", "QueueDown", service="pix", at=NOW + timedelta(minutes=40))
    correlate(store, NOW + timedelta(minutes=40))
    assert incident_of(store, "a") == incident_of(store, "b")
    assert incident_of(store, "c") != incident_of(store, "a")  # 35 min after the last change


def test_rule_label_job_counts_only_when_service_is_absent(store: Store) -> None:
    fire(store, "a", "NodeDown", job="node")
    fire(store, "b", "NodeDiskFull", job="node")
    fire(store, "c", "PixSlow", job="node", service="pix")  # its service decides, not its job
    correlate(store)
    assert incident_of(store, "a") == incident_of(store, "b")
    assert incident_of(store, "c") != incident_of(store, "a")


def test_rule_name_many_instances_of_one_alert_are_one_storm(store: Store) -> None:
    for i in range(80):
        fire(store, f"bar{i}", "BarsLong", instance=f"pay-{i}")  # 80 groups, no service
    fire(store, "other", "Unrelated", instance="pay-1")
    correlate(store)
    assert len({incident_of(store, f"bar{i}") for i in range(80)}) == 1
    assert incident_of(store, "other") != incident_of(store, "bar0")
    view = store.incident_view(incident_of(store, "bar0"))
    assert view is not None
    [group] = view.members
    assert (group.name, group.firing, group.spread) == ("BarsLong", 80, ("pay-0", "pay-79"))


def test_rule_name_does_not_join_across_services(store: Store) -> None:
    fire(store, "a", "Latency", service="pix")
    fire(store, "b", "Latency", service="cards")
    correlate(store)
    assert incident_of(store, "a") != incident_of(store, "b")


def test_rule_feed_findings_of_one_fire_are_one_incident(store: Store) -> None:
    finding(store, "surge-1")
    finding(store, "drop-1", at=NOW + timedelta(minutes=3))
    correlate(store, NOW + timedelta(minutes=3))
    [incident] = store.incidents()
    view = store.incident_view(incident.id)
    assert view is not None and set(view.findings) == {"surge-1", "drop-1"}
    # the surge and the drop it causes lost the same approvals: counted once, not twice
    assert incident.source == "feed" and view.approvals_lost == 120.0


def test_rule_feed_an_alert_about_the_feed_service_joins_the_feed_incident(store: Store) -> None:
    finding(store, "surge-1")
    correlate(store)
    fire(store, "api", "PaymentsApiDown", service="payments-api", at=NOW + timedelta(minutes=2))
    fire(store, "ledger", "LedgerDown", service="ledger", at=NOW + timedelta(minutes=2))
    correlate(store, NOW + timedelta(minutes=2))
    feed = store.incident_of("finding", "surge-1")
    assert feed is not None
    assert incident_of(store, "api") == feed.id
    assert incident_of(store, "ledger") != feed.id


def test_rule_feed_a_finding_joins_an_incident_of_an_alert_about_the_feed(store: Store) -> None:
    fire(store, "api", "PaymentsApiDown", service="payments")
    correlate(store)
    finding(store, "drop-1", at=NOW + timedelta(minutes=4))
    correlate(store, NOW + timedelta(minutes=4))
    feed = store.incident_of("finding", "drop-1")
    assert feed is not None and feed.id == incident_of(store, "api")


def test_the_rules_are_data_other_labels_and_window(store: Store) -> None:
    rules = Correlation(labels=("team",), window=timedelta(hours=2), feed_service="checkout")
    fire(store, "a", "A", team="payments", service="x")
    fire(store, "b", "B", team="payments", service="y", at=NOW + timedelta(minutes=90))
    correlate(store, NOW + timedelta(minutes=90), rules)
    assert incident_of(store, "a") == incident_of(store, "b")


def test_severity_is_the_worst_member_and_cards_follow_each_members_route(store: Store) -> None:
    fire(store, "w", "Slow", severity="warning", service="pix")
    correlate(store)
    [incident] = store.incidents()
    assert incident.severity == "warning" and incident.escalate_at is None
    assert store.card_destinations(incident.id) == ["slack:C"]
    fire(store, "c", "Down", service="pix", at=NOW + timedelta(minutes=1))
    correlate(store, NOW + timedelta(minutes=1))
    raised = store.incident(incident.id)
    assert raised is not None and raised.severity == "critical"
    assert raised.escalate_at == NOW + timedelta(minutes=11)
    assert store.card_destinations(incident.id) == ["slack:C", "telegram:-1"]


def test_resolves_when_every_member_has_and_a_later_firing_is_a_new_incident(
    store: Store,
) -> None:
    fire(store, "a", "A", group="g")
    fire(store, "b", "B", group="g")
    correlate(store)
    first = incident_of(store, "a")
    fire(store, "a", "A", group="g", status="resolved", at=NOW + timedelta(minutes=1))
    correlate(store, NOW + timedelta(minutes=1))
    assert store.incident(first) is not None and store.incident(first).is_open  # type: ignore[union-attr]
    fire(store, "b", "B", group="g", status="resolved", at=NOW + timedelta(minutes=2))
    correlate(store, NOW + timedelta(minutes=2))
    closed = store.incident(first)
    assert closed is not None and (closed.state, closed.resolution) == ("resolved", "resolved")
    fire(store, "a", "A", group="g", at=NOW + timedelta(minutes=3))
    correlate(store, NOW + timedelta(minutes=3))
    assert incident_of(store, "a") != first


def test_a_muted_finding_kind_joins_but_is_not_pushed(store: Store) -> None:
    store.mute("surge", "denied_rate", NOW + timedelta(hours=1), NOW)
    finding(store, "surge-1")
    correlate(store)
    [incident] = store.incidents()
    assert store.card_destinations(incident.id) == []


def test_the_timeline_tells_opened_joined_symptom_acked_escalated_silenced(
    store: Store,
) -> None:
    fire(store, "a", "ApiDown", service="pix")
    correlate(store)
    for i in range(3):
        fire(store, f"a{i}", "ApiDown", service="pix", at=NOW + timedelta(seconds=10))
    fire(store, "db", "DbDown", service="pix", at=NOW + timedelta(seconds=20))
    correlate(store, NOW + timedelta(seconds=20))
    assert store.ack_incident(1, "telegram:7", NOW + timedelta(minutes=1))
    assert not store.ack_incident(1, "telegram:8", NOW + timedelta(minutes=2))  # once
    store.silence_incident(1, "slack:U1", NOW + timedelta(hours=1), NOW + timedelta(minutes=3))
    view = store.incident_view(1, with_timeline=True)
    assert view is not None
    assert [(e.event, e.actor) for e in view.timeline] == [
        ("opened", "alertmanager"),
        ("joined", "nightshift"),
        ("symptom", "nightshift"),
        ("acked", "telegram:7"),
        ("silenced", "slack:U1"),
    ]
    assert view.timeline[1].detail == {"name": "ApiDown", "count": 3}
    # The new critical symptom rings where the incident's card already is.
    claimed = store.claim_deliveries(NOW + timedelta(minutes=5), timedelta(minutes=1), 10)
    assert sorted((d.subject_kind, d.destination) for d in claimed) == [
        ("symptom", "slack:C"),
        ("symptom", "telegram:-1"),
    ]


def test_false_alarm_resolves_mutes_its_kinds_for_an_hour_and_counts(store: Store) -> None:
    finding(store, "surge-1")
    correlate(store)
    judged = store.judge_false(1, "telegram:7", NOW, timedelta(hours=1))
    assert judged is not None and (judged.state, judged.resolution) == ("resolved", "false")
    assert store.muted_until("surge", "denied_rate", NOW) == NOW + timedelta(hours=1)
    assert store.judged(NOW - timedelta(days=1)) == (1, 1)
    finding(store, "surge-2", at=NOW + timedelta(minutes=5))
    correlate(store, NOW + timedelta(minutes=5))
    second = store.incident_of("finding", "surge-2")
    assert second is not None and store.card_destinations(second.id) == []  # muted
    assert store.judged(NOW - timedelta(days=1)) == (2, 1)


def test_an_incident_survives_a_reopened_store(database_url: str) -> None:
    from storage.store import open_store

    first = open_store(database_url)
    fire(first, "a", "A")
    correlate(first)
    first.close()  # ... as after a kill -9: everything is in the database
    again = open_store(database_url)
    try:
        [incident] = again.incidents()
        assert incident.title == "A — A down" and incident.is_open
        assert again.card_destinations(incident.id) == ["slack:C", "telegram:-1"]
    finally:
        again.close()


@pytest.mark.parametrize("seconds", [0, 30])
def test_a_change_waiting_in_the_inbox_is_joined_once(store: Store, seconds: int) -> None:
    fire(store, "a", "A")
    correlate(store, NOW + timedelta(seconds=seconds))
    assert correlate(store, NOW + timedelta(seconds=seconds)) == []  # nothing left to join
    view = store.incident_view(1)
    assert view is not None and view.members[0].firing == 1
