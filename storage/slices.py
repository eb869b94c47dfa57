"""Slices: dimensioned counts stored idempotently as combos, totals and marginals, and read back.

A count row with extra columns counts one combo (its extra columns' values) of a (minute,
status). The store keeps each combo's last count (`combo_counts`, the combo named by a 64-bit
hash of its values); a row that changes it adds the difference (new - old) to the (minute,
status) total in `counts` and to each of the combo's slices in `slice_counts` (the marginals:
per minute, status and slice value, the sum of the combos holding that value). So a re-sent row
changes nothing, and the rows of one minute sent in two requests count as if sent in one. An
event row with a new id adds 1 to its slices, as it adds 1 to its total (`storage/dialects`);
events keep no combo.

A minute may get both: a plain count row (no extra columns) sets the total as it always has, and
dimensioned rows then add their differences to whatever the total holds; the marginals count
dimensioned rows only.

Cardinality: per dimension at most `top` values (NIGHTSHIFT_SLICE_TOP) get a slice of their
own. Every value is written to `slice_values` when it first comes, admitted while its dimension
has fewer than `top` admitted values (the values new in one batch ranked by their volume in it,
most first, then by name), else counted in the dimension's `other`; that choice never changes.
So a newcomer that later outgrows an admitted value stays in `other`, raising `top` admits only
values not seen before, and a combo's counts always go to the slices its earlier counts went
to, which keeps the differences right. Writers change slices one at a time
(`Dialect.lock_slices`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from hashlib import blake2b
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, func, insert, select

from storage import schema
from storage.database import Database
from storage.dialects import Dialect
from storage.dialects.port import IN_LIST
from storage.parsing import FeedBatch
from storage.records import SliceDimension

OTHER = "other"  # the slice of a dimension's values past its top

Volumes = Mapping[tuple[str, str], int]  # transactions per (dimension, value) in a batch


class _Values:
    """The slice each value of a batch counts in, its own or its dimension's `other`; values
    new to the store are admitted (or not) as they are read."""

    def __init__(self, conn: Connection, volumes: Volumes, top: int) -> None:
        self.conn = conn
        self.slice: dict[tuple[str, str], int] = {}
        by_dimension: dict[str, list[str]] = defaultdict(list)
        for dimension, value in volumes:
            by_dimension[dimension].append(value)
        new: list[dict[str, Any]] = []
        for dimension, values in by_dimension.items():
            held = self._read(dimension, values)
            unseen = sorted(
                (v for v in values if (dimension, v) not in self.slice),
                key=lambda v, d=dimension: (-volumes[(d, v)], v),  # type: ignore[misc]
            )
            left_out = False
            for value in unseen:  # `other` itself is always admitted: it is the other slice
                admitted = value == OTHER or held < top
                held += admitted and value != OTHER
                left_out = left_out or not admitted
                new.append({"dimension": dimension, "value": value, "admitted": admitted})
            if left_out and (dimension, OTHER) not in self.slice and OTHER not in unseen:
                new.append({"dimension": dimension, "value": OTHER, "admitted": True})
        if new:
            conn.execute(insert(schema.slice_values), new)
            for dimension in {row["dimension"] for row in new}:
                self._read(
                    dimension, [row["value"] for row in new if row["dimension"] == dimension]
                )

    def _read(self, dimension: str, values: Sequence[str]) -> int:
        """The slices of these values of a dimension (and of its `other`), as stored; how many
        values the dimension has admitted."""
        v = schema.slice_values
        found: dict[str, tuple[int, bool]] = {}
        for at in range(0, len(values), IN_LIST):
            wanted = [*values[at : at + IN_LIST], OTHER]
            query = select(v.c.value, v.c.id, v.c.admitted).where(
                v.c.dimension == dimension, v.c.value.in_(wanted)
            )
            found.update(
                (str(value), (int(i), bool(a))) for value, i, a in self.conn.execute(query)
            )
        other = found.get(OTHER)
        for value, (i, admitted) in found.items():
            if admitted:
                self.slice[(dimension, value)] = i
            elif other is not None:
                self.slice[(dimension, value)] = other[0]
        held = select(func.count()).where(
            v.c.dimension == dimension, v.c.admitted.is_(True), v.c.value != OTHER
        )
        return int(self.conn.execute(held).scalar_one())

    def slices_of(self, dimensions: Sequence[str], values: Sequence[str]) -> tuple[int, ...]:
        """The slice value ids a combo of these values counts in."""
        return tuple(self.slice[(d, v)] for d, v in zip(dimensions, values, strict=True))


def _volumes(
    dimensions: Sequence[str], rows: Iterable[tuple[Sequence[str], int]]
) -> dict[tuple[str, str], int]:
    volumes: dict[tuple[str, str], int] = defaultdict(int)
    for values, count in rows:
        for dimension, value in zip(dimensions, values, strict=True):
            volumes[(dimension, value)] += count
    return volumes


def combo_hash(combo: str) -> int:
    """A combo's name in `combo_counts`: 64 bits of BLAKE2b of its key, signed."""
    return int.from_bytes(blake2b(combo.encode(), digest_size=8).digest(), "big", signed=True)


def store_slices(
    conn: Connection, dialect: Dialect, batch: FeedBatch, new_events: Sequence[str], top: int
) -> None:
    """The batch's combos and new events into the totals and marginals (see the module)."""
    dimensions = batch.dimensions
    events = [e for e in batch.events if e.values] if new_events and dimensions else []
    if events:
        fresh = set(new_events)
        events = [e for e in events if e.id in fresh]
    if not batch.slices and not events:
        return
    dialect.lock_slices(conn)
    rows = [(r.values, r.count) for r in batch.slices] + [(e.values, 1) for e in events]
    values = _Values(conn, _volumes(dimensions, rows), top)
    slices: dict[tuple[str, ...], tuple[int, ...]] = {}
    totals: dict[tuple[int, str], int] = defaultdict(int)
    marginals: dict[tuple[int, str, int], int] = defaultdict(int)
    if batch.slices:
        old = _combo_counts(conn, dialect, {r.minute for r in batch.slices})
        changed = []
        for minute, status, combo, combo_values, count in batch.slices:
            named = combo_hash(combo)
            delta = count - old.get((minute, status, named), 0)
            if delta:
                changed.append((minute, status, named, count))
                totals[(minute, status)] += delta
                ids = slices.get(combo_values)
                if ids is None:
                    ids = slices[combo_values] = values.slices_of(dimensions, combo_values)
                for value_id in ids:
                    marginals[(minute, status, value_id)] += delta
        dialect.set_buckets(conn, schema.combo_counts, changed)
    for event in events:
        for value_id in values.slices_of(dimensions, event.values):
            marginals[(event.minute, event.status, value_id)] += 1
    dialect.add_buckets(conn, schema.counts, [(*k, n) for k, n in totals.items() if n])
    dialect.add_buckets(conn, schema.slice_counts, [(*k, n) for k, n in marginals.items() if n])


def _combo_counts(
    conn: Connection, dialect: Dialect, minutes: Iterable[int]
) -> dict[tuple[int, str, int], int]:
    """The counts stored for the combos of these minutes."""
    table, columns = schema.combo_counts, ("minute", "status", "combo", "count")
    queries = dialect.select_in(table, columns, "minute", sorted(minutes))
    found = dialect.fetch(conn, *queries)
    return {(int(m), str(s), int(c)): int(n) for rows in found for m, s, c, n in rows}


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class Slices(Database):
    def slice_frame(
        self, since: datetime, until: datetime, dimension: str | None = None
    ) -> pd.DataFrame:
        """The marginals with since <= minute < until (of one dimension, or all), long:
        `minute` (UTC, as `counts_frame`), `status`, `dimension`, `value`, `count`."""
        c, v = schema.slice_counts, schema.slice_values
        query = self._window(
            select(c.c.minute, c.c.status, v.c.dimension, v.c.value, c.c["count"]), since, until
        )
        if dimension is not None:
            query = query.where(v.c.dimension == dimension)
        with self._read() as conn:
            rows = conn.execute(query).all()
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * 5
        minute, status, dimensions, values, counts = columns
        return pd.DataFrame(
            {
                "minute": pd.to_datetime(np.asarray(minute, np.int64), unit="s", utc=True),
                "status": pd.Series(status, dtype="object"),
                "dimension": pd.Series(dimensions, dtype="object"),
                "value": pd.Series(values, dtype="object"),
                "count": pd.Series(counts, dtype="int64"),
            }
        )

    def slice_series(
        self, dimension: str, value: str, since: datetime, until: datetime
    ) -> pd.DataFrame:
        """One slice's counts as the total's frame has them (`counts_frame`): `minute` (UTC),
        `status`, `count`."""
        frame = self.slice_frame(since, until, dimension)
        mine = frame[frame["value"] == value]
        return mine[["minute", "status", "count"]].reset_index(drop=True)

    def dimensions(self, since: datetime, until: datetime) -> tuple[SliceDimension, ...]:
        """Every dimension with its slice values (admitted ones and `other`) and their
        transactions in [since, until), most first (values with none then, last); by name."""
        c, v = schema.slice_counts, schema.slice_values
        volume = self._window(
            select(c.c.value_id, func.sum(c.c["count"]).label("n")).group_by(c.c.value_id),
            since,
            until,
            join=False,
        ).subquery()
        query = (
            select(v.c.dimension, v.c.value, func.coalesce(volume.c.n, 0))
            .outerjoin(volume, volume.c.value_id == v.c.id)
            .where(v.c.admitted.is_(True))
        )
        found: dict[str, list[tuple[str, int]]] = defaultdict(list)
        with self._read() as conn:
            for dimension, value, n in conn.execute(query):
                found[str(dimension)].append((str(value), int(n)))
        return tuple(
            SliceDimension(name, tuple(sorted(found[name], key=lambda p: (-p[1], p[0]))))
            for name in sorted(found)
        )

    @staticmethod
    def _window(
        query: Select[Any], since: datetime, until: datetime, *, join: bool = True
    ) -> Select[Any]:
        c, v = schema.slice_counts, schema.slice_values
        if join:
            query = query.select_from(c.join(v, v.c.id == c.c.value_id))
        return query.where(c.c.minute >= _epoch(since), c.c.minute < _epoch(until))
