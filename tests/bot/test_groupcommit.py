"""Group commit: concurrent writes share commits, keep their order, and fail alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from bot.groupcommit import GroupCommit


class Ledger:
    """A stand-in for the store: records each commit; an item "bad" fails its whole commit."""

    def __init__(self) -> None:
        self.commits: list[list[str]] = []
        self.release = threading.Event()

    def apply_many(self, items: Sequence[str]) -> list[str]:
        self.release.wait(5)
        if "bad" in items:
            raise ValueError("bad item")
        self.commits.append(list(items))
        return [item.upper() for item in items]


async def test_concurrent_items_share_commits_in_arrival_order() -> None:
    ledger = Ledger()
    writes: GroupCommit[str, str] = GroupCommit(ledger.apply_many)
    first = asyncio.create_task(writes.submit("a"))
    await asyncio.sleep(0.05)  # "a" is being written; the rest queue behind it
    rest = [asyncio.create_task(writes.submit(x)) for x in "bcdef"]
    await asyncio.sleep(0.05)
    ledger.release.set()
    assert await first == "A"
    assert [await task for task in rest] == list("BCDEF")
    assert ledger.commits == [["a"], ["b", "c", "d", "e", "f"]]
    assert writes.batches == 2


async def test_a_bad_item_fails_alone_and_the_others_are_stored() -> None:
    ledger = Ledger()
    ledger.release.set()
    writes: GroupCommit[str, str] = GroupCommit(ledger.apply_many)
    blocker = asyncio.create_task(writes.submit("x"))
    tasks = [asyncio.create_task(writes.submit(x)) for x in ("p", "bad", "q")]
    assert await blocker == "X"
    assert await tasks[0] == "P"
    with pytest.raises(ValueError, match="bad item"):
        await tasks[1]
    assert await tasks[2] == "Q"
    assert [c for c in ledger.commits if c != ["x"]] == [["p"], ["q"]]


async def test_a_caller_that_goes_away_does_not_cancel_the_commit() -> None:
    ledger = Ledger()
    writes: GroupCommit[str, str] = GroupCommit(ledger.apply_many)
    gone = asyncio.create_task(writes.submit("a"))
    await asyncio.sleep(0.05)
    gone.cancel()
    ledger.release.set()
    assert await writes.submit("b") == "B"
    assert ledger.commits == [["a"], ["b"]]


async def test_batches_are_capped_at_the_limit() -> None:
    ledger = Ledger()
    writes: GroupCommit[str, str] = GroupCommit(ledger.apply_many, limit=2)
    tasks = [asyncio.create_task(writes.submit(x)) for x in "abcde"]
    await asyncio.sleep(0.05)
    ledger.release.set()
    assert [await t for t in tasks] == list("ABCDE")
    assert all(len(c) <= 2 for c in ledger.commits)
    assert [x for c in ledger.commits for x in c] == list("abcde")
