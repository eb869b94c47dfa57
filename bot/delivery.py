"""Delivery: incident cards, escalations and reports reach every chat, each chat on its own.

What is told lives in the store: each incident has a card per destination (`storage.cards`),
and one-off messages (escalations, new symptoms, briefings) sit in the outbox. A courier per
destination leases its due work and sends it at that platform's pace, in this order:

1. first posts of new incidents: a new message, so the phone rings; past NEW_PER_MINUTE in a
   minute the rest are told in one "N more incidents" roll-up, itself a new message;
2. one-off messages from the outbox;
3. edits of cards whose incident changed, at most one per EDIT_GAP per message, however many
   changes came meanwhile; when an incident resolves, its card is edited and a short note is
   replied in its thread.

Couriers run side by side, so one chat's outage or backlog never delays another's. A failed send
is retried after the platform's own `retry_after`, or with exponential backoff and jitter; a
platform that answers 429 pauses that destination only. The correlator (`storage.incidents`)
runs here too: it turns stored alert and finding changes into incidents and pokes the couriers.

Exceptions::

    DeliveryError          a send that failed
    ├── Transient          try again later (5xx, timeout, 429 with its retry_after)
    └── Permanent          will never work (chat gone, bot removed): recorded as failed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Protocol, TypeVar

from bot.metrics import Metrics
from bot.routing import Routes
from skills.core import Clock, Reply
from skills.notices import (
    Impact,
    escalation_notice,
    incident_card,
    reply_from_body,
    resolution_note,
    rollup_card,
    symptom_notice,
)
from storage.cards import Due
from storage.correlation import Correlation
from storage.outbox import Delivery
from storage.store import StorageError, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 30
EDIT_GAP = 3.0  # seconds between two edits of one message
NEW_PER_MINUTE = 5  # new incident messages per destination per minute before a roll-up
FLOOD = timedelta(minutes=1)
CLAIM_LIMIT = 20  # cards, and outbox messages, one courier pass takes
PASS_GAP = 0.2  # seconds between the starts of two correlation passes under a stream of pokes
ESCALATIONS = 3
TICKET_TTL = 600.0  # seconds the average ticket is reused before it is read again


class DeliveryError(Exception):
    """A message could not be sent."""


class Transient(DeliveryError):
    """Worth retrying; `retry_after` is the platform's own word on when, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(DeliveryError):
    """Will not work however often it is tried."""


class Notifier(Protocol):
    """One platform's outgoing side, as the couriers need it."""

    async def post(self, target: str, reply: Reply) -> str: ...

    async def edit(self, target: str, ref: str, reply: Reply) -> None: ...

    async def thread(self, target: str, ref: str, reply: Reply) -> str: ...


def instance_id(port: int) -> str:
    """`host:port`: who holds this `serve`'s leases. It stays the same across restarts, so a
    restarted `serve` knows its previous run's leases; no two live replicas share it, as two
    processes cannot listen on one port of one host."""
    return f"{socket.gethostname()[:120]}:{port}"


def min_interval(destination: str) -> float:
    """Seconds between two messages to one destination: the platforms' published limits."""
    platform, _, target = destination.partition(":")
    if platform == "telegram":
        return 3.0 if target.startswith("-") else 1.0  # groups: 20/min; private chats: 1/s
    if platform == "slack":
        return 1.0
    return 0.0


def backoff(attempts: int, *, urgent: bool = False) -> float:
    """Seconds before the next try, with jitter: doubling from 1 s up to 5 min, or from half a
    second up to 15 s for what must ring (a new incident's first message)."""
    first, most = (0.5, 15.0) if urgent else (1.0, 300.0)
    return min(most, first * 2.0 ** max(attempts - 1, 0)) * random.uniform(0.5, 1.5)  # noqa: S311


@dataclass
class Renderer:
    """What a card or an outbox message says now, read from the store."""

    store: Store
    lang: str
    tz: tzinfo
    can_silence: bool = False
    oncall: tuple[str, ...] = ()
    avg_ticket: float | None = None
    currency: str = "BRL"
    button_ttl: timedelta = timedelta(hours=12)
    _ticket: tuple[float, float | None] = (0.0, None)  # (monotonic read time, value)

    def impact(self, now: datetime) -> Impact:
        """Money at risk per approval: the average approved ticket of the last 7 days from
        event amounts, else NIGHTSHIFT_AVG_TICKET (read at most every TICKET_TTL)."""
        read_at, ticket = self._ticket
        if time.monotonic() - read_at > TICKET_TTL:
            ticket = self.store.average_ticket(now - timedelta(days=7), now)
            self._ticket = (time.monotonic(), ticket)
        return Impact(ticket if ticket is not None else self.avg_ticket, self.currency)

    def card(self, due: Due, now: datetime) -> tuple[Reply, bool] | None:
        """A card's message, and whether its incident is over (None: it is gone)."""
        if due.kind == "rollup":
            views = self.store.incident_views(
                [i for i in map(self.store.incident, self.store.rolled(due.id)) if i is not None]
            )
            if not views:
                return None
            since = min(v.incident.opened_at for v in views)
            return rollup_card(views, self.lang, self.tz, now, since), False
        view = self.store.incident_view(due.incident_id or 0)
        if view is None:
            return None
        reply = incident_card(
            view,
            self.lang,
            self.tz,
            now,
            impact=self.impact(now),
            buttons_until=now + self.button_ttl,
            can_silence=self.can_silence,
        )
        return reply, not view.incident.is_open

    def note(self, due: Due) -> Reply | None:
        """The thread reply when a card's incident is over."""
        view = self.store.incident_view(due.incident_id or 0)
        return None if view is None else resolution_note(view, self.lang, self.tz)

    def message(self, delivery: Delivery, now: datetime) -> Reply | None:
        """An outbox message (None: what it tells of is gone, or superseded)."""
        kind, body = delivery.subject_kind, delivery.body
        if kind == "reply":
            return reply_from_body(body)
        if kind not in ("escalation", "symptom"):
            return None  # alert and finding messages of schema 2: incident cards tell them now
        view = self.store.incident_view(int(str(body.get("incident", 0))))
        if view is None:
            return None
        if kind == "symptom":
            return symptom_notice(view, str(body.get("name")), str(body.get("kind")), self.lang)
        return escalation_notice(
            view,
            int(str(body.get("n", 1))),
            int(str(body.get("of", ESCALATIONS))),
            self.lang,
            self.tz,
            now,
            oncall=self.oncall,
            impact=self.impact(now),
            buttons_until=now + self.button_ttl,
            can_silence=self.can_silence,
        )


@dataclass
class Courier:
    """Sends one destination's due work; `run_once` is one pass, `run` the loop."""

    destination: str
    notifier: Notifier | None
    store: Store
    clock: Clock
    render: Renderer
    metrics: Metrics
    interval: Callable[[str], float] = min_interval
    sleep: Callable[[float], object] = asyncio.sleep
    edit_gap: float = EDIT_GAP
    new_per_minute: int = NEW_PER_MINUTE
    holder: str | None = None  # the instance's id, on its leases (`instance_id`)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _next_slot: float = 0.0

    @property
    def target(self) -> str:
        return self.destination.partition(":")[2] or self.destination

    @property
    def platform(self) -> str:
        return self.destination.partition(":")[0]

    async def run(self, poll: float = 1.0, stopping: asyncio.Event | None = None) -> None:
        stopping = stopping or asyncio.Event()
        while not stopping.is_set():
            self.wake.clear()  # before the pass: a poke during it starts the next one at once
            done = 0
            try:
                done = await self.run_once()
            except StorageError as error:
                log.warning("delivery to %s: store unavailable (%s)", self.destination, error)
            except Exception:
                log.exception("delivery pass to %s failed", self.destination)
            if done:
                await asyncio.sleep(0)  # more may be due: go again, letting others run
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=poll)

    async def run_once(self) -> int:
        """First posts, then outbox messages, then edits; returns how many were handled."""
        now = self.clock.now()
        if not await asyncio.to_thread(self.store.anything_due, self.destination, now):
            return 0  # most passes: a read, and no write lock taken
        due = await asyncio.to_thread(
            self.store.claim_cards, self.destination, now, LEASE, CLAIM_LIMIT, self.holder
        )
        await self._first_posts([d for d in due if d.message_ref is None])
        messages = await asyncio.to_thread(
            self.store.claim_deliveries,
            self.clock.now(),
            LEASE,
            CLAIM_LIMIT,
            self.destination,
            self.holder,
        )
        for delivery in messages:
            await self._send(delivery)
        for card in due:
            if card.message_ref is not None:
                await self._edit_card(card)
        return len(due) + len(messages)

    async def _first_posts(self, cards: list[Due]) -> None:
        """New incidents each get a message, up to NEW_PER_MINUTE a minute; the rest are told
        together in the flood's roll-up, posted once they are all in it."""
        if not cards:
            return
        now = self.clock.now()
        posted = await asyncio.to_thread(self.store.card_posts_since, self.destination, now - FLOOD)
        room = max(self.new_per_minute - posted, 0)
        incidents = [c for c in cards if c.kind == "incident"]
        rolled = incidents[room:]
        rollup: Due | None = None
        for card in rolled:
            rollup = await asyncio.to_thread(self.store.roll_card, card, now, now - FLOOD)
        for card in cards:
            if card not in rolled:
                await self._post_card(card)
        posting = rollup is not None and rollup.message_ref is None
        if rollup is not None and posting and all(c.id != rollup.id for c in cards):
            await self._post_card(rollup)  # the roll-up's first message rings too
        # else the roll-up is due an edit, made at its pace

    # -- cards --------------------------------------------------------------------------------

    async def _post_card(self, card: Due) -> None:
        now = self.clock.now()
        rendered = await asyncio.to_thread(self.render.card, card, now)
        if rendered is None:
            await asyncio.to_thread(self.store.card_failed, card, "nothing left to tell")
            return
        reply, over = rendered
        try:
            ref = await self._call("post", lambda n: n.post(self.target, reply))
        except DeliveryError as error:
            await self._card_failed(card, error, edit=False)
            return
        await asyncio.to_thread(
            self.store.card_shown, card, ref, now, self._next_edit(now), resolved_told=over
        )

    async def _edit_card(self, card: Due) -> None:
        now = self.clock.now()
        ref = card.message_ref
        assert ref is not None  # noqa: S101 - edits are of posted cards
        rendered = await asyncio.to_thread(self.render.card, card, now)
        if rendered is None:
            await asyncio.to_thread(self.store.card_failed, card, "nothing left to tell")
            return
        reply, over = rendered
        told = card.resolved_told
        try:
            await self._call("edit", lambda n: n.edit(self.target, ref, reply))
            if over and not told and card.kind == "incident":
                note = await asyncio.to_thread(self.render.note, card)
                if note is not None:
                    await self._call("thread", lambda n: n.thread(self.target, ref, note))
                told = True
        except DeliveryError as error:
            await self._card_failed(card, error, edit=True)
            return
        await asyncio.to_thread(
            self.store.card_shown, card, ref, now, self._next_edit(now), resolved_told=told
        )

    def _next_edit(self, now: datetime) -> datetime:
        return now + timedelta(seconds=max(self.edit_gap, self.interval(self.destination)))

    async def _card_failed(self, card: Due, error: DeliveryError, *, edit: bool) -> None:
        if isinstance(error, Transient) and card.attempts + 1 < MAX_ATTEMPTS:
            wait = error.retry_after + 0.1 if error.retry_after is not None else None
            wait = wait if wait is not None else backoff(card.attempts + 1, urgent=not edit)
            self._retried(str(error), wait)
            await asyncio.to_thread(
                self.store.card_retry, card, str(error), self.clock.now() + timedelta(seconds=wait)
            )
        elif edit and isinstance(error, Permanent):
            # The message is gone from the chat (deleted, too old to edit): tell it anew.
            log.warning("card %s at %s: %s; posting it anew", card.id, self.destination, error)
            await asyncio.to_thread(self.store.card_repost, card)
        else:
            self._gave_up(1, str(error))
            await asyncio.to_thread(self.store.card_failed, card, str(error))

    # -- outbox messages ----------------------------------------------------------------------

    async def _send(self, delivery: Delivery) -> None:
        now = self.clock.now()
        reply = await asyncio.to_thread(self.render.message, delivery, now)
        if reply is None:
            await asyncio.to_thread(
                self.store.finish_deliveries, [delivery.id], "merged", now, error="superseded"
            )
            return
        try:
            ref = await self._call("post", lambda n: n.post(self.target, reply))
        except Transient as error:
            if delivery.attempts + 1 >= MAX_ATTEMPTS:
                await self._delivery_failed(delivery, f"gave up after {MAX_ATTEMPTS}: {error}")
                return
            wait = error.retry_after + 0.1 if error.retry_after is not None else None
            urgent = delivery.subject_kind in ("escalation", "symptom")
            wait = wait if wait is not None else backoff(delivery.attempts + 1, urgent=urgent)
            self._retried(str(error), wait)
            await asyncio.to_thread(
                self.store.finish_deliveries,
                [delivery.id],
                "pending",
                self.clock.now(),
                error=str(error)[:500],
                retry_at=self.clock.now() + timedelta(seconds=wait),
            )
            return
        except DeliveryError as error:
            await self._delivery_failed(delivery, str(error))
            return
        await asyncio.to_thread(
            self.store.finish_deliveries, [delivery.id], "sent", self.clock.now(), ref=ref
        )

    async def _delivery_failed(self, delivery: Delivery, error: str) -> None:
        self._gave_up(1, error)
        await asyncio.to_thread(
            self.store.finish_deliveries,
            [delivery.id],
            "failed",
            self.clock.now(),
            error=error[:500],
        )

    # -- the platform -------------------------------------------------------------------------

    async def _call(self, how: str, send: Callable[[Notifier], Awaitable[T]]) -> T:
        """One send at the destination's pace; a 429 pauses the destination as told."""
        if self.notifier is None:
            raise Permanent(f"{self.platform} is not configured")
        await self._pace()
        try:
            result = await send(self.notifier)
        except Transient as error:
            if error.retry_after is not None:
                self._next_slot = max(self._next_slot, time.monotonic() + error.retry_after)
            raise
        self.metrics.inc(
            "nightshift_notifications_sent_total",
            "Messages posted, edited or replied.",
            platform=self.platform,
            how=how,
        )
        return result

    async def _pace(self, least: float = 0.0) -> None:
        """Wait for the destination's next slot; the one after comes its interval (or `least`,
        if longer) later."""
        now = time.monotonic()
        slot = max(self._next_slot, now)
        if slot > now:
            result = self.sleep(slot - now)
            if asyncio.iscoroutine(result):
                await result
        self._next_slot = max(slot, now) + max(self.interval(self.destination), least)

    def _retried(self, error: str, wait: float) -> None:
        log.info("delivery to %s: %s; retry in %.1fs", self.destination, error, wait)
        self.metrics.inc(
            "nightshift_notifications_retried_total", "Sends retried.", destination=self.platform
        )

    def _gave_up(self, n: int, error: str) -> None:
        log.warning("delivery to %s failed for good: %s", self.destination, error)
        self.metrics.inc(
            "nightshift_notifications_failed_total", "Sends given up.", n, platform=self.platform
        )


@dataclass
class DeliveryWorker:
    """The couriers (one per destination, made as destinations appear) and the correlator."""

    store: Store
    clock: Clock
    notifiers: Mapping[str, Notifier]
    render: Renderer
    metrics: Metrics
    routes: Routes
    correlation: Correlation = field(default_factory=Correlation)
    interval: Callable[[str], float] = min_interval
    sleep: Callable[[float], object] = asyncio.sleep
    edit_gap: float = EDIT_GAP
    new_per_minute: int = NEW_PER_MINUTE
    extra_destinations: Sequence[str] = ()
    holder: str | None = None  # the instance's id, on its couriers' leases (`instance_id`)
    couriers: dict[str, Courier] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _running: asyncio.Task[object] | None = None

    def courier(self, destination: str) -> Courier:
        found = self.couriers.get(destination)
        if found is None:
            found = self.couriers[destination] = Courier(
                destination=destination,
                notifier=self.notifiers.get(destination.partition(":")[0]),
                store=self.store,
                clock=self.clock,
                render=self.render,
                metrics=self.metrics,
                interval=self.interval,
                sleep=self.sleep,
                edit_gap=self.edit_gap,
                new_per_minute=self.new_per_minute,
                holder=self.holder,
            )
        return found

    def poke(self) -> None:
        """Something was stored: correlate, then send, now rather than at the next poll. Under a
        stream of pokes passes start at most every PASS_GAP, each taking all that came."""
        self.wake.set()

    async def correlate(self) -> list[int]:
        """Join waiting alert and finding changes to incidents; wakes the couriers if any."""
        changed = await asyncio.to_thread(
            self.store.correlate, self.clock.now(), self.correlation, self.routes
        )
        if changed:
            for destination in await asyncio.to_thread(self.store.due_destinations):
                self.courier(destination)
            for courier in self.couriers.values():
                courier.wake.set()
        return changed

    async def run_once(self) -> int:
        """One correlation and one pass of every courier, one after another (for tests)."""
        await self.correlate()
        for destination in await asyncio.to_thread(self.store.due_destinations):
            self.courier(destination)
        done = 0
        for courier in list(self.couriers.values()):
            done += await courier.run_once()
        return done

    async def run(self, poll: float = 1.0) -> None:
        """Correlate on every poke and keep a courier running for every destination."""
        self._running = asyncio.current_task()
        for destination in (*self.routes.everywhere(), *self.extra_destinations):
            self.courier(destination)
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                started = time.monotonic()
                try:
                    await self.correlate()
                    for destination in await asyncio.to_thread(self.store.due_destinations):
                        self.courier(destination)
                except StorageError as error:
                    log.warning("correlator: store unavailable (%s)", error)
                except Exception:
                    log.exception("correlation pass failed")
                for destination, courier in self.couriers.items():
                    courier.wake.set()  # a command, a report or an escalation may be due too
                    if destination not in self._tasks:
                        self._tasks[destination] = asyncio.create_task(
                            courier.run(poll, self.stopping), name=f"courier {destination}"
                        )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=poll)
                # Under a stream of pokes a pass starts at most every PASS_GAP, or three times
                # as long as the last pass took (up to a second): the correlator takes what
                # came meanwhile in one go and leaves the webhooks most of the machine.
                took = time.monotonic() - started
                rest = min(max(PASS_GAP, 3 * took), 1.0) - took
                if rest > 0:
                    await asyncio.sleep(rest)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()

    async def stop(self, grace: float = 10.0) -> None:
        """Let every courier finish the send and store write it is in, then stop: a cancelled
        task would leave its thread writing to a store about to close."""
        self.stopping.set()
        self.poke()
        running = [*self._tasks.values(), *([self._running] if self._running else [])]
        if running:
            await asyncio.wait(running, timeout=grace)
