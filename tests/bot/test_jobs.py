"""The scheduler and the shift reports: on time, late once, missed, never twice, delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.date import DateTrigger

from bot.app import Core, build_core
from bot.jobs import (
    ON_DUTY,
    JobParts,
    JobSpec,
    Retention,
    Scheduler,
    ShiftReports,
    jobs,
    last_fire,
    next_runs,
)
from bot.jobs import (
    cron as cron_trigger,
)
from bot.jobs_cli import render
from bot.settings import Settings
from skills.core import Invocation, Reply
from storage.parsing import load_file
from storage.store import Store
from tests.conftest import DATA
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")
NY = ZoneInfo("America/New_York")
LISBON = ZoneInfo("Europe/Lisbon")


class Outbox:
    """Records what the jobs queue, as the delivery outbox would receive it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Reply]] = []
        self.missing: dict[str, list[str]] = {}

    async def __call__(self, reply: Reply, kind: str, key: str) -> None:
        self.sent.append((kind, key, reply))

    async def undelivered(self, key: str) -> Sequence[str]:
        return self.missing.get(key, [])

    @property
    def keys(self) -> list[str]:
        return [key for _, key, _ in self.sent]


@pytest.fixture
def core(settings: Settings, sqlite_store: Store, clock: FixedClock) -> Core:
    """SQLite is enough here: what the backends differ in (replicas) is in test_leader.py."""
    return build_core(settings, clock=clock, store=sqlite_store)


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def reports(core: Core, outbox: Outbox) -> ShiftReports:
    """What a (re)started process builds: nothing in memory carries over."""
    return ShiftReports(
        core.dispatcher.context, outbox, briefing_cron="0 0 * * *", handoff_cron="0 8 * * *"
    )


def fires(cron: str, tz: ZoneInfo, start: datetime, n: int) -> list[datetime]:
    trigger = cron_trigger(cron, tz)
    out: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and len(out) < n:
        out.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return out


# -- triggers ---------------------------------------------------------------------------------


def test_briefing_at_midnight_and_handoff_at_eight_in_sao_paulo(clock: FixedClock) -> None:
    clock.set(datetime(2025, 7, 14, 23, 59, 30, tzinfo=SP))
    runs = {spec.id: fire for spec, fire in next_runs(jobs(Settings()), clock.now(), SP)}
    assert runs["briefing"] == datetime(2025, 7, 15, 0, 0, tzinfo=SP)
    assert runs["briefing"].astimezone(UTC).hour == 3
    assert runs["handoff"] == datetime(2025, 7, 15, 8, 0, tzinfo=SP)
    assert runs["detector"] == datetime(2025, 7, 15, 0, 0, 1, tzinfo=SP)
    assert set(runs) == {
        "briefing",
        "handoff",
        "detector",
        "outbox",
        "escalation",
        "retention",
        "deadman",
    }


@pytest.mark.parametrize(
    ("tz", "start", "offsets"),
    [
        # New York: clocks go forward on 2025-03-09 and back on 2025-11-02.
        (NY, datetime(2025, 3, 8, 1, 0, tzinfo=NY), (-5, -4, -4)),
        (NY, datetime(2025, 11, 1, 1, 0, tzinfo=NY), (-4, -5, -5)),
        # Lisbon: forward on 2025-03-30 (01:00 → 02:00), back on 2025-10-26 (02:00 → 01:00).
        (LISBON, datetime(2025, 3, 29, 1, 0, tzinfo=LISBON), (0, 1, 1)),
        (LISBON, datetime(2025, 10, 25, 1, 0, tzinfo=LISBON), (1, 0, 0)),
    ],
)
def test_the_cron_holds_across_a_dst_change(
    tz: ZoneInfo, start: datetime, offsets: tuple[int, ...]
) -> None:
    for cron, hour, first_day in (("0 0 * * *", 0, 1), ("0 8 * * *", 8, 0)):
        times = [t.astimezone(tz) for t in fires(cron, tz, start, 3)]
        assert [(t.hour, t.minute) for t in times] == [(hour, 0)] * 3
        assert [t.date() for t in times] == [
            start.date() + timedelta(days=first_day + d) for d in range(3)
        ]
        utc_offsets = tuple(int(t.utcoffset().total_seconds()) // 3600 for t in times)  # type: ignore[union-attr]
        assert utc_offsets == offsets
        # Wall clock fixed, so one of the gaps in real time is 23 or 25 hours.
        gaps = {times[i + 1].astimezone(UTC) - times[i].astimezone(UTC) for i in range(2)}
        assert gaps != {timedelta(hours=24)}


def test_last_fire_finds_the_slot_of_the_shift() -> None:
    trigger = cron_trigger("0 0 * * *", SP)
    now = datetime(2025, 7, 15, 0, 40, tzinfo=SP)
    assert last_fire(trigger, now) == datetime(2025, 7, 15, 0, 0, tzinfo=SP)
    assert last_fire(trigger, datetime(2025, 7, 15, 0, 0, tzinfo=SP)) == now.replace(minute=0)
    assert last_fire(trigger, datetime(2025, 7, 14, 23, 0, tzinfo=SP)) is None  # 23 h ago


def test_jobs_lists_every_job_with_its_next_run_in_the_shift_zone() -> None:
    settings = Settings(timezone=NY, briefing_cron="0 22 * * *")
    text = render(settings, datetime(2025, 3, 8, 14, 0, tzinfo=UTC))
    lines = text.splitlines()
    assert lines[0] == "time zone America/New_York · now 2025-03-08 09:00:00 EST"
    assert "briefing    2025-03-08 22:00:00 EST  shift briefing (0 22 * * *)" in lines
    assert "handoff     2025-03-09 08:00:00 EDT  end-of-shift handoff (0 8 * * *)" in lines
    assert any(line.startswith("retention   2025-03-08 12:30:00 EST") for line in lines)
    assert (
        "escalation  2025-03-08 09:00:15 EST  escalation: unacknowledged critical incidents "
        "told again after 10 min"
    ) in lines
    assert "(every replica)" in next(line for line in lines if line.startswith("outbox"))


# -- the shift reports --------------------------------------------------------------------------


async def test_briefing_at_midnight_is_sent_once(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    clock.set(datetime(2025, 7, 15, 0, 0, 2, tzinfo=SP))
    first = await reports(core, outbox).run_due("briefing")
    assert (first.action, first.slot) == ("sent", datetime(2025, 7, 15, tzinfo=SP))
    assert outbox.keys == ["briefing:2025-07-15"]
    kind, _, reply = outbox.sent[0]
    assert kind == "briefing"
    assert reply.title == "🌙 Briefing do turno · 15/07 00:00"
    assert "ATRASADO" not in reply.plain_text()
    # The same job again, or a restarted process: nothing more.
    clock.advance(minutes=1)
    assert (await reports(core, outbox).run_due("briefing")).action == "already"
    assert (await reports(core, outbox).catch_up())[0].action == "already"
    assert outbox.keys == ["briefing:2025-07-15"]


async def test_handoff_at_eight_covers_the_night(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    clock.set(datetime(2025, 7, 15, 8, 0, 1, tzinfo=SP))
    run = await reports(core, outbox).run_due("handoff")
    assert run.action == "sent"
    kind, key, reply = outbox.sent[0]
    assert (kind, key) == ("handoff", "handoff:2025-07-15")
    assert reply.title == "🌅 Passagem de turno · 15/07 08:00"
    assert "🌒 A noite (00:00–08:00)" in reply.plain_text()


async def test_down_at_midnight_up_at_0040_sends_one_late_briefing(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    clock.set(datetime(2025, 7, 15, 0, 40, tzinfo=SP))
    runs = await reports(core, outbox).catch_up()
    assert [(r.kind, r.action) for r in runs] == [("briefing", "late"), ("handoff", "none")]
    assert outbox.keys == ["briefing:2025-07-15"]
    text = outbox.sent[0][2].plain_text()
    assert "⏰ ATRASADO: deveria ter saído às 00:00, enviado às 00:40" in text
    # Restarting again a minute later sends nothing more.
    clock.advance(minutes=1)
    await reports(core, outbox).catch_up()
    assert outbox.keys == ["briefing:2025-07-15"]
    assert core.store.get_state("briefing_missed") is None


async def test_down_at_midnight_up_at_three_sends_none_and_status_says_missed(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    # The bot ran the evening before, then was down over midnight.
    core.store.set_state(ON_DUTY, datetime(2025, 7, 14, 18, 0, tzinfo=SP).isoformat(), clock.now())
    clock.set(datetime(2025, 7, 15, 3, 0, tzinfo=SP))
    runs = await reports(core, outbox).catch_up()
    assert runs[0].action == "missed"
    assert outbox.sent == []
    status = await core.handle(Invocation("console", "op", "status"))
    assert "⚠️ Briefing não enviado: 2025-07-15 00:00 -03" in status.plain_text()
    # The next night's briefing goes out and status stops saying so.
    clock.set(datetime(2025, 7, 16, 0, 0, 1, tzinfo=SP))
    assert (await reports(core, outbox).run_due("briefing")).action == "sent"
    status = await core.handle(Invocation("console", "op", "status"))
    assert "Briefing não enviado" not in status.plain_text()


async def test_a_briefing_not_delivered_in_five_minutes_raises_one_critical_alert(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    clock.set(datetime(2025, 7, 15, 0, 0, 1, tzinfo=SP))
    shift = reports(core, outbox)
    await shift.run_due("briefing")
    outbox.missing["briefing:2025-07-15"] = ["telegram", "slack"]
    clock.advance(minutes=4)
    assert await shift.check_delivery(outbox.undelivered) == []
    clock.advance(minutes=1)
    assert await shift.check_delivery(outbox.undelivered) == ["briefing:2025-07-15"]
    kind, key, alert = outbox.sent[-1]
    assert (kind, key) == ("alert", "briefing:2025-07-15:undelivered")
    assert alert.title == "🔴 critical · o briefing das 00:00 NÃO foi entregue em telegram, slack"
    clock.advance(minutes=1)
    assert await reports(core, outbox).check_delivery(outbox.undelivered) == []
    assert len(outbox.sent) == 2


async def test_a_delivered_briefing_raises_nothing(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    clock.set(datetime(2025, 7, 15, 0, 0, 1, tzinfo=SP))
    shift = reports(core, outbox)
    await shift.run_due("briefing")
    clock.advance(minutes=10)
    assert await shift.check_delivery(outbox.undelivered) == []
    assert outbox.keys == ["briefing:2025-07-15"]


async def test_retention_drops_raw_minutes_older_than_the_setting(
    core: Core, clock: FixedClock
) -> None:
    core.store.ingest(load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP))
    clock.set(datetime(2025, 7, 16, 0, 0, tzinfo=SP))
    deleted = await Retention(core.store, clock, days=1).run()
    assert deleted > 0
    assert (
        core.store.totals_by_status(
            clock.now() - timedelta(days=10), clock.now() - timedelta(days=1)
        )
        == {}
    )
    assert core.store.totals_by_status(clock.now() - timedelta(days=1), clock.now())


# -- the scheduler ------------------------------------------------------------------------------


class Switch:
    def __init__(self, leader: bool) -> None:
        self.leader = leader

    async def is_leader(self) -> bool:
        return self.leader


async def test_scheduler_runs_leader_jobs_only_on_the_leader() -> None:
    ran: list[str] = []
    done = asyncio.Event()

    async def everyone() -> None:
        ran.append("everyone")
        done.set()

    async def leader_only() -> None:
        ran.append("leader")

    now = datetime.now(UTC)
    specs = [
        JobSpec("a", "leader job", DateTrigger(now, timezone=SP), leader_only),
        JobSpec("b", "any replica", DateTrigger(now, timezone=SP), everyone, leader_only=False),
    ]
    follower = Scheduler(specs, SP, Switch(leader=False))
    await follower.start()
    try:
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.05)
    finally:
        await follower.stop()
    assert ran == ["everyone"]
    assert not follower.running


async def test_scheduler_keeps_next_runs_in_the_shift_zone(core: Core, outbox: Outbox) -> None:
    async def tick() -> None:
        return None

    parts = JobParts(
        reports=reports(core, outbox),
        detector_tick=tick,
        retention=Retention(core.store, core.clock, 90).run,
    )
    specs = jobs(core.settings, parts)
    # No outbox worker given (yet): no outbox job.
    assert [s.id for s in specs] == ["briefing", "handoff", "detector", "retention", "deadman"]
    scheduler = Scheduler(specs, SP, Switch(leader=True))
    await scheduler.start()
    try:
        times = scheduler.next_run_times()
        assert scheduler.running
    finally:
        await scheduler.stop()
    briefing = times["briefing"]
    assert briefing is not None
    assert briefing.tzinfo == SP
    assert (briefing.hour, briefing.minute, briefing.second) == (0, 0, 0)
    handoff = times["handoff"]
    assert handoff is not None and handoff.hour == 8


async def test_a_report_that_could_not_be_queued_is_retried_by_the_deadman_job(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    async def broken(reply: Reply, kind: str, key: str) -> None:
        raise ConnectionError("outbox unreachable")

    clock.set(datetime(2025, 7, 15, 0, 0, 1, tzinfo=SP))
    failing = ShiftReports(
        core.dispatcher.context, broken, briefing_cron="0 0 * * *", handoff_cron="0 8 * * *"
    )
    with pytest.raises(ConnectionError):
        await failing.run_due("briefing")

    async def tick() -> None:
        return None

    parts = JobParts(reports=reports(core, outbox), detector_tick=tick, retention=tick)
    deadman = next(s for s in jobs(core.settings, parts) if s.id == "deadman")
    assert deadman.run is not None
    clock.advance(minutes=1)
    await deadman.run()
    await deadman.run()
    assert outbox.keys == ["briefing:2025-07-15"]
    assert "ATRASADO" not in outbox.sent[0][2].plain_text()  # 1 min: still on time


async def test_a_store_that_never_had_a_shift_misses_nothing(
    core: Core, clock: FixedClock, outbox: Outbox
) -> None:
    """A fresh install started at 03:00 owes no briefing from 00:00: it was not on duty."""
    clock.set(datetime(2025, 7, 15, 3, 0, tzinfo=SP))
    runs = await reports(core, outbox).catch_up()
    assert [r.action for r in runs] == ["none", "none"]
    status = await core.handle(Invocation("console", "op", "status"))
    assert "não enviado" not in status.plain_text()
    clock.set(datetime(2025, 7, 16, 0, 0, 1, tzinfo=SP))
    assert (await reports(core, outbox).run_due("briefing")).action == "sent"
