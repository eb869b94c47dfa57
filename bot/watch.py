"""The live detector: each minute, the newest closed minutes of the feed go through the engine."""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from detector.engine import Engine
from detector.findings import Finding
from detector.ledger import Ledger
from detector.offline import by_minute
from detector.slices import SliceWatch
from skills.core import Clock
from skills.findings import anomaly_record
from storage.records import AlertChange, AlertGroup, AlertIn
from storage.store import Store

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
HISTORY = timedelta(days=28)
LAG = timedelta(minutes=2)  # a minute is judged once the feed has had time to deliver it
CATCH_UP = timedelta(hours=2)  # after a long stop, judge at most this much of the past
WATCHDOG_AFTER = timedelta(minutes=10)
WATCHDOG_FINGERPRINT = "nightshift-watchdog-missing"


def _by_minute(frame: pd.DataFrame, key: str) -> dict[datetime, dict[str, int]]:
    out: dict[datetime, dict[str, int]] = {}
    for minute, name, count in frame[["minute", key, "count"]].itertuples(index=False):
        out.setdefault(minute.to_pydatetime(), {})[str(name)] = int(count)
    return out


def _merchants(frame: pd.DataFrame) -> dict[datetime, dict[str, dict[str, int]]]:
    """minute → status → merchant → events, from event rows that name their merchant."""
    out: dict[datetime, dict[str, dict[str, int]]] = {}
    columns = frame[["minute", "status", "merchant_id", "count"]].itertuples(index=False)
    for minute, status, merchant, count in columns:
        by_status = out.setdefault(minute.to_pydatetime(), {})
        by_status.setdefault(str(status), {})[str(merchant)] = int(count)
    return out


def release_freed_memory() -> None:
    """Hand back to the OS what a large, passing allocation left free (the warm-up reads 28 days
    of history into frames and drops them): glibc keeps a freed heap for reuse, and `serve`
    would otherwise carry the warm-up's peak for good. A no-op without glibc."""
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own C library
    if trim is not None:
        trim(0)


# glibc's mallopt parameters (malloc.h), and what `serve` sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_FREE, _HEAP_BUFFERS = 16 << 20, 2 << 20


def keep_freed_memory() -> None:
    """Keep what a request frees for the next one. By default glibc hands a free heap top over
    a few MB back to the OS, and maps a buffer over 128 KiB on its own and unmaps it when freed;
    a batch of 10,000 JSON rows then faulted its 8 MB in again, page by page, each request
    (about 2,000 page faults, 3 µs each on a virtual machine: 6 ms of a 55 ms request). Now up
    to 16 MiB free stays in the heap, and buffers up to 2 MiB (a 10,000-row body) come from it;
    larger ones are still mapped on their own, and `release_freed_memory` still hands back all
    that is free after the detector's warm-up. A no-op without glibc."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _HEAP_BUFFERS)
        mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE)


class FeedWatch:
    """Owns the total's Engine and the slices' SliceWatch; `tick()` (blocking: run it in a
    thread) judges what is new and stores it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        engine: Engine | None = None,
        watchdog_after: timedelta = WATCHDOG_AFTER,
        after_warm: Callable[[], None] = release_freed_memory,
    ) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine or Engine()
        self._slices = SliceWatch(self._engine.config)
        self._ledger = Ledger()
        self._told: dict[str, float] = {}  # open finding → approvals lost as last stored
        self._watchdog_after = watchdog_after
        self._after_warm = after_warm
        self._last: datetime | None = None
        self._lock = threading.Lock()  # one tick at a time, whoever calls it

    def _closed_until(self) -> datetime:
        return self._clock.now().replace(second=0, microsecond=0) - LAG

    def warm(self) -> None:
        """Learn the baseline from stored history, up to the last closed minute."""
        until = self._closed_until()
        self._engine.warm(self._store.counts_frame(until - HISTORY, until + MINUTE))
        self._slices.warm(self._store.slice_frame(until - HISTORY, until + MINUTE))
        self._last = until
        self._after_warm()

    def tick(self) -> list[Finding]:
        """Judge every closed minute since the last tick; store and return what changed."""
        with self._lock:
            return self._tick()

    def _tick(self) -> list[Finding]:
        now = self._clock.now()
        until = self._closed_until()
        if self._last is None:
            self.warm()
            return []
        start = max(self._last + MINUTE, until - CATCH_UP)
        counts = _by_minute(self._store.counts_frame(start, until + MINUTE), "status")
        codes = _by_minute(self._store.auth_codes_frame(start, until + MINUTE), "auth_code")
        merchants = _merchants(self._store.merchants_frame(start, until + MINUTE))
        cuts = by_minute(self._store.slice_frame(start, until + MINUTE))
        changed: list[Finding] = []
        volume = self._engine.config.volume_status
        minute = start
        while minute <= until:
            row = counts.get(minute, {})
            if row:  # a minute with no rows at all is a silent feed, not lost sales
                expected, _ = self._engine.expectation(minute, volume)
                self._ledger.add(minute, expected, float(row.get(volume, 0)))
            total = self._engine.step(minute, row, codes.get(minute), merchants.get(minute))
            changed.extend(
                self._slices.step(
                    minute,
                    cuts.get(minute, {}),
                    codes.get(minute),
                    total_open=bool(self._engine.open_findings),
                )
            )
            # After the slices' step, which keeps the minutes a drill-down compares with.
            changed.extend(self._slices.drill(f) for f in total)
            minute += MINUTE
        self._last = until
        changed.extend(self._engine.check_silence(now, self._store.last_minute(before=now)))
        latest = {f.key: f for f in changed}  # each changed episode as it stands now
        # Open episodes cost more by the minute: stored again when their impact grew.
        opened = [*map(self._slices.drill, self._engine.open_findings), *self._slices.open_findings]
        for finding in opened:
            grown = self._lost(finding, None) - self._told.get(finding.key, 0.0)
            if finding.key not in latest and grown >= 1.0:
                latest[finding.key] = finding
        tz = self._engine.config.tz
        for finding in latest.values():
            lost = self._lost(finding, finding.end)
            self._store.save_anomaly(anomaly_record(finding, now, tz, lost))
            if finding.resolved:
                self._told.pop(finding.key, None)
            else:
                self._told[finding.key] = lost
        return changed

    def _lost(self, finding: Finding, end: datetime | None) -> float:
        """The approvals `finding` cost so far: its slice's, or the total's."""
        if finding.slice:
            return self._slices.lost(finding.slice, finding.start, end)
        return self._ledger.lost(finding.start, end)

    def check_watchdog(self) -> list[AlertChange]:
        """Alertmanager's always-firing `Watchdog`: when it stops arriving, raise our own alert
        (and resolve it when it comes back). Silent until a Watchdog has been seen once."""
        now = self._clock.now()
        watchdogs = [a for a in self._store.find_alerts("Watchdog") if a.status == "firing"]
        if not watchdogs:
            return []
        last = max(a.last_received for a in watchdogs)
        missing = now - last > self._watchdog_after
        ours = self._store.alert(WATCHDOG_FINGERPRINT)
        if missing == (ours is not None and ours.status == "firing"):
            return []
        alert = AlertIn(
            fingerprint=WATCHDOG_FINGERPRINT,
            status="firing" if missing else "resolved",
            labels={"alertname": "AlertmanagerWatchdogMissing", "severity": "critical"},
            annotations={
                "summary": "Alertmanager's Watchdog stopped arriving: alerts may not reach us "
                f"(last at {last.isoformat(timespec='minutes')})"
            },
            starts_at=last,
            ends_at=None if missing else now,
        )
        group = AlertGroup("nightshift", alert.status, "nightshift:watchdog", (alert,))
        return self._store.apply_alert_group(group, now)
