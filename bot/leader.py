"""Leader election between `serve` replicas on one PostgreSQL: a lease row with an expiry.

The lease is the store's (`Store.take_lease`: a `state` row `lease:<name>`, holder id and
renewed at): a replica takes it when it is free, its own, or not renewed for `ttl`; the holder
renews it every `ttl / 3`. A leader that dies stops renewing, and another replica takes over at
most `ttl` plus one renewal period later. A leader believes itself leader only until a margin
before the expiry the others see, so two never act at once (given clocks kept in step by NTP).

On SQLite there is one process by design: it is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from skills.core import Clock
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

TTL = timedelta(seconds=30)
Hook = Callable[[], Awaitable[object]]


def holder_id() -> str:
    """`host:pid:random`: unique per process, readable in the database."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"


class Leader:
    """One replica's view of the lease; `is_leader()` is cheap (no database round trip)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        name: str = "scheduler",
        ttl: timedelta = TTL,
        holder: str | None = None,
        on_elected: Hook | None = None,
        on_deposed: Hook | None = None,
    ) -> None:
        if ttl < timedelta(seconds=1):
            raise ValueError("the lease must last at least a second")
        self._store = store
        self._clock = clock
        self.key = f"lease:{name}"
        self.ttl = ttl
        self.margin = ttl / 5  # stop acting this long before the others may take over
        self.holder = holder or holder_id()
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.always = store.dialect != "postgresql"
        self._held_until: datetime | None = None
        self._was_leader = False
        self._task: asyncio.Task[None] | None = None

    @property
    def renew_every(self) -> timedelta:
        return self.ttl / 3

    async def is_leader(self) -> bool:
        if self.always:
            return True
        return self._held_until is not None and self._clock.now() < self._held_until

    async def renew(self) -> bool:
        """One attempt to take or keep the lease; fires the hooks on a change. True if leader."""
        if self.always:
            held = True
        else:
            now = self._clock.now()
            try:
                taken = await asyncio.to_thread(
                    self._store.take_lease, self.key, self.holder, now, self.ttl
                )
            except StorageError as error:
                # Unreachable: keep acting until our lease runs out, as the others will wait.
                log.warning("lease %s: database unreachable (%s)", self.key, type(error).__name__)
            else:
                self._held_until = now + self.ttl - self.margin if taken else None
            held = await self.is_leader()
        await self._changed(held)
        return held

    async def _changed(self, held: bool) -> None:
        if held == self._was_leader:
            return
        self._was_leader = held
        # Taking the lease is routine (every start); losing it is worth a look.
        level = logging.INFO if held else logging.WARNING
        log.log(level, "%s %s leadership (%s)", self.holder, "took" if held else "lost", self.key)
        hook = self.on_elected if held else self.on_deposed
        if hook is not None:
            try:
                await hook()
            except Exception:
                log.exception("leadership hook failed")

    async def start(self) -> None:
        """Try once now, then keep renewing (or trying) in the background."""
        await self.renew()
        if not self.always:
            self._task = asyncio.create_task(self._loop(), name=f"lease {self.key}")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every.total_seconds())
            await self.renew()

    async def stop(self) -> None:
        """Stop renewing and hand the lease back, so another replica takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self.always and self._held_until is not None:
            self._held_until = None
            try:
                await asyncio.to_thread(self._store.release_lease, self.key, self.holder)
            except StorageError as error:
                log.warning("lease %s: not released (%s)", self.key, type(error).__name__)
        self._was_leader = False
