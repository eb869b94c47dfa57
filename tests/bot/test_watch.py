"""The live detector in `serve`: minutes judged as they close, findings stored and shown."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import App, Core
from bot.routing import Routes
from bot.watch import LAG, FeedWatch, release_freed_memory
from skills.core import Invocation
from storage.correlation import Correlation
from storage.parsing import load_file
from storage.records import AlertGroup, AlertIn
from tests.conftest import DATA
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")


async def test_a_labelled_failed_surge_is_found_live_and_shown(
    core: Core, clock: FixedClock
) -> None:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    core.store.ingest(batch)
    # LABELS.md: failed and backend_reversed burst on 07-13 16:00-16:43 (São Paulo).
    start = datetime(2025, 7, 13, 16, 0, tzinfo=SP).astimezone(UTC)
    clock.set(start - timedelta(minutes=30))
    watch = FeedWatch(core.store, clock)
    watch.warm()
    found = []
    for _ in range(40):
        clock.advance(minutes=1)
        found.extend(watch.tick())
    failed = [f for f in found if "failed" in f.statuses and not f.resolved]
    assert failed, [f.key for f in found]
    assert failed[0].detected_at - start <= timedelta(minutes=5)
    stored = core.store.open_anomalies()
    assert any("failed" in a.statuses for a in stored)
    reply = await core.handle(Invocation("console", "op", "anomalias 1h"))
    assert "failed" in reply.plain_text()


def _watchdog(core: Core, when: datetime) -> None:
    alert = AlertIn("wd", "firing", {"alertname": "Watchdog", "severity": "none"}, {}, when, None)
    core.store.apply_alert_group(AlertGroup("nightshift", "firing", "g", (alert,)), when)


def test_a_silent_watchdog_raises_our_own_critical_alert_and_clears(
    core: Core, clock: FixedClock
) -> None:
    routes = Routes.default("C1", ["-100"], console=False)
    watch = FeedWatch(core.store, clock)
    assert watch.check_watchdog() == []  # no Watchdog ever seen: nothing to miss
    _watchdog(core, clock.now())
    clock.advance(minutes=9)
    assert watch.check_watchdog() == []
    clock.advance(minutes=2)
    [raised] = watch.check_watchdog()
    ours = core.store.alert(raised.fingerprint)
    assert ours is not None and ours.severity == "critical"
    assert ours.alertname == "AlertmanagerWatchdogMissing"
    assert watch.check_watchdog() == []  # raised once
    core.store.correlate(clock.now(), Correlation(), routes)
    incident = core.store.incident_of("alert", raised.fingerprint)
    assert incident is not None and incident.severity == "critical"
    assert core.store.card_destinations(incident.id) == ["slack:C1", "telegram:-100"]
    _watchdog(core, clock.now())
    [cleared] = watch.check_watchdog()
    assert cleared.new_status == "resolved"


async def test_a_feed_fire_is_one_incident_with_the_approvals_it_cost(
    core: Core, clock: FixedClock
) -> None:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    core.store.ingest(batch)
    # LABELS.md: failed and backend_reversed burst on 07-13 16:00-16:43, approvals dipping.
    start = datetime(2025, 7, 13, 16, 0, tzinfo=SP).astimezone(UTC)
    clock.set(start - timedelta(minutes=30))
    watch = FeedWatch(core.store, clock)
    watch.warm()
    routes = Routes.default(None, [], console=True)
    told: list[list[str]] = []
    for _ in range(120):
        clock.advance(minutes=1)
        watch.tick()
        core.store.correlate(clock.now(), Correlation(), routes)
        told.append(core.store.card_destinations(1))
    [incident] = core.store.incidents(since=start - timedelta(hours=1))
    assert incident.source == "feed" and incident.severity == "critical"
    assert incident.state == "resolved"  # the burst is over by 17:30
    view = core.store.incident_view(incident.id)
    assert view is not None and len(view.findings) >= 1
    assert view.approvals_lost > 100  # approvals dipped while failures surged
    assert told[-1] == ["console"]
    critical = [
        a.key
        for a in core.store.anomalies(start - timedelta(hours=1), clock.now())
        if a.severity == "critical"
    ]
    assert set(critical) <= set(view.findings)


async def test_a_surge_names_the_merchants_that_carry_it(core: Core, clock: FixedClock) -> None:
    from storage.parsing import EventRow, FeedBatch

    core.store.ingest(load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP))
    start = datetime(2025, 7, 13, 16, 0, tzinfo=SP).astimezone(UTC)
    events = tuple(
        EventRow(
            f"ev-{m}-{k}",
            int((start + timedelta(minutes=m)).timestamp()),
            "failed",
            10.0,
            "loja-77" if k < 8 else f"loja-{k}",
        )
        for m in range(20)
        for k in range(10)
    )
    core.store.ingest(FeedBatch(events=events))
    clock.set(start - timedelta(minutes=30))
    watch = FeedWatch(core.store, clock)
    watch.warm()
    found = []
    for _ in range(45):
        clock.advance(minutes=1)
        found.extend(watch.tick())
    assert any(dict(f.evidence.merchants).get("loja-77", 0) >= 0.6 for f in found)
    stored = core.store.anomalies(start - timedelta(minutes=30), clock.now())
    texts = [a.explanation_en for a in stored if "failed" in a.statuses]
    assert any("mostly loja-77 (" in t for t in texts), texts
    texts = [a.explanation_pt for a in stored if "failed" in a.statuses]
    assert any("concentrado em loja-77 (" in t for t in texts), texts


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="not glibc")
def test_memory_a_warm_up_freed_goes_back_to_the_os() -> None:
    """The warm-up's frames are freed when it ends, but glibc keeps a freed heap for reuse:
    without the trim `serve` would hold the warm-up's peak for good."""
    blocks = [bytes(4096) + bytes([i % 256]) for i in range(40_000)]  # ~160 MiB on the heap
    last = blocks[-1]  # still in use, at the top of the heap: the rest cannot shrink by itself
    held = _rss_mib()
    del blocks
    assert _rss_mib() > held - 40  # freed, and still resident
    release_freed_memory()
    assert _rss_mib() < held - 120
    assert last[-1] == (40_000 - 1) % 256


_CHURN = """
import resource, sys
sys.path.insert(0, {root!r})
from bot.watch import keep_freed_memory
if {keep}:
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):  # what a batch allocates and frees: a body, its text, numpy columns
    parts = [bytearray(1_200_000), bytearray(1_200_000), *(bytearray(80_000) for _ in range(50))]
    del parts
before = faults()
for _ in range(40):
    parts = [bytearray(1_200_000), bytearray(1_200_000), *(bytearray(80_000) for _ in range(50))]
    del parts
print(faults() - before)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallopt"), reason="not glibc")
def test_in_serve_what_a_request_frees_stays_for_the_next_one() -> None:
    """A batch's buffers, freed, were handed back to the OS and faulted in again, page by
    page, by the next batch; kept, the next batch reuses them."""
    root = str(Path(__file__).resolve().parents[2])
    faults = {
        keep: int(
            subprocess.run(
                [sys.executable, "-c", _CHURN.format(root=root, keep=keep)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for keep in (False, True)
    }
    assert faults[False] > 40 * 500  # each of the 40 batches faulted its 6 MB in again
    assert faults[True] < faults[False] / 10


def test_in_serve_what_the_warm_up_loaded_is_kept_out_of_full_collections(
    core: Core, clock: FixedClock
) -> None:
    """The warm-up loads scikit-learn (the status-mix model): half a million objects a full
    collection would sweep, a pause for every request in flight. `serve` freezes them as it
    froze what start-up loaded."""
    core.store.ingest(load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP))
    clock.set(datetime(2025, 7, 14, 12, 0, tzinfo=SP).astimezone(UTC))
    app = App(core, console=False)
    app.gc_frozen = True  # as run_server leaves it
    before = gc.get_freeze_count()
    try:
        app.watch.warm()
        assert "sklearn" in sys.modules
        assert gc.get_freeze_count() > before + 10_000
    finally:
        gc.unfreeze()


async def test_a_slice_outage_is_found_live_stored_with_its_slice_and_named(
    core: Core, clock: FixedClock, tmp_path: Path
) -> None:
    """Issue 15 end to end: a dimensioned feed file ingested as a user would, one acquirer of
    about 5% of the volume goes to zero, and the live tick stores a finding naming it."""
    from detector.slicefeed import simulate_slices

    feed = simulate_slices([("acquirer", 8)], 24 * 8, seed=4, incidents=[], slice_incidents=[])
    rows = feed.slices.rename(columns={"value": "acquirer"})
    shares = rows.groupby("acquirer")["count"].sum() / rows["count"].sum()
    small = str((shares - 0.05).abs().idxmin())
    start = rows["minute"].min() + timedelta(days=7, hours=16)  # a busy afternoon
    down = (rows["acquirer"] == small) & (rows["minute"] >= start)
    gone = rows[down & (rows["status"] == "approved")].set_index("minute")["count"].copy()
    rows.loc[down & (rows["status"] == "approved"), "count"] = 0
    rows["timestamp"] = rows["minute"].map(lambda m: m.isoformat())
    path = tmp_path / "feed.csv"
    rows[["timestamp", "status", "acquirer", "count"]].to_csv(path, index=False)
    core.store.ingest(load_file(path, default_date=date(2025, 1, 1), tz=SP))

    clock.set(start.to_pydatetime() + timedelta(minutes=2))
    watch = FeedWatch(core.store, clock)
    watch.warm()
    found = []
    for _ in range(8):
        clock.advance(minutes=1)
        found.extend(watch.tick())
    assert [f for f in found if f.slice is None] == []  # the total alone raises nothing
    named = [f for f in found if f.slice == (("acquirer", small),)]
    assert named and named[0].detected_at - start <= timedelta(minutes=5)
    stored = [a for a in core.store.open_anomalies() if a.slice]
    assert [dict(a.slice or {}) for a in stored] == [{"acquirer": small}]
    # what the slice lost: the approvals that vanished from its judged minutes, not the total's
    judged = gone[(gone.index >= stored[0].start) & (gone.index <= clock.now() - LAG)].sum()
    assert 0.7 * judged <= stored[0].approvals_lost <= 1.3 * judged, (stored[0], judged)
    reply = (await core.handle(Invocation("console", "op", "anomalias 1h"))).plain_text()
    assert f"acquirer={small}" in reply
    status = (await core.handle(Invocation("console", "op", "status"))).plain_text()
    assert f"🧩 acquirer={small}: " in status
    metrics = await core.handle(Invocation("console", "op", "metricas por adquirente"))
    lines = metrics.plain_text().splitlines()
    assert lines[0].startswith("📊 acquirer: fatias")
    assert f" acquirer={small}: " in lines[2], (small, lines)  # the worst first
    assert len(lines) == 2 + 8
    chart = await core.handle(Invocation("console", "op", f"grafico 1h acquirer={small}"))
    assert chart.image is not None and chart.image.data.startswith(b"\x89PNG")
    assert chart.image.caption.startswith(f"acquirer={small} approved · ")
    unknown = await core.handle(Invocation("console", "op", "grafico 1h acquirer=nobody"))
    assert "Nenhuma transação acquirer=nobody" in unknown.plain_text()
