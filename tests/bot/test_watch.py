"""The live detector in `serve`: minutes judged as they close, findings stored and shown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.app import Core
from bot.watch import FeedWatch
from skills.core import Invocation
from storage.feed import load_file
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
