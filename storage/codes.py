"""Columns as integer codes: a column factorized, several packed into one key, counts summed.

A batch of ten thousand dimensioned rows is grouped several times over (combos, buckets,
marginals). Done with a tuple a row and a dict, that was most of an ingest; here each column is
made codes once (pandas' hash table, in C), codes are packed into one int64 a row, and groups and
sums are numpy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "Coded",
    "Ints",
    "digest64",
    "fingerprints",
    "first_rows",
    "grouped",
    "last_rows",
    "packed",
    "summed",
    "sums",
]

Ints = npt.NDArray[np.int64]
_ROOM = 2**62  # packed keys stay below this: an int64 with room for one more step
_SMALL = 2**16  # keys that may be counted in bins, one bin each, however few the rows


@dataclass(frozen=True, slots=True)
class Coded:
    """A column as each row's code into its distinct values (`labels`: objects, or int64; in
    order of first appearance where `of` made them)."""

    codes: Ints
    labels: npt.NDArray[Any]

    @classmethod
    def of(cls, column: Sequence[Any] | npt.NDArray[Any]) -> Coded:
        values = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
        codes, labels = pd.factorize(values)
        return cls(codes.astype(np.int64, copy=False), np.asarray(labels))

    def take(self, rows: Ints) -> Coded:
        """The codes of these rows; the same labels."""
        return Coded(self.codes[rows], self.labels)

    def values(self) -> npt.NDArray[Any]:
        """Each row's value."""
        return self.labels[self.codes]

    def ranked(self) -> Coded:
        """The same column, its labels in sorted order (so codes compare as the values do)."""
        order = np.argsort(self.labels, kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        return Coded(rank[self.codes], self.labels[order])


def packed(*columns: Coded) -> Ints:
    """One int64 a row naming its combination of codes: rows alike in every column, and only
    they, get the same key, and keys order as the rows' codes do, column by column. A key that
    would outgrow an int64 is made dense again first (its order kept)."""
    if not columns:
        return np.zeros(0, np.int64)
    key = np.zeros(len(columns[0].codes), np.int64)
    size = 1
    for column in columns:
        width = max(len(column.labels), 1)
        if size * width >= _ROOM:
            distinct, key = np.unique(key, return_inverse=True)
            key, size = key.astype(np.int64, copy=False), max(len(distinct), 1)
        key = key * width + column.codes
        size *= width
    return key


def grouped(key: Ints) -> tuple[Ints, int]:
    """Each row's group, numbered in order of first appearance, and how many groups."""
    groups, distinct = pd.factorize(key)
    return groups.astype(np.int64, copy=False), len(distinct)


def first_rows(groups: Ints) -> Ints:
    """The first row of each group (groups numbered in order of first appearance): a row is
    a first one when its group is above every group before it."""
    if not len(groups):
        return np.zeros(0, np.int64)
    before = np.maximum.accumulate(groups)
    return np.flatnonzero(np.concatenate(([True], groups[1:] > before[:-1])))


def last_rows(groups: Ints, n: int) -> Ints:
    """The last row of each of the `n` groups."""
    last = np.full(n, -1, np.int64)
    np.maximum.at(last, groups, np.arange(len(groups), dtype=np.int64))
    return last


def sums(groups: Ints, n: int, counts: Ints) -> Ints:
    """The sum of `counts` in each of the `n` groups, exact in int64 (a float sum is not past
    2**53, and a count may be 10**12)."""
    totals = np.zeros(n, np.int64)
    np.add.at(totals, groups, counts)
    return totals


def summed(columns: Sequence[Coded], counts: Ints) -> tuple[list[Coded], Ints]:
    """The keys (rows alike in every column) whose `counts` sum to other than 0, in key order
    (each column's values as they sort), as one row each: their columns and their sums. Rows in
    key order are what a B-tree takes fastest."""
    ranked = [column.ranked() for column in columns]
    widths = [max(len(column.labels), 1) for column in ranked]
    space = math.prod(widths)
    if space <= max(4 * len(counts), _SMALL):  # a bin for every key there could be
        key = np.ravel_multi_index([column.codes for column in ranked], widths)
        totals = sums(key, space, counts)
        at = np.flatnonzero(totals)
        codes = np.unravel_index(at, widths)
        keys = [Coded(c.astype(np.int64), r.labels) for c, r in zip(codes, ranked, strict=True)]
        return keys, totals[at]
    distinct, inverse = np.unique(packed(*ranked), return_inverse=True)
    totals = sums(inverse, len(distinct), counts)
    some = np.empty(len(distinct), np.int64)  # a row of each key: any, they are alike
    some[inverse] = np.arange(len(inverse), dtype=np.int64)
    at = np.flatnonzero(totals)
    return [column.take(some[at]) for column in ranked], totals[at]


# splitmix64's finalizer (Steele, Lea and Flood, 2014): a bijection of 64 bits in which every
# input bit reaches every output bit.
_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
_TIMES = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def digest64(text: str) -> int:
    """64 bits of BLAKE2b of a text's UTF-8, unsigned."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


def _mixed(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    h = (h ^ (h >> _SHIFTS[0])) * _TIMES[0]
    h = (h ^ (h >> _SHIFTS[1])) * _TIMES[1]
    return h ^ (h >> _SHIFTS[2])


def fingerprints(seed: str, columns: Sequence[Coded]) -> Ints:
    """Each row's 64-bit name for its values in these columns (texts), after `seed`: each
    distinct text's `digest64`, folded into the row's name a column at a time by a mixing
    step, so numpy does per row what a hash of the row's texts joined did in Python. Rows alike
    in every column get the same name; rows that differ, the same one by a chance of 2**-64. It
    is stored, so it is the same on every machine and in every version: BLAKE2b and integer
    arithmetic, nothing of Python's or a library's own hashing."""
    size = len(columns[0].codes) if columns else 0
    h = np.full(size, digest64(seed), np.uint64)
    for column in columns:
        texts = column.labels.tolist()
        digests = np.fromiter(map(digest64, texts), np.uint64, len(texts))
        h = _mixed(h ^ digests[column.codes])
    return h.view(np.int64)
