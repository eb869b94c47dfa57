"""The scheduler: one AsyncIOScheduler on the shift clock, and every scheduled job in one function.

A shift report (briefing, handoff) is recorded per shift in the store's state
(`briefing:2025-07-14`) before it is queued, so it is sent at most once whatever restarts happen.
A report whose time passed while the process was down is sent once, marked late, if the process
comes back within the grace window, and otherwise recorded as missed (`briefing_missed`, which
`status` shows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.settings import Settings
from skills.briefing import briefing_reply, handoff_reply
from skills.core import Clock, Reply, Section, SkillContext

log = logging.getLogger(__name__)

Kind = Literal["briefing", "handoff"]
KINDS: tuple[Kind, ...] = ("briefing", "handoff")
GRACE = timedelta(hours=2)  # a report up to this late is still sent (marked late)
ON_TIME = timedelta(minutes=2)  # later than this after its time, a report says it is late
DELIVERY_DEADLINE = timedelta(minutes=5)  # undelivered this long after sending: critical alert
# How far back a report not sent is looked for: older ones are another shift's business (and a
# new install must not start by reporting yesterday's handoff missed).
LOOKBACK = timedelta(hours=12)
RETENTION_CRON = "30 12 * * *"  # midday: deletes stay away from the night shift

Job = Callable[[], Awaitable[object]]


class Send(Protocol):
    """Queues a notification for every configured chat (the delivery outbox).

    `key` names it once and for all (`briefing:2025-07-14`): queuing the same key twice
    must not send it twice.
    """

    def __call__(self, reply: Reply, kind: str, key: str) -> Awaitable[None]: ...


class Undelivered(Protocol):
    """The platforms a queued notification has not reached yet (empty: delivered everywhere)."""

    def __call__(self, key: str) -> Awaitable[Sequence[str]]: ...


class Ledger(Protocol):
    """Where reports are recorded per shift: the store's small state."""

    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str, now: datetime) -> None: ...


class Elected(Protocol):
    """Leadership as the scheduler sees it (see `bot.leader.Leader`)."""

    async def is_leader(self) -> bool: ...


Action = Literal["sent", "late", "missed", "already", "none"]
ON_DUTY = "on_duty_since"  # state key: when a `serve` first ran on this store


@dataclass(frozen=True, slots=True)
class ReportRun:
    """What one look at a shift report did, for logs and tests."""

    kind: Kind
    slot: datetime | None  # the time it was due, on the shift clock
    action: Action


class ShiftCron(CronTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A CronTrigger that keeps to the wall clock across DST changes.

    APScheduler 3.11's CronTrigger adds a field increment's wall-clock span in UTC, so after a
    spring-forward night it skips the next day: a daily 00:00 job that ran at 00:00 on
    2025-03-09 in New York is next due 2025-03-11 (agronholm/apscheduler#606). Here the
    incremented date is built on the wall clock, then normalized (a time in the skipped hour
    moves past it, as the other fields then reject it: that day's run in the gap is skipped).
    """

    def _increment_field_value(self, dateval: datetime, fieldnum: int) -> tuple[datetime, int]:
        values: dict[str, int] = {}
        i = 0
        while i < len(self.fields):
            field = self.fields[i]
            if not field.REAL:
                if i == fieldnum:
                    fieldnum -= 1
                    i -= 1
                else:
                    i += 1
                continue
            if i < fieldnum:
                values[field.name] = field.get_value(dateval)
                i += 1
            elif i > fieldnum:
                values[field.name] = field.get_min(dateval)
                i += 1
            else:
                value = field.get_value(dateval)
                if value == field.get_max(dateval):
                    fieldnum -= 1
                    i -= 1
                else:
                    values[field.name] = value + 1
                    i += 1
        wall = datetime(**values, tzinfo=self.timezone)
        return wall.astimezone(UTC).astimezone(self.timezone), fieldnum


def cron(expr: str, tz: tzinfo) -> ShiftCron:
    """A 5-field crontab expression on the shift clock."""
    trigger: ShiftCron = ShiftCron.from_crontab(expr, timezone=tz)
    return trigger


def last_fire(
    trigger: BaseTrigger, now: datetime, lookback: timedelta = LOOKBACK
) -> datetime | None:
    """The latest time in (now - lookback, now] at which `trigger` fires, or None."""
    found: datetime | None = None
    fire: datetime | None = trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        found = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return found


def shift_key(kind: Kind, slot: datetime, tz: tzinfo) -> str:
    """`briefing:2025-07-14`: one report of each kind per shift day on the shift clock."""
    return f"{kind}:{slot.astimezone(tz).date().isoformat()}"


class ShiftReports:
    """Sends the briefing and the handoff once per shift, on time, late, or records them missed."""

    def __init__(
        self,
        ctx: SkillContext,
        send: Send,
        *,
        briefing_cron: str,
        handoff_cron: str,
        grace: timedelta = GRACE,
        ledger: Ledger | None = None,
    ) -> None:
        self._ctx = ctx
        self._send = send
        self._tz = ctx.tz
        self._clock: Clock = ctx.clock
        self._ledger: Ledger = ledger or ctx.store
        self.grace = grace
        self.triggers: dict[Kind, ShiftCron] = {
            "briefing": cron(briefing_cron, self._tz),
            "handoff": cron(handoff_cron, self._tz),
        }
        self._lock = asyncio.Lock()

    def key(self, kind: Kind, slot: datetime) -> str:
        return shift_key(kind, slot, self._tz)

    async def run_due(self, kind: Kind) -> ReportRun:
        """The scheduled job, and the check at start: send the report now due, if not yet sent."""
        async with self._lock:  # the cron job and a catch-up must not race each other
            return await self._run_due(kind)

    async def _run_due(self, kind: Kind) -> ReportRun:
        now = self._clock.now()
        slot = last_fire(self.triggers[kind], now)
        if slot is None:
            return ReportRun(kind, None, "none")
        key = self.key(kind, slot)
        ledger = self._ledger
        since = await asyncio.to_thread(ledger.get_state, ON_DUTY)
        if since is None:  # the first start ever: no shift before it could have been missed
            await asyncio.to_thread(ledger.set_state, ON_DUTY, now.isoformat(), now)
            since = now.isoformat()
        if slot < datetime.fromisoformat(since) - self.grace:
            return ReportRun(kind, slot, "none")
        done = await asyncio.to_thread(ledger.get_state, key)
        if done is not None and not done.startswith("failed"):
            return ReportRun(kind, slot, "already")
        late = now - slot
        local_slot = slot.astimezone(self._tz)
        if late > self.grace:
            # Too late to be useful: say so in `status` instead of sending a stale report.
            await asyncio.to_thread(ledger.set_state, key, f"missed {now.isoformat()}", now)
            await asyncio.to_thread(
                ledger.set_state, f"{kind}_missed", local_slot.strftime("%Y-%m-%d %H:%M %Z"), now
            )
            log.warning("%s of %s missed: the process was down until %s", kind, key, now)
            return ReportRun(kind, slot, "missed")
        action: Action = "late" if late > ON_TIME else "sent"
        # Recorded before it is queued: a crash in between loses one report, never doubles it.
        await asyncio.to_thread(ledger.set_state, key, f"{action} {now.isoformat()}", now)
        try:
            reply = await self._build(kind, slot, now, late_for=slot if action == "late" else None)
            await self._send(reply, kind, key)
        except Exception:
            # Not queued: the next look (the dead-man job, each minute) tries again in the grace.
            await asyncio.to_thread(ledger.set_state, key, f"failed {now.isoformat()}", now)
            raise
        if await asyncio.to_thread(ledger.get_state, f"{kind}_missed"):
            await asyncio.to_thread(ledger.set_state, f"{kind}_missed", "", now)
        log.info("%s %s queued (%s)", kind, key, action)
        return ReportRun(kind, slot, action)

    async def _build(
        self, kind: Kind, slot: datetime, now: datetime, late_for: datetime | None
    ) -> Reply:
        if kind == "briefing":
            return await briefing_reply(self._ctx, now, late_for=late_for)
        since = last_fire(self.triggers["briefing"], slot, timedelta(hours=24))
        return await handoff_reply(self._ctx, now, since=since, late_for=late_for)

    async def catch_up(self) -> list[ReportRun]:
        """At start and when elected leader: reports due while nobody was running them."""
        return [await self.run_due(kind) for kind in KINDS]

    async def check_delivery(self, undelivered: Undelivered) -> list[str]:
        """Dead-man check: a report queued DELIVERY_DEADLINE ago and not delivered raises an alert.

        The alert is itself a notification (key `<report key>:undelivered`), so it reaches every
        platform that works, once. Returns the keys alerted about this time.
        """
        now = self._clock.now()
        alerted: list[str] = []
        for kind in KINDS:
            slot = last_fire(self.triggers[kind], now)
            if slot is None:
                continue
            key = self.key(kind, slot)
            state = await asyncio.to_thread(self._ledger.get_state, key)
            queued_at = _queued_at(state)
            if queued_at is None or now - queued_at < DELIVERY_DEADLINE:
                continue
            alert_key = f"{key}:undelivered"
            if await asyncio.to_thread(self._ledger.get_state, alert_key) is not None:
                continue
            missing = list(await undelivered(key))
            if not missing:
                continue
            await asyncio.to_thread(self._ledger.set_state, alert_key, ",".join(missing), now)
            await self._send(self._undelivered_alert(kind, slot, missing), "alert", alert_key)
            alerted.append(key)
        return alerted

    def _undelivered_alert(self, kind: Kind, slot: datetime, missing: Sequence[str]) -> Reply:
        ctx = self._ctx
        when = slot.astimezone(self._tz).strftime("%H:%M")
        name = (
            ctx.tr("briefing", "briefing") if kind == "briefing" else ctx.tr("passagem", "handoff")
        )
        where = ", ".join(missing)
        return Reply(
            title=ctx.tr(
                f"🔴 critical · o {name} das {when} NÃO foi entregue em {where}",
                f"🔴 critical · the {when} {name} was NOT delivered to {where}",
            ),
            sections=(
                Section(
                    lines=(
                        ctx.tr(
                            f"Passaram {DELIVERY_DEADLINE.seconds // 60} min sem confirmação "
                            f"da entrega. Peça o {name} com `briefing` e verifique o chat.",
                            f"{DELIVERY_DEADLINE.seconds // 60} min passed without a delivery "
                            f"confirmation. Ask for it with `briefing` and check the chat.",
                        ),
                    )
                ),
            ),
        )


def _queued_at(state: str | None) -> datetime | None:
    if not state:
        return None
    action, _, when = state.partition(" ")
    if action not in ("sent", "late"):
        return None
    try:
        return datetime.fromisoformat(when)
    except ValueError:
        return None


class Retention:
    """Deletes raw minute data older than the configured number of days."""

    def __init__(self, store: RawData, clock: Clock, days: int) -> None:
        self._store = store
        self._clock = clock
        self.days = days

    async def run(self) -> int:
        cut = self._clock.now() - timedelta(days=self.days)
        deleted = await asyncio.to_thread(self._store.delete_counts_before, cut)
        log.info("retention: %d raw rows older than %s deleted", deleted, cut.date())
        return deleted


class RawData(Protocol):
    def delete_counts_before(self, before: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class JobParts:
    """What the jobs call; the composition root builds it from the running app."""

    reports: ShiftReports
    detector_tick: Job
    retention: Job
    outbox_worker: Job | None = None
    deadman_checks: tuple[Job, ...] = ()
    escalation: Job | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One scheduled job: id, what it does, when, and whether only the leader runs it."""

    id: str
    summary: str
    trigger: BaseTrigger
    run: Job | None  # None when listed only (`nightshift jobs`)
    leader_only: bool = True
    misfire_grace: timedelta = timedelta(seconds=30)


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes} min"


def jobs(settings: Settings, parts: JobParts | None = None) -> list[JobSpec]:
    """Every scheduled job, in one list; without `parts`, the list to show (nothing runs)."""
    tz = settings.timezone

    def call(pick: Callable[[JobParts], Job | None]) -> Job | None:
        return None if parts is None else pick(parts)

    async def deadman() -> None:
        if parts is not None:
            # A report whose job did not run or failed is still sent within the grace window.
            for check in (parts.reports.catch_up, *parts.deadman_checks):
                try:
                    await check()
                except Exception:
                    log.exception("dead-man check failed")

    specs = [
        JobSpec(
            "briefing",
            f"shift briefing ({settings.briefing_cron})",
            cron(settings.briefing_cron, tz),
            call(lambda p: lambda: p.reports.run_due("briefing")),
            misfire_grace=GRACE,
        ),
        JobSpec(
            "handoff",
            f"end-of-shift handoff ({settings.handoff_cron})",
            cron(settings.handoff_cron, tz),
            call(lambda p: lambda: p.reports.run_due("handoff")),
            misfire_grace=GRACE,
        ),
        JobSpec(
            "detector",
            "detector tick: judge the closed minutes",
            CronTrigger(second=1, timezone=tz),  # every minute, just after it closes
            call(lambda p: p.detector_tick),
        ),
        JobSpec(
            "outbox",
            "outbox worker: deliver queued notifications",
            IntervalTrigger(seconds=5, timezone=tz),
            call(lambda p: p.outbox_worker),
            leader_only=False,  # rows are claimed, so every replica may help
            misfire_grace=timedelta(seconds=5),
        ),
        JobSpec(
            "escalation",
            f"escalation: unacknowledged critical incidents told again after "
            f"{_span(settings.escalate_after)}",
            IntervalTrigger(seconds=15, timezone=tz),
            call(lambda p: p.escalation),
            misfire_grace=timedelta(seconds=15),
        ),
        JobSpec(
            "retention",
            f"retention: drop raw minute data older than {settings.retention_days} days",
            cron(RETENTION_CRON, tz),
            call(lambda p: p.retention),
            misfire_grace=timedelta(hours=1),
        ),
        JobSpec(
            "deadman",
            "dead-man checks: reports not sent or not delivered",
            IntervalTrigger(minutes=1, timezone=tz),
            None if parts is None else deadman,
        ),
    ]
    if parts is not None:
        specs = [s for s in specs if s.run is not None]
    return specs


def next_runs(
    specs: Sequence[JobSpec], now: datetime, tz: tzinfo
) -> list[tuple[JobSpec, datetime]]:
    """Each job with its next run after `now`, on the shift clock."""
    out: list[tuple[JobSpec, datetime]] = []
    for spec in specs:
        fire = spec.trigger.get_next_fire_time(None, now)
        if isinstance(spec.trigger, IntervalTrigger):
            fire = now + spec.trigger.interval  # its start is when it was built, not `now`
        if fire is not None:
            out.append((spec, fire.astimezone(tz)))
    return out


class Scheduler:
    """Owns one AsyncIOScheduler in the shift time zone; leader-only jobs skip on followers."""

    def __init__(self, specs: Sequence[JobSpec], tz: tzinfo, leader: Elected | None = None) -> None:
        self._specs = list(specs)
        self._tz = tz
        self._leader = leader
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def _guarded(self, spec: JobSpec) -> Job:
        run = spec.run
        if run is None:
            raise ValueError(f"job {spec.id} has nothing to run")

        async def guarded() -> None:
            if spec.leader_only and self._leader is not None and not await self._leader.is_leader():
                return
            try:
                await run()
            except Exception:
                log.exception("job %s failed", spec.id)

        return guarded

    async def start(self) -> None:
        """Start on the running event loop."""
        scheduler = AsyncIOScheduler(timezone=self._tz)
        for spec in self._specs:
            scheduler.add_job(
                self._guarded(spec),
                spec.trigger,
                id=spec.id,
                name=spec.summary,
                misfire_grace_time=int(spec.misfire_grace.total_seconds()),
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
        scheduler.start()
        self._scheduler = scheduler

    def next_run_times(self) -> dict[str, datetime | None]:
        """Job id → next run time as the running scheduler has it."""
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
