"""What the benchmark feeds the bot: feed bodies, Alertmanager payloads and the 90-day store.

The 90-day store (90 days x 1440 minutes x 7 statuses = 907,200 count rows, plus alerts,
anomalies and incidents) is generated with `detector.simulate`, loaded once through
`Store.ingest` into a SQLite file cached under the temp dir (keyed by its last day), and copied
for each use; on PostgreSQL it is loaded into each fresh database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from detector.simulate import simulate
from storage.parsing import CountRow, FeedBatch
from storage.records import AlertGroup, AlertIn, AnomalyRecord
from storage.store import Store, open_store

log = logging.getLogger(__name__)

DAYS = 90
MINUTE = timedelta(minutes=1)
STATUSES = (
    "approved",
    "denied",
    "reversed",
    "refunded",
    "backend_reversed",
    "failed",
    "processing",
)
CACHE = Path(tempfile.gettempdir()) / "nightshift-bench"
_VERSION = 1  # bump when the generated store changes shape


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------ feed bodies


def count_rows(first_minute: int, n: int, seed: int = 0) -> list[tuple[int, str, int]]:
    """`n` count rows (minute epoch, status, count) from `first_minute` on, 7 statuses a minute."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(40, size=n).tolist()
    return [
        (first_minute + 60 * (i // len(STATUSES)), STATUSES[i % len(STATUSES)], counts[i])
        for i in range(n)
    ]


def counts_json(rows: list[tuple[int, str, int]]) -> bytes:
    return json.dumps(
        [{"timestamp": iso(m), "status": s, "count": c} for m, s, c in rows],
        separators=(",", ":"),
    ).encode()


def counts_csv(rows: list[tuple[int, str, int]]) -> bytes:
    lines = ["timestamp,status,count", *(f"{iso(m)},{s},{c}" for m, s, c in rows)]
    return ("\n".join(lines) + "\n").encode()


# Dimensioned count rows: 5 dimensions of 20 values each, drawn with Zipf-like weights.
DIMENSIONS = ("acquirer", "brand", "method", "region", "merchant")
DIMENSION_VALUES = 20
COMBOS_A_MINUTE = 100
DimensionedRows = list[tuple[int, str, tuple[str, ...], int]]


def dimensioned_rows(first_minute: int, minutes: int, seed: int = 7) -> DimensionedRows:
    """Rows (minute epoch, status, values, count) over `minutes` minutes: COMBOS_A_MINUTE draws
    a minute (statuses 80% approved, 15% denied, 5% failed), each (minute, status, values)
    once: nearly every combo is new, the store's worst case."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, DIMENSION_VALUES + 1)
    weights /= weights.sum()
    names = [[f"{d[0]}{v}" for v in range(DIMENSION_VALUES)] for d in DIMENSIONS]
    statuses = ("approved", "denied", "failed")
    rows: DimensionedRows = []
    for m in range(minutes):
        minute = first_minute + 60 * m
        drawn = rng.choice(len(statuses), COMBOS_A_MINUTE, p=(0.8, 0.15, 0.05)).tolist()
        picks = rng.choice(DIMENSION_VALUES, (COMBOS_A_MINUTE, len(DIMENSIONS)), p=weights)
        counts = rng.integers(1, 20, COMBOS_A_MINUTE).tolist()
        seen = set()
        for s, values, n in zip(drawn, picks.tolist(), counts, strict=True):
            key = (s, *values)
            if key not in seen:
                seen.add(key)
                named = tuple(column[v] for column, v in zip(names, values, strict=True))
                rows.append((minute, statuses[s], named, n))
    return rows


def dimensioned_json(rows: DimensionedRows) -> bytes:
    return json.dumps(
        [
            {"timestamp": iso(m), "status": s, **dict(zip(DIMENSIONS, v, strict=True)), "count": c}
            for m, s, v, c in rows
        ],
        separators=(",", ":"),
    ).encode()


def dimensioned_csv(rows: DimensionedRows) -> bytes:
    header = f"timestamp,status,{','.join(DIMENSIONS)},count"
    lines = [header, *(f"{iso(m)},{s},{','.join(v)},{c}" for m, s, v, c in rows)]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True, slots=True)
class EventRowData:
    id: str
    minute: int
    status: str
    amount: float
    merchant_id: str


def event_rows(first_id: int, n: int, first_minute: int) -> list[EventRowData]:
    """`n` events with ids first_id.. ; about 20 events a minute, like a busy hour."""
    return [
        EventRowData(
            id=f"evt-{first_id + i:09d}",
            minute=first_minute + 60 * ((first_id + i) // 20),
            status=STATUSES[(first_id + i) % 3],
            amount=round(10 + (first_id + i) % 500 * 1.37, 2),
            merchant_id=f"m-{(first_id + i) % 997}",
        )
        for i in range(n)
    ]


def events_json(rows: list[EventRowData]) -> bytes:
    return json.dumps(
        [
            {
                "id": e.id,
                "timestamp": iso(e.minute),
                "status": e.status,
                "amount": e.amount,
                "merchant_id": e.merchant_id,
            }
            for e in rows
        ],
        separators=(",", ":"),
    ).encode()


# ------------------------------------------------------------------ Alertmanager payloads


def alert_payload(i: int, fingerprints: int = 400) -> bytes:
    """The i-th webhook of a stream: groups of 1..3 alerts that fire and resolve in turn."""
    size = 1 + i % 3
    name = f"BenchAlert{i % 40:02d}"
    alerts = []
    for k in range(size):
        n = (i * 7 + k * 131) % fingerprints
        status = "firing" if (i // fingerprints + k) % 2 == 0 else "resolved"
        alerts.append(
            {
                "status": status,
                "labels": {
                    "alertname": name,
                    "severity": "critical" if n % 5 == 0 else "warning",
                    "service": f"svc-{n % 17}",
                    "instance": f"10.0.{n // 250}.{n % 250}:9100",
                },
                "annotations": {"summary": f"{name} on svc-{n % 17}", "runbook": "check-http"},
                "startsAt": "2025-07-14T14:52:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z"
                if status == "firing"
                else "2025-07-14T15:02:00.000Z",
                "generatorURL": "http://prometheus.local:9090/graph?g0.expr=up%3D%3D0",
                "fingerprint": f"{n:016x}",
            }
        )
    payload = {
        "receiver": "nightshift",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "version": "4",
        "groupKey": '{}:{alertname="' + name + '"}',
        "truncatedAlerts": 0,
    }
    return json.dumps(payload).encode()


def critical_alert(name: str, fingerprint: str, service: str = "payments-api") -> bytes:
    """One critical firing alert: what must reach the chats."""
    alert = {
        "status": "firing",
        "labels": {"alertname": name, "severity": "critical", "service": service},
        "annotations": {"summary": "payments-api is not answering"},
        "startsAt": "2025-07-14T14:52:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    return json.dumps(
        {
            "receiver": "nightshift",
            "status": "firing",
            "alerts": [alert],
            "groupLabels": {"alertname": name},
            "commonLabels": {"severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.local:9093",
            "version": "4",
            "groupKey": '{}:{alertname="' + name + '"}',
        }
    ).encode()


# ------------------------------------------------------------------------ 90-day store


def store_end(now: datetime) -> datetime:
    """The 90-day history ends at the last UTC midnight (so one cached file serves a day)."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def history_frame(end: datetime, days: int = DAYS) -> pd.DataFrame:
    """`days` x 1440 minutes x 7 statuses ending at `end`: `minute` epoch, `status`, `count`."""
    start = end - timedelta(days=days)
    sim, _ = simulate(days * 24, seed=90, incidents=[], start=start)
    wide = sim.pivot(index="minute", columns="status", values="count")
    index = pd.date_range(start, periods=days * 1440, freq="min")
    wide = wide.reindex(index=index, columns=list(STATUSES)).fillna(0).astype("int64")
    rng = np.random.default_rng(91)
    wide["processing"] = rng.poisson(wide["approved"].to_numpy() * 0.003)
    return wide


def history_batch(wide: pd.DataFrame) -> FeedBatch:
    index = pd.DatetimeIndex(wide.index)
    minutes = index.as_unit("s").asi8.tolist()
    values = wide[list(STATUSES)].to_numpy().tolist()
    return FeedBatch(
        counts=tuple(
            CountRow(m, s, c)
            for m, row in zip(minutes, values, strict=True)
            for s, c in zip(STATUSES, row, strict=True)
        )
    )


def _extras(store: Store, end: datetime) -> None:
    """Alerts, anomalies and incidents over the 90 days, as a busy operation would have."""
    rng = np.random.default_rng(92)
    for day in range(DAYS):
        for k in range(4):
            start = end - timedelta(days=DAYS - day) + timedelta(minutes=int(rng.integers(1440)))
            resolved = day < DAYS - 1 or k < 2
            expected = float(rng.uniform(50, 250))
            store.save_anomaly(
                AnomalyRecord(
                    key=f"bench-{day}-{k}",
                    kind=("drop", "surge", "silence", "mix")[k],
                    metric=("approved", "failed", "feed", "denied")[k],
                    statuses=(("approved",), ("failed",), (), ("denied",))[k],
                    start=start,
                    end=start + timedelta(minutes=12) if resolved else None,
                    detected_at=start + timedelta(minutes=3),
                    updated_at=start + timedelta(minutes=12),
                    severity="critical" if k % 2 == 0 else "warning",
                    score=float(rng.uniform(0.6, 1.0)),
                    expected=expected,
                    observed=expected * float(rng.uniform(0.2, 3.0)),
                    explanation_pt="aprovadas 62% abaixo do normal do horário",
                    explanation_en="approved 62% below normal for this time",
                    resolved=resolved,
                )
            )
    for i in range(60):
        group_alerts = tuple(
            AlertIn(
                fingerprint=f"{i:04x}{k:012x}",
                status="firing" if i >= 45 else "resolved",
                labels={
                    "alertname": f"HistoryAlert{i % 12}",
                    "severity": "critical" if i % 3 == 0 else "warning",
                    "service": f"svc-{k}",
                },
                annotations={"summary": f"history alert {i}"},
                starts_at=end - timedelta(hours=3 * (60 - i)),
                ends_at=None,
            )
            for k in range(3)
        )
        group = AlertGroup("nightshift", group_alerts[0].status, f"g{i}", group_alerts)
        store.apply_alert_group(group, end - timedelta(hours=3 * (60 - i)) + MINUTE)
    for i in range(6):
        store.open_incident(f"bench incident {i}", "console:bench", end - timedelta(days=i * 7))


def fill(url: str, end: datetime) -> float:
    """Load the 90-day history into the (empty) database at `url`; returns Store.ingest seconds."""
    wide = history_frame(end)
    batch = history_batch(wide)
    store = open_store(url)
    try:
        started = time.perf_counter()
        store.ingest(batch)
        took = time.perf_counter() - started
        _extras(store, end)
        if store.dialect == "postgresql":
            # What autovacuum does minutes after a bulk load; measure the store as it settles.
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
    finally:
        store.close()
    return took


@dataclass(frozen=True, slots=True)
class History:
    path: Path  # the cached SQLite file (copy it before use)
    end: datetime
    rows: int
    ingest_seconds: float  # Store.ingest of all rows, when the cache was built


def cached_history(now: datetime) -> History:
    """The 90-day SQLite store, built on first use of the day."""
    end = store_end(now)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"history-v{_VERSION}-{end:%Y%m%d}.db"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        for old in CACHE.glob("history-*"):
            old.unlink()
        log.info("building the 90-day store (907,200 rows) in %s", path)
        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        took = fill(f"sqlite:///{building}", end)
        with contextlib.closing(sqlite3.connect(building)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        building.rename(path)
        meta.write_text(json.dumps({"ingest_seconds": took}))
    info = json.loads(meta.read_text())
    return History(path, end, DAYS * 1440 * len(STATUSES), float(info["ingest_seconds"]))


def copy_history(history: History, folder: Path) -> str:
    """A private copy of the cached store; returns its SQLAlchemy URL."""
    target = folder / f"history-{time.monotonic_ns()}.db"
    shutil.copyfile(history.path, target)
    return f"sqlite:///{target}"
