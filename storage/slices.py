"""Slices: dimensioned counts stored idempotently as combos, totals and marginals, and read back.

A count row with extra columns counts one combo (its extra columns' values) of a (minute,
status). The store keeps each combo's last count (`combo_counts`); a row that changes it adds
the difference (new - old) to the (minute, status) total in `counts` and to each of the combo's
slices in `slice_counts` (the marginals: per minute, status, dimension and value, the sum of the
combos holding that value). So a re-sent row changes nothing, and the rows of one minute sent
in two requests count as if sent in one. An event row with a new id adds 1 to its slices, as it
adds 1 to its total (`storage/dialects`); events keep no combo.

A minute may get both: a plain count row (no extra columns) sets the total as it always has, and
dimensioned rows then add their differences to whatever the total holds; the marginals count
dimensioned rows only.

Cardinality: per dimension at most `top` values (NIGHTSHIFT_SLICE_TOP) get a slice of their
own, in `slice_values`. A value is admitted when it first comes while its dimension has fewer
than `top`, the values new in one batch ranked by their volume in it (most first, then by name);
once admitted it stays. A value that comes when the dimension is full counts as `other`, and
stays `other` even if it later outgrows admitted ones: a slice's history never changes meaning.
The slices a combo counts in are fixed when the combo first comes (`slice_combos`), so raising
`top` later admits new values from then on and never moves a combo's counts. Writers change
slices one at a time (`Dialect.lock_slices`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, func, insert, select

from storage import schema
from storage.database import Database
from storage.dialects import Dialect
from storage.parsing import FeedBatch
from storage.records import SliceDimension

OTHER = "other"  # the slice of a dimension's values past its top

Bucket = tuple[int, str]  # (minute, status)


class _Values:
    """The slice values of some dimensions: ids by (dimension, value), and admission."""

    def __init__(self, conn: Connection, dimensions: Sequence[str]) -> None:
        v = schema.slice_values
        rows = conn.execute(
            select(v.c.id, v.c.dimension, v.c.value).where(v.c.dimension.in_(dimensions))
        )
        self.ids = {(str(d), str(value)): int(i) for i, d, value in rows}
        self.conn = conn

    def admit(self, volumes: Mapping[tuple[str, str], int], top: int) -> None:
        """Admit the new values (with their volumes), most first, while each dimension has
        room; a dimension with a value left out gets its `other`."""
        held: dict[str, int] = defaultdict(int)
        for dimension, value in self.ids:
            if value != OTHER:
                held[dimension] += 1
        new = sorted(
            ((d, value, n) for (d, value), n in volumes.items() if (d, value) not in self.ids),
            key=lambda item: (item[0], -item[2], item[1]),
        )
        wanted: list[dict[str, str]] = []
        others = {d for d, value in self.ids if value == OTHER}
        for dimension, value, _ in new:
            if held[dimension] < top and value != OTHER:
                held[dimension] += 1
                wanted.append({"dimension": dimension, "value": value})
            elif dimension not in others:
                others.add(dimension)
                wanted.append({"dimension": dimension, "value": OTHER})
        if wanted:
            self.conn.execute(insert(schema.slice_values), wanted)
            v = schema.slice_values
            names = {w["dimension"] for w in wanted}
            for i, d, value in self.conn.execute(
                select(v.c.id, v.c.dimension, v.c.value).where(v.c.dimension.in_(names))
            ):
                self.ids[(str(d), str(value))] = int(i)

    def slice_of(self, dimensions: Sequence[str], values: Sequence[str]) -> tuple[int, ...]:
        """The slice value ids a combo of these values counts in."""
        ids = self.ids
        return tuple(
            ids.get((d, value)) or ids[(d, OTHER)]
            for d, value in zip(dimensions, values, strict=True)
        )


def _volumes(
    dimensions: Sequence[str], rows: Iterable[tuple[Sequence[str], int]]
) -> dict[tuple[str, str], int]:
    volumes: dict[tuple[str, str], int] = defaultdict(int)
    for values, count in rows:
        for dimension, value in zip(dimensions, values, strict=True):
            volumes[(dimension, value)] += count
    return volumes


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
    values = _Values(conn, dimensions)
    combos = _combos(conn, dialect, batch)
    new = [r for r in batch.slices if r.combo not in combos]
    volumes = _volumes(dimensions, [(r.values, r.count) for r in new])
    for key, n in _volumes(dimensions, [(e.values, 1) for e in events]).items():
        volumes[key] += n
    values.admit(volumes, top)
    if new:
        slices = {r.combo: values.slice_of(dimensions, r.values) for r in new}
        keys = list(slices)
        rows = [{"key": k, "slice": ",".join(map(str, slices[k]))} for k in keys]
        ids = dialect.insert_returning_ids(conn, schema.slice_combos, rows)
        combos.update(zip(keys, zip(ids, (slices[k] for k in keys), strict=True), strict=True))
    totals: dict[Bucket, int] = defaultdict(int)
    marginals: dict[tuple[int, str, int], int] = defaultdict(int)
    if batch.slices:
        old = _combo_counts(conn, dialect, {r.minute for r in batch.slices})
        changed = []
        for minute, status, combo, _, count in batch.slices:
            combo_id, slice_ids = combos[combo]
            delta = count - old.get((minute, status, combo_id), 0)
            if delta:
                changed.append((minute, status, combo_id, count))
                totals[(minute, status)] += delta
                for value_id in slice_ids:
                    marginals[(minute, status, value_id)] += delta
        dialect.set_buckets(conn, schema.combo_counts, changed)
    for event in events:
        for value_id in values.slice_of(dimensions, event.values):
            marginals[(event.minute, event.status, value_id)] += 1
    dialect.add_buckets(conn, schema.counts, [(*k, n) for k, n in totals.items() if n])
    dialect.add_buckets(conn, schema.slice_counts, [(*k, n) for k, n in marginals.items() if n])


def _combos(
    conn: Connection, dialect: Dialect, batch: FeedBatch
) -> dict[str, tuple[int, tuple[int, ...]]]:
    """The batch's combos already known: id and slice value ids, by key."""
    keys = list({r.combo for r in batch.slices})
    queries = dialect.select_in(schema.slice_combos, ("key", "id", "slice"), "key", keys)
    return {
        str(key): (int(i), tuple(int(v) for v in str(ids).split(",") if v))
        for rows in dialect.fetch(conn, *queries)
        for key, i, ids in rows
    }


def _combo_counts(
    conn: Connection, dialect: Dialect, minutes: Iterable[int]
) -> dict[tuple[int, str, int], int]:
    """The counts stored for the combos of these minutes."""
    table, columns = schema.combo_counts, ("minute", "status", "combo_id", "count")
    queries = dialect.select_in(table, columns, "minute", sorted(minutes))
    return {
        (int(m), str(s), int(c)): int(n)
        for rows in dialect.fetch(conn, *queries)
        for m, s, c, n in rows
    }


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
        """Every dimension with its slice values and their transactions in [since, until),
        most first (values with none then, last); dimensions by name."""
        c, v = schema.slice_counts, schema.slice_values
        volume = self._window(
            select(c.c.value_id, func.sum(c.c["count"]).label("n")).group_by(c.c.value_id),
            since,
            until,
            join=False,
        ).subquery()
        query = select(v.c.dimension, v.c.value, func.coalesce(volume.c.n, 0)).outerjoin(
            volume, volume.c.value_id == v.c.id
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
