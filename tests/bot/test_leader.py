"""Leader election on one PostgreSQL: one leader, takeover when it dies, one briefing per night."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_core
from bot.clock import SystemClock
from bot.jobs import Kind, ShiftReports
from bot.leader import Leader
from bot.settings import Settings
from skills.core import Reply
from storage.store import Store, open_store
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")
TTL = timedelta(seconds=30)


@pytest.fixture
def stores(fresh_postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two connections to one database, as two `serve` processes would have."""
    a, b = open_store(fresh_postgres_url), open_store(fresh_postgres_url)
    yield a, b
    a.close()
    b.close()


async def test_on_sqlite_the_only_process_leads(sqlite_store: Store, clock: FixedClock) -> None:
    elected: list[str] = []

    async def on_elected() -> None:
        elected.append("yes")

    leader = Leader(sqlite_store, clock, on_elected=on_elected)
    await leader.start()
    assert await leader.is_leader()
    assert elected == ["yes"]
    await leader.stop()


async def test_one_leads_and_the_other_takes_over_when_it_stops_renewing(
    stores: tuple[Store, Store], clock: FixedClock
) -> None:
    a = Leader(stores[0], clock, ttl=TTL, holder="a")
    b = Leader(stores[1], clock, ttl=TTL, holder="b")
    assert await a.renew()
    assert not await b.renew()
    clock.advance(seconds=10)
    assert await a.renew() and not await b.renew()
    # `a` dies (stops renewing) now: its lease runs 30 s from its last renewal.
    clock.advance(seconds=25)
    assert not await b.renew()
    assert not await a.is_leader()  # it stopped acting a margin before the others may take over
    clock.advance(seconds=6)
    assert await b.renew()
    assert await b.is_leader()
    # `a` comes back: it does not take the lease from a live leader.
    assert not await a.renew()
    assert not await a.is_leader()


async def test_never_two_leaders_whatever_the_renewal_timing(
    stores: tuple[Store, Store], clock: FixedClock
) -> None:
    a = Leader(stores[0], clock, ttl=TTL, holder="a")
    b = Leader(stores[1], clock, ttl=TTL, holder="b")
    # Irregular renewals, `a` pausing for up to 45 s: at every instant at most one leads.
    pauses = [3, 7, 12, 45, 1, 9, 33, 2, 29, 31, 5]
    for step, pause in enumerate(pauses):
        if step % 3 != 2:
            await a.renew()
        await b.renew()
        for _ in range(pause):
            clock.advance(seconds=1)
            assert not (await a.is_leader() and await b.is_leader())


async def test_a_leader_that_stops_hands_over_at_once(stores: tuple[Store, Store]) -> None:
    clock = SystemClock()
    ttl = timedelta(seconds=1.5)
    a = Leader(stores[0], clock, ttl=ttl, holder="a")
    b = Leader(stores[1], clock, ttl=ttl, holder="b")
    await a.start()
    await b.start()
    try:
        assert await a.is_leader() and not await b.is_leader()
        await a.stop()  # releases the lease
        for _ in range(40):  # b polls every 0.5 s
            if await b.is_leader():
                break
            await asyncio.sleep(0.05)
        assert await b.is_leader()
        assert not await a.is_leader()
    finally:
        await a.stop()
        await b.stop()


@dataclass
class Replica:
    """One `serve` process as far as the night goes: its lease, its reports, what it queued."""

    name: str
    leader: Leader
    reports: ShiftReports
    sent: list[tuple[str, str]]
    alive: bool = True


def replica(name: str, store: Store, clock: FixedClock, ttl: timedelta = TTL) -> Replica:
    core = build_core(Settings(), clock=clock, store=store)
    sent: list[tuple[str, str]] = []

    async def send(reply: Reply, kind: str, key: str) -> None:
        sent.append((key, reply.title))

    shift = ShiftReports(
        core.dispatcher.context, send, briefing_cron="0 0 * * *", handoff_cron="0 8 * * *"
    )
    leader = Leader(store, clock, ttl=ttl, holder=name, on_elected=shift.catch_up)
    return Replica(name, leader, shift, sent)


async def test_two_replicas_one_night_one_briefing_one_handoff_even_when_the_leader_dies(
    stores: tuple[Store, Store],
) -> None:
    clock = FixedClock(datetime(2025, 7, 14, 23, 50, tzinfo=SP))
    ttl = timedelta(seconds=90)
    one, two = replica("one", stores[0], clock, ttl), replica("two", stores[1], clock, ttl)
    cron_times = {
        datetime(2025, 7, 15, 0, 0, tzinfo=SP).astimezone(UTC),
        datetime(2025, 7, 15, 8, 0, tzinfo=SP).astimezone(UTC),
    }
    killed_at = datetime(2025, 7, 15, 3, 0, tzinfo=SP)
    took_over: datetime | None = None
    end = datetime(2025, 7, 15, 8, 10, tzinfo=SP)
    step = timedelta(seconds=30)  # each replica renews every ttl / 3
    while clock.now() < end:
        now = clock.now()
        if now >= killed_at and one.alive:
            one.alive = False  # killed: no more renewals, no more jobs
        for r in (one, two):
            if not r.alive:
                continue
            await r.leader.renew()
            # What the scheduler does at the cron times: only the leader runs the job.
            if now in cron_times and await r.leader.is_leader():
                kind: Kind = "briefing" if now.astimezone(SP).hour == 0 else "handoff"
                await r.reports.run_due(kind)
        assert not (await one.leader.is_leader() and await two.leader.is_leader())
        if took_over is None and not one.alive and await two.leader.is_leader():
            took_over = now
        clock.advance(seconds=step.total_seconds())
    keys = [key for key, _ in one.sent + two.sent]
    assert keys == ["briefing:2025-07-15", "handoff:2025-07-15"]
    assert [key for key, _ in one.sent] == ["briefing:2025-07-15"]  # it led until killed
    assert [key for key, _ in two.sent] == ["handoff:2025-07-15"]
    assert took_over is not None
    assert took_over - killed_at <= ttl


async def test_a_new_leader_sends_the_briefing_the_dead_one_did_not(
    stores: tuple[Store, Store],
) -> None:
    # The leader dies at 23:59:50, before the 00:00 briefing; the other takes over after 00:00.
    clock = FixedClock(datetime(2025, 7, 14, 23, 59, 50, tzinfo=SP))
    one, two = replica("one", stores[0], clock), replica("two", stores[1], clock)
    assert await one.leader.renew()
    assert not await two.leader.renew()
    while not await two.leader.renew():
        clock.advance(seconds=10)
    assert clock.now() <= datetime(2025, 7, 15, 0, 0, 30, tzinfo=SP)
    assert [key for key, _ in two.sent] == ["briefing:2025-07-15"]
    assert one.sent == []
