"""Alert delivery: the outbox worker pushing alerts, findings and briefings to every chat.

Every pushed message comes from the outbox (`storage/outbox.py`), written in the transaction of
the change it tells of. The worker claims due deliveries with a lease, sends them per destination
at that platform's pace, records the platform's message id, and retries what failed: after the
platform's own `retry_after`, or with exponential backoff and jitter. Resolution and ack edit
the first message; a storm (many alert changes for one destination at once, or in quick
succession) becomes one digest, edited as it grows.

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
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from bot.metrics import Metrics
from skills.core import Clock, Reply
from skills.notices import (
    alert_notice,
    finding_notice,
    reply_from_body,
    resolution_note,
    storm_digest,
)
from storage.outbox import Delivery
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 30
STORM_WINDOW = timedelta(minutes=10)
PASS_GAP = 0.025  # seconds: the least time between the starts of two delivery passes
DIGEST_GAP = 1.0  # seconds: the least time between two posts or edits of a storm digest
CLAIM_LIMIT = 5000  # deliveries one pass may claim
FIRST_EVENTS = ("firing", "opened")  # events told in a new message; the others edit it
DIGEST_LINES = 10  # alerts a storm digest lists by name; the rest are counted


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
    """One platform's outgoing side, as the worker needs it."""

    async def post(self, target: str, reply: Reply) -> str: ...

    async def edit(self, target: str, ref: str, reply: Reply) -> None: ...

    async def thread(self, target: str, ref: str, reply: Reply) -> str: ...


@dataclass(frozen=True, slots=True)
class Routes:
    """Who hears what: severity → destinations (`telegram:<chat>`, `slack:<channel>`, `console`)."""

    table: Mapping[str, tuple[str, ...]]

    def __call__(self, severity: str) -> tuple[str, ...]:
        return self.table.get(severity.lower(), self.table.get("*", ()))

    @classmethod
    def default(cls, slack: str | None, telegram: Sequence[str], console: bool) -> Routes:
        """Critical → the Slack channel and every Telegram chat; warning → Slack only."""
        slack_dest = (f"slack:{slack}",) if slack else ()
        telegram_dest = tuple(f"telegram:{c}" for c in telegram)
        console_dest = ("console",) if console else ()
        return cls(
            {
                "critical": slack_dest + telegram_dest + console_dest,
                "warning": slack_dest + console_dest,
                "*": console_dest,
            }
        )


def min_interval(destination: str) -> float:
    """Seconds between two messages to one destination: the platforms' published limits."""
    platform, _, target = destination.partition(":")
    if platform == "telegram":
        return 3.0 if target.startswith("-") else 1.0  # groups: 20/min; private chats: 1/s
    if platform == "slack":
        return 1.0
    return 0.0


_Refs = dict[tuple[str, str], str]  # (subject kind, subject) → the platform's message id


@dataclass
class _Storm:
    since: datetime
    ref: str | None = None
    told: int = 0
    resolved: int = 0


@dataclass
class DeliveryWorker:
    """Claims due deliveries and sends them; `run_once` is one pass, `run` the loop."""

    store: Store
    clock: Clock
    notifiers: Mapping[str, Notifier]
    lang: str
    tz: tzinfo
    metrics: Metrics
    can_silence: bool = False
    button_ttl: timedelta = timedelta(hours=12)
    storm_after: int = 2  # more than this many alert messages within a minute → a digest
    interval: Callable[[str], float] = min_interval
    sleep: Callable[[float], object] = asyncio.sleep
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _recent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _storms: dict[str, _Storm] = field(default_factory=dict)
    _next_slot: dict[str, float] = field(default_factory=dict)

    def poke(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self.wake.set()

    async def run(self, poll: float = 5.0, gap: float = PASS_GAP) -> None:
        while True:
            # Cleared before the pass, so a poke that comes during it starts the next one soon.
            self.wake.clear()
            started = time.monotonic()
            try:
                await self.run_once()
            except StorageError as error:
                log.warning("delivery: store unavailable (%s)", error)
            except Exception:
                log.exception("delivery pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=poll)
            # Under a stream of pokes, passes start at most every `gap` seconds, so one pass
            # takes what a burst queued; after a quiet spell the first poke is served at once.
            rest = gap - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def run_once(self) -> int:
        """Claim what is due and send it, destinations in parallel; returns how many were done."""
        claimed = await asyncio.to_thread(
            self.store.claim_deliveries, self.clock.now(), LEASE, CLAIM_LIMIT
        )
        by_destination: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in claimed:
            by_destination[delivery.destination].append(delivery)
        await asyncio.gather(*(self._destination(d, items) for d, items in by_destination.items()))
        return len(claimed)

    async def _destination(self, destination: str, items: list[Delivery]) -> None:
        platform, _, target = destination.partition(":")
        notifier = self.notifiers.get(platform)
        storm: list[Delivery] = []
        firing = sum(1 for d in items if d.subject_kind == "alert" and d.event == "firing")
        refs = await self._refs(destination, items)
        for delivery in items:
            if notifier is None:
                await self._finish(delivery, "failed", error=f"{platform} is not configured")
                continue
            if self._storming(destination, delivery, firing, refs):
                storm.append(delivery)
                continue
            await self._pace(destination)
            try:
                ref = await self._send(notifier, destination, target or destination, delivery, refs)
            except Transient as error:
                await self._retry(delivery, str(error), error.retry_after)
            except Permanent as error:
                await self._finish(delivery, "failed", error=str(error))
            else:
                if delivery.subject_kind == "alert" and delivery.event == "firing":
                    self._recent[destination].append(time.monotonic())
                await self._finish(delivery, "sent", ref=ref)
                if ref is not None:
                    refs.setdefault((delivery.subject_kind, delivery.subject), ref)
        if storm and notifier is not None:
            await self._merge(notifier, destination, target or destination, storm)

    async def _refs(self, destination: str, items: list[Delivery]) -> _Refs:
        """The first message about each subject that a delivery of the pass may edit, read in
        one query per kind of subject rather than one per delivery; kept current as we send."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for d in items:
            if d.event not in FIRST_EVENTS:
                wanted[d.subject_kind].append(d.subject)
        refs: _Refs = {}
        for kind, subjects in wanted.items():
            found = await asyncio.to_thread(self.store.message_refs, kind, subjects, destination)
            refs.update(((kind, subject), ref) for subject, ref in found.items())
        return refs

    # -- pacing and storms --------------------------------------------------------------------

    async def _pace(self, destination: str, least: float = 0.0) -> None:
        """Wait for the destination's next slot; the one after comes its interval (or `least`,
        if longer) later."""
        now = time.monotonic()
        slot = self._next_slot.get(destination, now)
        if slot > now:
            await self._sleep(slot - now)
        gap = max(self.interval(destination), least)
        self._next_slot[destination] = max(slot, now) + gap

    async def _sleep(self, seconds: float) -> None:
        result = self.sleep(seconds)
        if asyncio.iscoroutine(result):
            await result

    def _storming(
        self, destination: str, delivery: Delivery, firing_in_batch: int, refs: _Refs
    ) -> bool:
        """Whether this alert change goes into the digest rather than a message of its own.

        A storm starts when a destination gets more than `storm_after` new alerts in one pass,
        or when it already got that many in the last minute; it lasts STORM_WINDOW. During a
        storm new alerts join the digest; a resolution edits its own message if it has one.
        """
        if delivery.subject_kind != "alert" or delivery.event == "ack":
            return False
        if delivery.event == "resolved":
            return destination in self._storms and ("alert", delivery.subject) not in refs
        now = time.monotonic()
        recent = self._recent[destination]
        while recent and now - recent[0] > 60:
            recent.popleft()
        storm = self._storms.get(destination)
        if storm is not None and self.clock.now() - storm.since > STORM_WINDOW:
            del self._storms[destination]
            storm = None
        if storm is None and len(recent) < self.storm_after and firing_in_batch <= self.storm_after:
            return False
        if storm is None:
            self._storms[destination] = _Storm(since=self.clock.now())
        return True

    async def _merge(
        self, notifier: Notifier, destination: str, target: str, batch: list[Delivery]
    ) -> None:
        """Fold a batch of alert changes into the destination's storm digest: one post or edit."""
        storm = self._storms[destination]
        resolved = sum(1 for d in batch if d.event == "resolved")
        # A digest changes at most every DIGEST_GAP (or the platform's pace): a storm's changes
        # meanwhile wait for the next pass and make one edit, not one each (nor a 429).
        await self._pace(destination, DIGEST_GAP)
        firing, worst = await asyncio.to_thread(self.store.worst_firing, DIGEST_LINES)
        digest = storm_digest(
            firing,
            worst,
            storm.told + len(batch),
            storm.resolved + resolved,
            self.lang,
            self.tz,
            storm.since,
        )
        try:
            if storm.ref is None:
                storm.ref = await notifier.post(target, digest)
            else:
                await notifier.edit(target, storm.ref, digest)
        except Transient as error:
            for delivery in batch:
                await self._retry(delivery, str(error), error.retry_after)
            return
        except Permanent as error:
            await self._finish_all(batch, "failed", error=str(error))
            return
        storm.told += len(batch)
        storm.resolved += resolved
        await self._finish_all(batch, "merged", ref=storm.ref)

    # -- one message --------------------------------------------------------------------------

    async def _send(
        self, notifier: Notifier, destination: str, target: str, delivery: Delivery, refs: _Refs
    ) -> str | None:
        now = self.clock.now()
        until = now + self.button_ttl
        if delivery.subject_kind == "reply":
            return await notifier.post(target, reply_from_body(delivery.body))
        if delivery.subject_kind == "alert":
            alert = await asyncio.to_thread(self.store.alert, delivery.subject)
            if alert is None:
                raise Permanent(f"alert {delivery.subject} is gone")
            reply = alert_notice(
                alert, self.lang, self.tz, now, buttons_until=until, can_silence=self.can_silence
            )
            note = (
                resolution_note(alert, self.lang, self.tz) if delivery.event == "resolved" else None
            )
        else:
            finding = await asyncio.to_thread(self.store.anomaly, delivery.subject)
            if finding is None:
                raise Permanent(f"finding {delivery.subject} is gone")
            reply = finding_notice(finding, self.lang, self.tz, buttons_until=until)
            note = Reply(title=reply.title) if delivery.event == "resolved" else None
        if delivery.event in FIRST_EVENTS:
            return await notifier.post(target, reply)
        ref = refs.get((delivery.subject_kind, delivery.subject))
        if ref is None:  # the first message never went out (or went into a digest): tell anew
            return await notifier.post(target, reply)
        await notifier.edit(target, ref, reply)
        if note is not None:
            await notifier.thread(target, ref, note)
        return ref

    async def _retry(self, delivery: Delivery, error: str, retry_after: float | None) -> None:
        attempts = delivery.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._finish(delivery, "failed", error=f"gave up after {attempts}: {error}")
            return
        if retry_after is not None:
            wait = retry_after + 0.1
        else:
            wait = min(300.0, 2.0**attempts) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter
        log.info(
            "delivery %s to %s: %s; retry in %.1fs", delivery.id, delivery.destination, error, wait
        )
        self.metrics.inc(
            "nightshift_notifications_retried_total",
            "Deliveries retried.",
            destination=delivery.destination.partition(":")[0],
        )
        await asyncio.to_thread(
            self.store.finish_deliveries,
            [delivery.id],
            "pending",
            self.clock.now(),
            error=error[:500],
            retry_at=self.clock.now() + timedelta(seconds=wait),
        )

    async def _finish(
        self, delivery: Delivery, status: str, *, ref: str | None = None, error: str | None = None
    ) -> None:
        await self._finish_all([delivery], status, ref=ref, error=error)

    async def _finish_all(
        self,
        batch: list[Delivery],
        status: str,
        *,
        ref: str | None = None,
        error: str | None = None,
    ) -> None:
        platform = batch[0].destination.partition(":")[0]
        if status == "failed":
            log.warning("%d deliveries to %s failed: %s", len(batch), batch[0].destination, error)
            self.metrics.inc(
                "nightshift_notifications_failed_total",
                "Deliveries given up.",
                len(batch),
                platform=platform,
            )
        else:
            self.metrics.inc(
                "nightshift_notifications_sent_total",
                "Deliveries done.",
                len(batch),
                platform=platform,
                how=status,
            )
        await asyncio.to_thread(
            self.store.finish_deliveries,
            [d.id for d in batch],
            status,
            self.clock.now(),
            ref=ref,
            error=error[:500] if error else None,
        )
