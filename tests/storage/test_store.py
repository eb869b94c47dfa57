"""The store on SQLite and PostgreSQL: idempotent feed, alert state, records, schema versions."""

from __future__ import annotations

import dataclasses
import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import make_url

from storage import outbox, schema
from storage.dialects import dialect_for, postgres
from storage.migrations import HEAD
from storage.outbox import Notice
from storage.parsing import FeedBatch, load_file, parse_json
from storage.records import AlertChange, AlertGroup, AlertIn, AnomalyRecord
from storage.store import StorageError, Store, open_store
from tests.conftest import DATA
from tests.realservers import connect
from tests.storage import schema_v2
from tests.storage.downgrade import stamp_older

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2025, 7, 14, 15, 0, tzinfo=UTC)
DAY = date(2025, 7, 14)
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_cloudwalk_file_twice_changes_no_count(store: Store) -> None:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    store.ingest(batch)
    first = store.totals_by_status(*EVERYTHING)
    store.ingest(batch)
    assert store.totals_by_status(*EVERYTHING) == first
    # LABELS.md: approved is about 117 a minute over 4320 minutes.
    assert 480_000 < first["approved"] < 530_000
    assert set(first) == {
        "approved",
        "denied",
        "failed",
        "reversed",
        "backend_reversed",
        "refunded",
    }


def test_count_row_sets_its_bucket(store: Store) -> None:
    rows = '[{"timestamp": "2025-07-14T03:00:00Z", "status": "approved", "count": 10}]'
    store.ingest(parse_json(rows, default_date=DAY, tz=SP))
    store.ingest(parse_json(rows.replace("10", "12"), default_date=DAY, tz=SP))
    assert store.totals_by_status(*EVERYTHING) == {"approved": 12}


def test_events_are_counted_once_by_id(store: Store) -> None:
    rows = """[
      {"id": "tx-1", "timestamp": "2025-07-14T03:00:10Z", "status": "failed", "amount": 10.5,
       "merchant_id": "m-9"},
      {"id": "tx-2", "timestamp": "2025-07-14T03:00:50Z", "status": "failed", "merchant_id": "m-9"},
      {"id": "tx-1", "timestamp": "2025-07-14T03:00:10Z", "status": "failed"}
    ]"""
    batch = parse_json(rows, default_date=DAY, tz=SP)
    assert store.ingest(batch).new_events == 2
    assert store.ingest(batch).new_events == 0
    assert store.totals_by_status(*EVERYTHING) == {"failed": 2}
    merchants = store.merchants_frame(*EVERYTHING)
    assert merchants.to_dict("records") == [
        {
            "minute": datetime(2025, 7, 14, 3, 0, tzinfo=UTC),
            "status": "failed",
            "merchant_id": "m-9",
            "count": 2,
        }
    ]


def test_counts_frame_is_utc_and_bounded(store: Store) -> None:
    batch = load_file(DATA / "transactions_1.csv", default_date=date(2025, 7, 12), tz=SP)
    store.ingest(batch)
    # 00h 00 in São Paulo is 03:00 UTC.
    start = datetime(2025, 7, 12, 3, 0, tzinfo=UTC)
    frame = store.counts_frame(start, start + timedelta(minutes=1))
    assert set(frame["status"]) == {"approved", "denied", "refunded"}
    assert frame["minute"].dt.tz is not None
    assert store.last_minute() == datetime(2025, 7, 13, 2, 59, tzinfo=UTC)


def _group(*alerts: AlertIn) -> AlertGroup:
    return AlertGroup(receiver="nightshift", status="firing", group_key="{}:{}", alerts=alerts)


def _alert(status: str = "firing", fingerprint: str = "abc123") -> AlertIn:
    return AlertIn(
        fingerprint=fingerprint,
        status=status,
        labels={"alertname": "HighErrorRate", "severity": "critical"},
        annotations={"summary": "errors"},
        starts_at=NOW - timedelta(minutes=5),
        ends_at=None if status == "firing" else NOW,
    )


def test_alert_lifecycle_is_idempotent(store: Store) -> None:
    changes = store.apply_alert_group(_group(_alert()), NOW)
    assert [(c.old_status, c.new_status) for c in changes] == [(None, "firing")]
    assert store.apply_alert_group(_group(_alert()), NOW + timedelta(minutes=1)) == []
    assert [a.fingerprint for a in store.alerts()] == ["abc123"]
    resolved = store.apply_alert_group(_group(_alert("resolved")), NOW + timedelta(minutes=2))
    assert [(c.old_status, c.new_status) for c in resolved] == [("firing", "resolved")]
    assert store.alerts() == []
    record = store.alerts(active_only=False)[0]
    assert record.status == "resolved" and record.ends_at == NOW
    assert record.first_received == NOW
    assert store.alert_counts_since(NOW - timedelta(hours=1)) == {"firing": 1, "resolved": 1}


def test_alert_ack_and_lookup(store: Store) -> None:
    store.apply_alert_group(_group(_alert()), NOW)
    assert store.ack_alert("abc123", "telegram:1", NOW)
    assert store.alerts()[0].acked_by == "telegram:1"
    assert [a.fingerprint for a in store.find_alerts("abc")] == ["abc123"]
    assert [a.fingerprint for a in store.find_alerts("higherrorrate")] == ["abc123"]
    assert store.find_alerts("%") == []


def test_anomaly_upsert_and_period(store: Store) -> None:
    record = AnomalyRecord(
        key="surge:failed:1",
        kind="surge",
        metric="failed",
        statuses=("failed",),
        start=NOW - timedelta(minutes=30),
        end=None,
        detected_at=NOW - timedelta(minutes=28),
        updated_at=NOW,
        severity="critical",
        score=0.97,
        expected=0.1,
        observed=12.3,
        explanation_pt="failed em 12,3%",
        explanation_en="failed at 12.3%",
        resolved=False,
    )
    store.save_anomaly(record)
    store.save_anomaly(record)
    assert [a.key for a in store.open_anomalies()] == ["surge:failed:1"]
    closed = AnomalyRecord(
        **{**{f: getattr(record, f) for f in record.__slots__}, "end": NOW, "resolved": True}
    )
    store.save_anomaly(closed)
    assert store.open_anomalies() == []
    assert store.anomalies(NOW - timedelta(hours=1), NOW + timedelta(minutes=1))[0].resolved
    assert store.anomalies(NOW + timedelta(hours=1), NOW + timedelta(hours=2)) == []


def test_incidents_and_audit(store: Store) -> None:
    opened = store.open_incident("approvals falling", "telegram:1", NOW)
    assert [i.id for i in store.incidents(open_only=True)] == [opened.id]
    closed = store.close_incident(opened.id, "telegram:1", NOW + timedelta(hours=1))
    assert closed is not None and closed.closed_by == "telegram:1"
    assert store.incidents(open_only=True) == []
    store.record_audit("telegram:1", "runbook.run", {"name": "disk-space"}, "ok", NOW)
    store.record_audit("slack:U1", "chat.refused", {"text": "status"}, "refused", NOW)
    entries = store.audit_entries("runbook.")
    assert [(e.actor, e.detail, e.outcome) for e in entries] == [
        ("telegram:1", {"name": "disk-space"}, "ok")
    ]


def test_reopening_keeps_data_and_version(database_url: str) -> None:
    first = open_store(database_url)
    first.open_incident("kept", "console:op", NOW)
    first.close()
    again = open_store(database_url)
    assert again.schema_version() == HEAD
    assert [i.title for i in again.incidents()] == ["kept"]
    again.close()


def test_database_from_a_newer_nightshift_is_refused(database_url: str) -> None:
    opened = open_store(database_url)
    with opened.engine.begin() as conn:
        conn.execute(insert(schema.schema_version).values(version=HEAD + 5, applied_at=NOW))
    opened.close()
    with pytest.raises(StorageError, match="newer than this nightshift"):
        open_store(database_url)


def test_unreachable_database_is_a_storage_error() -> None:
    dead = open_store("postgresql+psycopg://nobody@127.0.0.1:1/none", migrate_schema=False)
    assert not dead.ping()
    with pytest.raises(StorageError):
        dead.totals_by_status(*EVERYTHING)
    with pytest.raises(StorageError):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_a_database_other_than_sqlite_or_postgresql_is_refused_by_name() -> None:
    with pytest.raises(StorageError, match="SQLite or PostgreSQL, not 'mysql'"):
        open_store("mysql://nobody@127.0.0.1/none")


def test_a_lease_is_one_holders_until_it_expires_or_is_released(store: Store) -> None:
    ttl, key = timedelta(seconds=30), "lease:scheduler"

    def at(seconds: int) -> datetime:
        return NOW + timedelta(seconds=seconds)

    assert store.take_lease(key, "a", at(0), ttl)
    assert not store.take_lease(key, "b", at(10), ttl)
    assert store.take_lease(key, "a", at(20), ttl)  # renewed
    assert not store.take_lease(key, "b", at(45), ttl)  # 25 s after the renewal
    assert store.take_lease(key, "b", at(51), ttl)  # 31 s: expired, taken over
    store.release_lease(key, "a")  # not a's any more: nothing happens
    assert not store.take_lease(key, "a", at(52), ttl)
    store.release_lease(key, "b")
    assert store.take_lease(key, "a", at(53), ttl)
    assert store.get_state(key) == "a"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    opened = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    with opened.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    opened.close()
    assert mode == "wal"


def test_retention_drops_old_minutes_only(store: Store) -> None:
    rows = (
        '[{"timestamp": "2025-01-01T00:00:00Z", "status": "approved", "count": 1},'
        ' {"timestamp": "2025-07-14T00:00:00Z", "status": "approved", "count": 2}]'
    )
    store.ingest(parse_json(rows, default_date=DAY, tz=SP))
    assert store.delete_counts_before(datetime(2025, 6, 1, tzinfo=UTC)) == 1
    assert store.totals_by_status(*EVERYTHING) == {"approved": 2}


def test_a_version_4_database_gets_lease_holders(database_url: str) -> None:
    from sqlalchemy import inspect

    open_store(database_url).close()
    stamp_older(  # undo version 5: what a version 4 database is
        database_url,
        4,
        NOW,
        *(f"ALTER TABLE {table} DROP COLUMN claimed_by" for table in ("cards", "deliveries")),
    )
    upgraded = open_store(database_url)
    try:
        assert upgraded.schema_version() == HEAD == 6
        for table in ("cards", "deliveries"):
            columns = {c["name"] for c in inspect(upgraded.engine).get_columns(table)}
            assert "claimed_by" in columns
    finally:
        upgraded.close()


def test_leases_are_released_by_their_holder_or_all_at_once(store: Store) -> None:
    lease = timedelta(minutes=2)
    for n, destination in enumerate(("slack:CA", "slack:CB", "slack:CC")):
        store.open_incident(f"i{n}", "op", NOW, route=[destination])
        store.enqueue(
            subject_kind="reply",
            subject=f"r{n}",
            event="post",
            severity="info",
            destinations=[destination],
            now=NOW,
        )
    for destination, holder in (("slack:CA", "a:1"), ("slack:CB", "b:1"), ("slack:CC", None)):
        assert store.claim_cards(destination, NOW, lease, holder=holder)
        assert store.claim_deliveries(NOW, lease, destination=destination, holder=holder)
    assert store.release_claims("a:1") == 2  # a's card and delivery
    assert store.claim_cards("slack:CA", NOW, lease)
    assert store.claim_deliveries(NOW, lease, destination="slack:CA")
    assert not store.claim_cards("slack:CB", NOW, lease)
    assert not store.claim_deliveries(NOW, lease, destination="slack:CB")
    assert store.release_claims() == 6  # every lease, whoever holds it (SQLite's start-up)
    assert store.claim_cards("slack:CB", NOW, lease)


def test_naive_datetimes_are_rejected(sqlite_store: Store) -> None:
    with pytest.raises(StorageError):
        sqlite_store.set_state("k", "v", datetime(2025, 1, 1))  # noqa: DTZ001 - the point


def test_a_version_1_database_is_upgraded_in_place(database_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(database_url)
    v1 = [
        t
        for name, t in schema_v2.metadata.tables.items()
        if name not in ("notifications", "deliveries")
    ]
    schema_v2.metadata.create_all(engine, tables=v1)
    with engine.begin() as conn:
        conn.execute(insert(schema_v2.schema_version).values(version=1, applied_at=NOW))
        conn.execute(insert(schema_v2.incidents).values(title="kept", opened_by="x", opened_at=NOW))
    engine.dispose()
    upgraded = open_store(database_url)
    try:
        assert upgraded.schema_version() == HEAD == 6
        [kept] = upgraded.incidents()
        assert (kept.title, kept.state, kept.source) == ("kept", "open", "manual")
        tables = set(inspect(upgraded.engine).get_table_names())
        assert {"notifications", "deliveries", "incident_members", "cards"} <= tables
        assert (
            upgraded.enqueue(
                subject_kind="reply",
                subject="x",
                event="post",
                severity="info",
                destinations=["console"],
                now=NOW,
            )
            is not None
        )
    finally:
        upgraded.close()


def test_a_version_2_database_keeps_its_data_and_drops_superseded_alert_messages(
    database_url: str,
) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    schema_v2.metadata.create_all(engine)
    v2 = schema_v2
    with engine.begin() as conn:
        conn.execute(insert(v2.schema_version).values(version=2, applied_at=NOW))
        conn.execute(
            insert(v2.incidents).values(
                title="closed", opened_by="x", opened_at=NOW, closed_by="y", closed_at=NOW
            )
        )
        conn.execute(
            insert(v2.anomalies).values(
                key="k",
                kind="surge",
                metric="denied_rate",
                statuses=["denied"],
                start=NOW,
                end=None,
                detected_at=NOW,
                updated_at=NOW,
                severity="critical",
                score=0.5,
                expected=1.0,
                observed=9.0,
                explanation_pt="pt",
                explanation_en="en",
                resolved=False,
            )
        )
        for n, kind in enumerate(("alert", "reply"), 1):
            conn.execute(
                insert(v2.notifications).values(
                    id=n,
                    subject_kind=kind,
                    subject=f"s{n}",
                    event="firing",
                    severity="critical",
                    body={},
                    created_at=NOW,
                )
            )
            conn.execute(
                insert(v2.deliveries).values(
                    notification_id=n,
                    destination="console",
                    status="pending",
                    attempts=0,
                    next_at=NOW,
                )
            )
    engine.dispose()
    upgraded = open_store(database_url)
    try:
        assert upgraded.schema_version() == HEAD
        [closed] = upgraded.incidents()
        assert (closed.state, closed.resolution) == ("resolved", "closed")
        finding = upgraded.anomaly("k")
        assert finding is not None and finding.approvals_lost == 0.0
        # The old alert message is now an incident card's to tell; the briefing still goes.
        assert upgraded.outbox_counts() == {"merged": 1, "pending": 1}
    finally:
        upgraded.close()


def test_outbox_claims_are_leased(store: Store) -> None:
    store.enqueue(
        subject_kind="reply",
        subject="b",
        event="post",
        severity="info",
        destinations=["console", "slack:C1", "console"],
        now=NOW,
    )
    first = store.claim_deliveries(NOW, timedelta(minutes=2))
    assert sorted(d.destination for d in first) == ["console", "slack:C1"]
    assert store.claim_deliveries(NOW + timedelta(minutes=1), timedelta(minutes=2)) == []
    again = store.claim_deliveries(NOW + timedelta(minutes=3), timedelta(minutes=2))
    assert len(again) == 2
    store.finish_deliveries([d.id for d in again], "sent", NOW, ref="m1")
    assert store.outbox_counts() == {"sent": 2}
    store.enqueue(
        subject_kind="reply",
        subject="c",
        event="post",
        severity="info",
        destinations=["console", "slack:C1"],
        now=NOW,
    )
    # A destination's courier leases its own deliveries only.
    later = NOW + timedelta(minutes=10)
    [slack] = store.claim_deliveries(later, timedelta(minutes=2), destination="slack:C1")
    assert (slack.destination, slack.subject) == ("slack:C1", "c")
    [console] = store.claim_deliveries(later, timedelta(minutes=2))
    assert console.destination == "console"


def test_a_backlog_is_claimed_in_several_leases_oldest_first_each_once(store: Store) -> None:
    notices = [
        Notice("reply", f"r{i:04d}", "post", "info", ["console"], NOW, {"n": i})
        for i in range(1_203)
    ]
    with store.engine.begin() as conn:
        outbox.enqueue_many(conn, dialect_for(store.engine.url), notices)
    first = store.claim_deliveries(NOW, timedelta(minutes=2), limit=1_100)
    assert [d.body["n"] for d in first] == list(range(1_100))
    rest = store.claim_deliveries(NOW, timedelta(minutes=2), limit=1_100)
    assert [d.subject for d in rest] == [f"r{i:04d}" for i in range(1_100, 1_203)]
    assert store.claim_deliveries(NOW, timedelta(minutes=2)) == []


def test_hourly_totals_match_the_minute_buckets(store: Store) -> None:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    store.ingest(batch)
    start = datetime(2025, 7, 13, 0, 0, tzinfo=UTC)
    hours = store.hourly_totals(start, start + timedelta(hours=6))
    assert list(hours) == [start + timedelta(hours=h) for h in range(6)]
    for hour, totals in hours.items():
        assert totals == store.totals_by_status(hour, hour + timedelta(hours=1))


def _random_groups(seed: int, n: int) -> list[tuple[AlertGroup, datetime]]:
    """Webhooks over a few fingerprints that fire, repeat and resolve in a random order."""
    rng = random.Random(seed)
    groups = []
    for i in range(n):
        alerts = tuple(
            AlertIn(
                fingerprint=f"fp{k}",
                status=rng.choice(("firing", "firing", "resolved")),
                labels={"alertname": f"A{k}", "severity": rng.choice(("critical", "warning"))},
                annotations={"summary": f"take {i}"},
                starts_at=NOW - timedelta(minutes=k),
                ends_at=None,
            )
            for k in rng.sample(range(6), rng.randint(1, 3))
        )
        groups.append((_group(*alerts), NOW + timedelta(seconds=i)))
    return groups


def _inbox(store: Store) -> list[tuple[str, str, str]]:
    """The changes waiting for the incident correlator, in order."""
    box = schema.incident_inbox
    with store.engine.connect() as conn:
        rows = conn.execute(select(box.c.kind, box.c.key, box.c.status).order_by(box.c.id))
        return [(str(k), str(key), str(s)) for k, key, s in rows]


def _outcome(store: Store) -> tuple[object, ...]:
    return (
        sorted(store.alerts(active_only=False), key=lambda a: a.fingerprint),
        store.alert_counts_since(NOW - timedelta(hours=1)),
        _inbox(store),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_webhooks_in_one_transaction_store_what_one_at_a_time_would(
    store: Store, tmp_path: Path, seed: int
) -> None:
    groups = _random_groups(seed, 40)
    reference = open_store(f"sqlite:///{tmp_path / 'one-at-a-time.db'}")
    one_by_one = [reference.apply_alert_group(g, at) for g, at in groups]
    assert store.apply_alert_groups(groups) == one_by_one
    assert any(one_by_one) and not all(one_by_one)  # changes and re-sent groups both occur
    assert _outcome(store) == _outcome(reference)
    reference.close()


_REFUSE_BOOM = {
    "sqlite": [
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON alert_history WHEN NEW.fingerprint = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.fingerprint = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON alert_history "
        "FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
    ],
}


def test_a_webhook_group_the_database_refuses_midway_leaves_nothing_behind(store: Store) -> None:
    """A statement refused in the middle of a group's writes (on PostgreSQL they go out as one
    pipeline, whose errors surface only at its end) is a StorageError, and the whole group is
    rolled back: no alert, history or change for the incidents of it stays."""
    with store.engine.begin() as conn:
        for ddl in _REFUSE_BOOM[store.dialect]:
            conn.exec_driver_sql(ddl)
    fine, boom = (
        AlertIn(f, "firing", {"alertname": f, "severity": "critical"}, {}, NOW, None)
        for f in ("fine", "boom")
    )
    with pytest.raises(StorageError):
        store.apply_alert_groups([(_group(fine), NOW), (_group(boom), NOW)])
    assert store.alerts(active_only=False) == []
    assert _inbox(store) == []
    assert store.apply_alert_group(_group(fine), NOW) == [AlertChange("fine", None, "firing")]
    assert _inbox(store) == [("alert", "fine", "firing")]
    if store.dialect == "postgresql":
        assert _autocommit_in_pool(store) == [False, False]


def test_events_sent_twice_at_once_are_counted_once(store: Store) -> None:
    """Overlapping pages of events from several writers at the same time (replicas, retries)."""

    def page(first: int) -> FeedBatch:
        rows = [
            {"id": f"tx-{i}", "timestamp": "2025-07-14T03:00:10Z", "status": "failed"}
            for i in range(first, first + 300)
        ]
        return parse_json(json.dumps(rows), default_date=DAY, tz=SP)

    pages = [page(first) for first in (0, 100, 200, 0, 100, 200)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        new = sum(result.new_events for result in pool.map(store.ingest, pages))
    assert new == 500
    assert store.totals_by_status(*EVERYTHING) == {"failed": 500}


def test_reads_in_a_reading_block_share_one_connection(store: Store) -> None:
    """`status` and `briefing` read a dozen things: one pool checkout (and ping) for all."""
    checkouts: list[object] = []
    event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))
    with store.reading():
        assert store.ping()
        store.alerts()
        store.totals_by_status(*EVERYTHING)
        with store.reading():
            store.open_anomalies()
    assert len(checkouts) == 1
    store.alerts()
    assert len(checkouts) == 2


def test_bulk_writes_store_exactly_what_sqlalchemy_core_stores(store: Store) -> None:
    """The dialect's driver-level inserts and updates bind each value as Core would: same JSON,
    same datetimes, compared as the database holds them (text on SQLite), not only as read
    back."""
    when = datetime(2025, 7, 14, 15, 0, 1, 250_000, tzinfo=UTC)
    row = {
        "alertname": "A",
        "status": "firing",
        "severity": "critical",
        "labels": {"alertname": "A", "zone": "são paulo"},
        "annotations": {"summary": 'quote " and ünicode'},
        "starts_at": when,
        "ends_at": None,
        "generator_url": "http://x/?a=1%20b",
        "receiver": "r",
        "group_key": "{}:{}",
        "first_received": when,
        "last_received": when,
        "changed_at": when,
        "acked_by": None,
        "acked_at": None,
    }
    a, dialect = schema.alerts, dialect_for(store.engine.url)
    with store.engine.begin() as conn:
        conn.execute(insert(a), [{"fingerprint": "core", **row}])
        dialect.insert_rows(conn, a, [{"fingerprint": "bulk", **row}])
        later = {"status": "resolved", "ends_at": when, "annotations": {"summary": "done"}}
        conn.execute(update(a).where(a.c.fingerprint == "core").values(**later))
        dialect.update_rows(conn, a, "fingerprint", ["bulk"], [later])
        as_stored = {
            fingerprint: rest
            for fingerprint, *rest in conn.exec_driver_sql(
                "SELECT fingerprint, labels, annotations, starts_at, ends_at, changed_at, "
                "generator_url, status FROM alerts"
            )
        }
    assert as_stored["bulk"] == as_stored["core"]
    core = store.alert("core")
    assert core is not None
    assert store.alert("bulk") == dataclasses.replace(core, fingerprint="bulk")


def _drop_connections(url: str) -> None:
    """What a PostgreSQL restart does to a pool: every server connection of the database ends."""
    base = make_url(url)
    name = base.database
    with connect(base.set(database="postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


@pytest.mark.parametrize(
    ("idle_ping", "fails_once"),
    [
        (0.0, False),  # every pooled connection has rested: pinged, and replaced unnoticed
        (3600.0, True),  # used a moment ago: not pinged, so one write fails and the pool heals
    ],
)
def test_connections_dropped_by_a_server_restart(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch, idle_ping: float, fails_once: bool
) -> None:
    store = open_store(fresh_postgres_url)
    store.set_state("k", "before", NOW)
    _drop_connections(fresh_postgres_url)
    monkeypatch.setattr(postgres, "IDLE_PING", idle_ping)
    if fails_once:
        with pytest.raises(StorageError):
            store.set_state("k", "after", NOW)
    store.set_state("k", "after", NOW)
    assert store.get_state("k") == "after"
    store.close()


def _autocommit_in_pool(store: Store) -> list[bool]:
    """Whether each connection the pool holds would commit statement by statement."""
    held = []
    with store.engine.connect() as first, store.engine.connect() as second:
        for conn in (first, second):
            held.append(bool(conn.connection.driver_connection.autocommit))  # type: ignore[union-attr]
    return held


def test_a_dropped_connection_fails_one_webhook_group_and_the_pool_heals(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Webhook groups go out as one pipelined transaction, with the driver in autocommit while
    it runs: a connection that breaks under it is a StorageError (the group is retried one by
    one), and no connection goes back to the pool still in autocommit."""
    monkeypatch.setattr(postgres, "IDLE_PING", 3600.0)  # not pinged: the write finds out
    store = open_store(fresh_postgres_url)
    first = AlertIn("f1", "firing", {"alertname": "A", "severity": "critical"}, {}, NOW, None)
    assert store.apply_alert_group(_group(first), NOW)
    _drop_connections(fresh_postgres_url)
    second = dataclasses.replace(first, fingerprint="f2")
    with pytest.raises(StorageError):
        store.apply_alert_group(_group(second), NOW)
    assert store.apply_alert_group(_group(second), NOW) == [AlertChange("f2", None, "firing")]
    assert _autocommit_in_pool(store) == [False, False]
    assert [key for _, key, _ in _inbox(store)] == ["f1", "f2"]
    store.close()
