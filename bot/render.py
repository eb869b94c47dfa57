"""Fitting a Reply into chat platform limits: measuring, splitting long lines, packing in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Measure = Callable[[str], int]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts message length and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def split_long(text: str, limit: int, measure: Measure = len) -> list[str]:
    """`text` cut into pieces of at most `limit`, at a space when one is near, never losing a
    character: `"".join(pieces) == text`."""
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while measure(rest) > limit:
        # the longest prefix that fits (measure may count some characters as two)
        cut = min(len(rest), limit)
        while cut > 1 and measure(rest[:cut]) > limit:
            cut -= 1
        space = rest.rfind(" ", 0, cut)
        if space >= cut // 2:
            cut = space + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return pieces


def pack(items: Sequence[T], limit: int, size: Callable[[T], int], gap: int = 0) -> list[list[T]]:
    """Items grouped in order into runs whose total size (plus `gap` between neighbours) is at
    most `limit`. An item bigger than `limit` gets a run of its own; callers split those first."""
    runs: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        extra = cost + (gap if current else 0)
        if current and used + extra > limit:
            runs.append(current)
            current, used = [], 0
            extra = cost
        current.append(item)
        used += extra
    if current:
        runs.append(current)
    return runs
