"""Group commit: writes that arrive together are applied together, in one transaction.

Each caller awaits its own result. While one batch is being written, new items queue; the
next batch takes them all (up to `limit`), so under load one commit serves many requests and
alone a request is written at once, with no added wait. A failed batch is retried item by
item, so one bad item fails alone and the others are not held back by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Applies items in arrival order with `apply_many` (run in a worker thread)."""

    def __init__(self, apply_many: Callable[[Sequence[T]], list[R]], *, limit: int = 256) -> None:
        self._apply_many = apply_many
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # how many commits served the items so far

    async def submit(self, item: T) -> R:
        """The item's result once its batch is committed; the batch's error if it failed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        # shield: a caller that goes away does not cancel the others' commit.
        return await asyncio.shield(future)

    async def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self._limit]
            del self._pending[: self._limit]
            self.batches += 1
            try:
                results = await asyncio.to_thread(self._apply_many, [item for item, _ in batch])
            except Exception as error:
                if len(batch) == 1:
                    batch[0][1].set_exception(error)
                else:
                    log.debug("group of %d failed (%s); writing one by one", len(batch), error)
                    await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    async def _one_by_one(self, batch: Sequence[tuple[T, asyncio.Future[R]]]) -> None:
        for item, future in batch:
            try:
                (result,) = await asyncio.to_thread(self._apply_many, [item])
            except Exception as error:
                future.set_exception(error)
            else:
                future.set_result(result)
