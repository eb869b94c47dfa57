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
from storage.codes import Coded, Ints, packed, summed, sums
from storage.database import Database
from storage.dialects import Dialect
from storage.dialects.port import IN_LIST
from storage.parsing import Combos, FeedBatch, SliceRow
from storage.records import SliceDimension
from storage.traffic import bucket_series, slot_of

OTHER = "other"  # the slice of a dimension's values past its top

Volumes = Mapping[tuple[str, str], int]  # transactions per (dimension, value) in a batch


class _Values:
    """The slice each value of a batch counts in, its own or its dimension's `other`; values
    new to the store are admitted (or not) as they are read. One query reads what the store
    holds of all the batch's values, another what it admitted, if anything is new."""

    def __init__(self, conn: Connection, volumes: Volumes, top: int) -> None:
        self.conn = conn
        self.slice: dict[tuple[str, str], int] = {}
        by_dimension: dict[str, list[str]] = defaultdict(list)
        for dimension, value in volumes:
            by_dimension[dimension].append(value)
        self._read(by_dimension)
        unseen = {
            dimension: sorted(
                (v for v in values if (dimension, v) not in self.slice),
                key=lambda v, d=dimension: (-volumes[(d, v)], v),  # type: ignore[misc]
            )
            for dimension, values in by_dimension.items()
        }
        unseen = {dimension: values for dimension, values in unseen.items() if values}
        if not unseen:
            return
        held = self._held(list(unseen))
        new: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for dimension, values in unseen.items():
            admitted_now, left_out = held.get(dimension, 0), False
            for value in values:  # `other` itself is always admitted: it is the other slice
                admitted = value == OTHER or admitted_now < top
                admitted_now += admitted and value != OTHER
                left_out = left_out or not admitted
                new[dimension].append((value, admitted))
            if left_out and (dimension, OTHER) not in self.slice and OTHER not in values:
                new[dimension].append((OTHER, True))
        conn.execute(
            insert(schema.slice_values),
            [
                {"dimension": dimension, "value": value, "admitted": admitted}
                for dimension, values in new.items()
                for value, admitted in values
            ],
        )
        self._read({dimension: [value for value, _ in values] for dimension, values in new.items()})

    def _read(self, values: Mapping[str, Sequence[str]]) -> None:
        """The slices of these values of each dimension (and of its `other`), as stored."""
        v = schema.slice_values
        dimensions = sorted(values)
        wanted = sorted({value for some in values.values() for value in some} | {OTHER})
        found: dict[tuple[str, str], tuple[int, bool]] = {}
        for at in range(0, len(wanted), IN_LIST):
            query = select(v.c.dimension, v.c.value, v.c.id, v.c.admitted).where(
                v.c.dimension.in_(dimensions), v.c.value.in_(wanted[at : at + IN_LIST])
            )
            for dimension, value, i, admitted in self.conn.execute(query):
                found[(str(dimension), str(value))] = (int(i), bool(admitted))
        for (dimension, value), (i, admitted) in found.items():
            other = found.get((dimension, OTHER))
            if admitted:
                self.slice[(dimension, value)] = i
            elif other is not None:
                self.slice[(dimension, value)] = other[0]

    def _held(self, dimensions: Sequence[str]) -> dict[str, int]:
        """How many values each of these dimensions has admitted (`other` aside)."""
        v = schema.slice_values
        held = (
            select(v.c.dimension, func.count())
            .where(v.c.dimension.in_(dimensions), v.c.admitted.is_(True), v.c.value != OTHER)
            .group_by(v.c.dimension)
        )
        return {str(dimension): int(n) for dimension, n in self.conn.execute(held)}

    def ids(self, dimension: str, values: Coded) -> Coded:
        """The slice value id each of these values of a dimension counts in."""
        slices = [self.slice[(dimension, v)] for v in values.labels.tolist()]
        ids = Coded.of(np.asarray(slices, np.int64))
        return Coded(ids.codes[values.codes], ids.labels)  # values in `other` share its id


def _named(conn: Connection, combos: Combos) -> Ints:
    """Each combo's name in `combo_counts`: its id (`storage.codes.fingerprints` of its
    values), or, for a minute before the store's first named so (`COMBO_IDS_FROM`, set by the
    schema 6 upgrade), `combo_hash` of its key, as such minutes were stored."""
    named = combos.combos.values()
    state = schema.state
    query = select(state.c.value).where(state.c.key == schema.COMBO_IDS_FROM)
    since = conn.execute(query).scalar()
    if since is None:
        return named
    before = np.flatnonzero(combos.minutes.values() < int(since))
    if len(before):
        named = named.copy()
        named[before] = combo_hashes(combos.keys.take(before).texts())
    return named


def combo_hash(combo: str) -> int:
    """A combo's name in `combo_counts` before schema 6: 64 bits of BLAKE2b of its key,
    signed."""
    return int.from_bytes(blake2b(combo.encode(), digest_size=8).digest(), "big", signed=True)


_EMPTY = blake2b(digest_size=8)  # copied for each combo: cheaper than a new one with its size


def combo_hashes(combos: Iterable[str]) -> Ints:
    """`combo_hash` of each combo, as an int64 array: the digests joined and read as one
    array of big-endian int64s, no int made a combo."""
    copy, digests = _EMPTY.copy, bytearray()
    for combo in combos:
        digest = copy()
        digest.update(combo.encode())
        digests += digest.digest()
    return np.frombuffer(bytes(digests), ">i8").astype(np.int64)


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
    added: list[Combos] = []
    volumes: dict[tuple[str, str], int] = {}
    if batch.slices:
        combos = Combos.of(batch.slices)
        named = _named(conn, combos)
        deltas = combos.counts - _stored(conn, dialect, combos, named)
        moved = np.flatnonzero(deltas)
        minutes, statuses = (
            combos.minutes.ranked().take(moved),
            combos.statuses.ranked().take(moved),
        )
        moved = moved[np.lexsort((named[moved], statuses.codes, minutes.codes))]  # in key order
        changed = [
            combos.minutes.values()[moved].tolist(),
            combos.statuses.values()[moved].tolist(),
            named[moved].tolist(),
            combos.counts[moved].tolist(),
        ]
        dialect.set_columns(conn, schema.combo_counts, changed)
        _add(volumes, dimensions, combos)  # the values' volumes in the batch, before differences
        changes = combos.take(moved, deltas[moved])
        added.append(changes)
        totals = _sums([((changes.minutes, changes.statuses), changes.counts)])
        dialect.add_columns(conn, schema.counts, totals)
    if events:
        rows = [SliceRow(e.minute, e.status, "", e.values, 1) for e in events]
        added.append(Combos.of(rows))
        _add(volumes, dimensions, added[-1])
    slices = _Values(conn, volumes, top)
    marginals = [
        ((part.minutes, part.statuses, slices.ids(dimension, values)), part.counts)
        for part in added
        for dimension, values in zip(dimensions, part.values, strict=True)
    ]
    dialect.add_columns(conn, schema.slice_counts, _sums(marginals))


def _add(volumes: dict[tuple[str, str], int], dimensions: Sequence[str], combos: Combos) -> None:
    """Add the combos' transactions per (dimension, value) to `volumes`."""
    for dimension, values in zip(dimensions, combos.values, strict=True):
        totals = sums(values.codes, len(values.labels), combos.counts)
        for value, n in zip(values.labels.tolist(), totals.tolist(), strict=True):
            volumes[(dimension, value)] = volumes.get((dimension, value), 0) + n


Part = tuple[Sequence[Coded], Ints]  # rows' key columns (minute, status, ...) and counts


def _sums(parts: Sequence[Part]) -> list[list[Any]]:
    """The columns (key..., sum of count) of each key the parts' rows hold with a non-zero
    sum, in key order, as plain Python values: summed by numpy (`storage.codes.summed`)."""
    if not parts:
        return []
    keys = [_joined(columns) for columns in zip(*(key for key, _ in parts), strict=True)]
    columns, totals = summed(keys, np.concatenate([counts for _, counts in parts]))
    return [*(c.values().tolist() for c in columns), totals.tolist()]


def _joined(columns: Sequence[Coded]) -> Coded:
    """One column of the rows of these, one after the other."""
    labels = columns[0].labels
    if all(column.labels is labels for column in columns):  # one part's, once per dimension
        return Coded(np.concatenate([column.codes for column in columns]), labels)
    return Coded.of(np.concatenate([column.values() for column in columns]))


def _stored(conn: Connection, dialect: Dialect, combos: Combos, named: Ints) -> Ints:
    """The count stored for each combo (0 for one not stored yet)."""
    table, columns = schema.combo_counts, ("minute", "status", "combo", "count")
    queries = dialect.select_in(table, columns, "minute", sorted(combos.minutes.labels.tolist()))
    found = [row for rows in dialect.fetch(conn, *queries) for row in rows]
    was = np.zeros(len(combos), np.int64)
    if not found:  # new minutes: the usual case
        return was
    minute, status, combo, count = zip(*found, strict=True)
    pairs = (
        (np.asarray(minute, np.int64), combos.minutes.values()),
        (np.asarray(status, dtype=object), combos.statuses.values()),
        (np.asarray(combo, np.int64), named),
    )
    keys = packed(*(Coded.of(np.concatenate(pair)) for pair in pairs))
    at = pd.Index(keys[: len(found)]).get_indexer(pd.Index(keys[len(found) :]))
    hit = at >= 0
    was[hit] = np.asarray(count, np.int64)[at[hit]]
    return was


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
