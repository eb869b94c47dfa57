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
from datetime import datetime, timedelta
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
from storage.traffic import bucket_series, slot_of

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

    def ids(self, dimension: str, values: Sequence[str]) -> pd.Series[int]:
        """The slice value id each of these values of a dimension counts in."""
        wanted = {v: i for (d, v), i in self.slice.items() if d == dimension}
        return pd.Series(values, dtype="object").map(wanted).astype("int64")


class _Rows:
    """Dimensioned rows as columns: minute, status, each kept dimension's values, and what
    each adds (`count`)."""

    def __init__(
        self,
        minutes: Sequence[int],
        statuses: Sequence[str],
        values: Sequence[tuple[str, ...]],
        counts: Sequence[int],
        dimensions: Sequence[str],
    ) -> None:
        self.frame = pd.DataFrame(
            {"minute": np.asarray(minutes, np.int64), "status": statuses, "count": counts}
        )
        columns = list(zip(*values, strict=True)) if dimensions and values else []
        self.columns: dict[str, Sequence[str]] = dict(zip(dimensions, columns, strict=False))

    def volumes(self) -> dict[tuple[str, str], int]:
        """Transactions per (dimension, value)."""
        counts = pd.Series(self.frame["count"].to_numpy())
        volumes: dict[tuple[str, str], int] = {}
        for dimension, column in self.columns.items():
            sums = counts.groupby(np.asarray(column, dtype="object")).sum()
            volumes.update(((dimension, str(v)), int(n)) for v, n in sums.items())
        return volumes

    def keep(self, rows: np.ndarray, counts: np.ndarray) -> None:
        """Only these rows, each adding its entry of `counts` instead."""
        self.frame = self.frame.assign(count=counts).iloc[rows]
        self.columns = {d: [c[i] for i in rows] for d, c in self.columns.items()}

    def marginals(self, values: _Values) -> list[pd.DataFrame]:
        """The rows once per dimension, with the slice value id each adds its count to."""
        return [
            self.frame.assign(value_id=values.ids(d, column).to_numpy())
            for d, column in self.columns.items()
        ]


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
    combos = _Rows([], [], [], [], dimensions)
    volumes: dict[tuple[str, str], int] = {}
    if batch.slices:
        minutes, statuses, keys, values, counts = zip(*batch.slices, strict=True)
        named = list(map(combo_hash, keys))
        old = _combo_counts(conn, dialect, set(minutes))
        was = [old.get(k, 0) for k in zip(minutes, statuses, named, strict=True)]
        deltas = np.subtract(counts, was)
        moved = np.flatnonzero(deltas)
        changed = [(minutes[i], statuses[i], named[i], counts[i]) for i in moved]
        dialect.set_buckets(conn, schema.combo_counts, changed)
        combos = _Rows(minutes, statuses, values, counts, dimensions)
        volumes = combos.volumes()  # the values' volumes in the batch, before differences
        combos.keep(moved, deltas)
        dialect.add_buckets(conn, schema.counts, _sums([combos.frame], ["minute", "status"]))
    added = _Rows(
        [e.minute for e in events],
        [e.status for e in events],
        [e.values for e in events],
        [1] * len(events),
        dimensions,
    )
    for key, n in added.volumes().items():
        volumes[key] = volumes.get(key, 0) + n
    slices = _Values(conn, volumes, top)
    marginals = combos.marginals(slices) + added.marginals(slices)
    dialect.add_buckets(conn, schema.slice_counts, _sums(marginals, MARGINAL))


MARGINAL = ["minute", "status", "value_id"]


def _sums(frames: Sequence[pd.DataFrame], keys: list[str]) -> list[tuple[Any, ...]]:
    """(key..., sum of `count`) of each key the frames hold with a non-zero sum, as plain
    Python values. The keys (minute, status and maybe value_id) are packed into one int64 a
    row and summed by numpy: pandas' group-by over an object column took most of an ingest."""
    frame = pd.concat(frames) if frames else pd.DataFrame()
    if frame.empty:
        return []
    codes, statuses = pd.factorize(frame["status"])
    minutes = frame["minute"].to_numpy(np.int64) // 60
    packed = minutes * len(statuses) + codes
    width = 1
    if "value_id" in keys:
        ids = frame["value_id"].to_numpy(np.int64)
        width = int(ids.max()) + 1
        packed = packed * width + ids
    if int(minutes.max() + 1) * len(statuses) * width >= 2**62:  # not one int64: pandas sums
        sums = frame.groupby(keys, sort=False, as_index=False)["count"].sum()
        sums = sums[sums["count"] != 0]
        return list(zip(*(sums[c].tolist() for c in [*keys, "count"]), strict=True))
    unique, inverse = np.unique(packed, return_inverse=True)
    totals = np.zeros(len(unique), np.int64)
    np.add.at(totals, inverse, frame["count"].to_numpy(np.int64))
    kept = totals != 0
    unique, totals = unique[kept], totals[kept]
    rest, value_ids = np.divmod(unique, width)
    minute, code = np.divmod(rest, len(statuses))
    columns = [(minute * 60).tolist(), np.asarray(statuses, dtype=object)[code].tolist()]
    if "value_id" in keys:
        columns.append(value_ids.tolist())
    return list(zip(*columns, totals.tolist(), strict=True))


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
        self,
        since: datetime,
        until: datetime,
        dimension: str | None = None,
        value: str | None = None,
    ) -> pd.DataFrame:
        """The marginals with since <= minute < until (of one dimension, or one of its values,
        or all), long: `minute` (UTC, as `counts_frame`), `status`, `dimension`, `value`,
        `count`."""
        c, v = schema.slice_counts, schema.slice_values
        wanted = select(c.c.minute, c.c.status, v.c.dimension, v.c.value, c.c["count"])
        query = self._slice(self._window(wanted, since, until), dimension, value)
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
        frame = self.slice_frame(since, until, dimension, value)
        return frame[["minute", "status", "count"]]

    def slice_buckets(
        self,
        dimension: str,
        value: str,
        status: str,
        start: datetime,
        end: datetime,
        bucket: timedelta,
    ) -> pd.Series[int]:
        """One slice's `status_buckets`: its transactions of one status per `bucket`, summed in
        the database, indexed by each bucket's start (UTC), zero where nothing came."""
        c = schema.slice_counts
        slot = slot_of(c.c.minute, start, bucket)
        sums = select(slot, func.sum(c.c["count"]))
        query = self._slice(
            self._window(sums, start, end).where(c.c.status == status).group_by(slot),
            dimension,
            value,
        )
        with self._read() as conn:
            return bucket_series(conn.execute(query), start, end, bucket, status)

    def dimension_names(self) -> tuple[str, ...]:
        """The dimensions the feed has carried, by name."""
        v = schema.slice_values
        with self._read() as conn:
            names = conn.execute(select(v.c.dimension).distinct().order_by(v.c.dimension))
            return tuple(str(n) for n in names.scalars())

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
    def _slice(query: Select[Any], dimension: str | None, value: str | None) -> Select[Any]:
        v = schema.slice_values
        if dimension is not None:
            query = query.where(v.c.dimension == dimension)
        if value is not None:
            query = query.where(v.c.value == value)
        return query

    @staticmethod
    def _window(
        query: Select[Any], since: datetime, until: datetime, *, join: bool = True
    ) -> Select[Any]:
        c, v = schema.slice_counts, schema.slice_values
        if join:
            query = query.select_from(c.join(v, v.c.id == c.c.value_id))
        return query.where(c.c.minute >= _epoch(since), c.c.minute < _epoch(until))
