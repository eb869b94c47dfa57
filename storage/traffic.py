"""Traffic as counted: frames and sums over the minute buckets, for the detector and commands."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Label, Table, func, select

from storage import schema
from storage.database import Database


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def slot_of(minute: ColumnElement[Any], start: datetime, bucket: timedelta) -> Label[Any]:
    """The bucket number of a minute column: 0 for the `bucket` that begins at `start`."""
    return ((minute - _epoch(start)) // int(bucket.total_seconds())).label("slot")


def bucket_series(
    sums: Iterable[Any], start: datetime, end: datetime, bucket: timedelta, name: str
) -> pd.Series[int]:
    """(slot, sum) rows as a series indexed by each bucket's start (UTC), zero where none."""
    index = pd.date_range(
        pd.Timestamp(start).tz_convert(UTC),
        pd.Timestamp(end).tz_convert(UTC),
        freq=bucket,
        inclusive="left",
    )
    totals = np.zeros(len(index), np.int64)
    for slot, total in sums:
        totals[int(slot)] = int(total or 0)
    return pd.Series(totals, index=index, name=name)


class Traffic(Database):
    def counts_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Buckets with start <= minute < end: columns `minute` (UTC), `status`, `count`."""
        return self._frame(schema.counts, "status", start, end)

    def auth_codes_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Authorization-code buckets: `minute` (UTC), `auth_code`, `count`."""
        return self._frame(schema.auth_codes, "auth_code", start, end)

    def _frame(self, table: Table, key: str, start: datetime, end: datetime) -> pd.DataFrame:
        query = select(table.c.minute, table.c[key], table.c["count"]).where(
            table.c.minute >= _epoch(start), table.c.minute < _epoch(end)
        )
        # Read in chunks into arrays: 28 days of minutes are 280k rows, and a list of row
        # objects that size, made at the detector's warm-up, would be memory the process keeps.
        minutes: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        keys: list[str] = []
        same: dict[str, str] = {}  # one string object per status, not one per row
        with self._read() as conn:
            result = conn.execute(query)
            while chunk := result.fetchmany(20_000):
                minutes.append(np.fromiter((r[0] for r in chunk), np.int64, len(chunk)))
                counts.append(np.fromiter((r[2] for r in chunk), np.int64, len(chunk)))
                keys.extend(same.setdefault(r[1], r[1]) for r in chunk)
        empty = np.empty(0, np.int64)
        return pd.DataFrame(
            {
                "minute": pd.to_datetime(
                    np.concatenate(minutes) if minutes else empty, unit="s", utc=True
                ),
                key: pd.Series(keys, dtype="object"),
                "count": pd.Series(np.concatenate(counts) if counts else empty, dtype="int64"),
            }
        )

    def merchants_frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Events by minute, status and merchant: `minute`, `status`, `merchant_id`, `count`."""
        e = schema.events
        query = (
            select(e.c.minute, e.c.status, e.c.merchant_id, func.count())
            .where(e.c.minute >= _epoch(start), e.c.minute < _epoch(end))
            .where(e.c.merchant_id.is_not(None))
            .group_by(e.c.minute, e.c.status, e.c.merchant_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame(
            {
                "minute": pd.to_datetime([r[0] for r in rows], unit="s", utc=True),
                "status": pd.Series([r[1] for r in rows], dtype="object"),
                "merchant_id": pd.Series([r[2] for r in rows], dtype="object"),
                "count": pd.Series([r[3] for r in rows], dtype="int64"),
            }
        )

    def average_ticket(self, start: datetime, end: datetime) -> float | None:
        """The average amount of approved events in [start, end), None without amounts."""
        e = schema.events
        query = select(func.avg(e.c.amount)).where(
            e.c.status == "approved",
            e.c.amount.is_not(None),
            e.c.minute >= _epoch(start),
            e.c.minute < _epoch(end),
        )
        with self._read() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else float(value)

    def totals_by_status(self, start: datetime, end: datetime) -> dict[str, int]:
        """Transactions per status with start <= minute < end."""
        c = schema.counts
        query = (
            select(c.c.status, func.sum(c.c["count"]))
            .where(c.c.minute >= _epoch(start), c.c.minute < _epoch(end))
            .group_by(c.c.status)
        )
        with self._read() as conn:
            return {str(s): int(n or 0) for s, n in conn.execute(query).all()}

    def hourly_totals(self, start: datetime, end: datetime) -> dict[datetime, dict[str, int]]:
        """Totals per status of each whole hour from `start` up to `end` (UTC hour keys), summed
        in the database in one query; hours with no traffic are present and empty."""
        c = schema.counts
        origin = _epoch(start)
        hour = ((c.c.minute - origin) // 3600).label("hour")
        query = (
            select(hour, c.c.status, func.sum(c.c["count"]))
            .where(c.c.minute >= origin, c.c.minute < _epoch(end))
            .group_by(hour, c.c.status)
        )
        out: dict[datetime, dict[str, int]] = {}
        when = start.astimezone(UTC)
        while when < end:
            out[when] = {}
            when += timedelta(hours=1)
        with self._read() as conn:
            for h, status, total in conn.execute(query):
                key = datetime.fromtimestamp(origin + 3600 * int(h), UTC)
                out.setdefault(key, {})[str(status)] = int(total or 0)
        return out

    def status_buckets(
        self, status: str, start: datetime, end: datetime, bucket: timedelta
    ) -> pd.Series[int]:
        """Transactions of one status per `bucket` from `start` up to `end`, summed in the
        database: indexed by each bucket's start (UTC), zero where nothing came."""
        c = schema.counts
        slot = slot_of(c.c.minute, start, bucket)
        query = (
            select(slot, func.sum(c.c["count"]))
            .where(c.c.status == status, c.c.minute >= _epoch(start), c.c.minute < _epoch(end))
            .group_by(slot)
        )
        with self._read() as conn:
            return bucket_series(conn.execute(query), start, end, bucket, status)

    def traffic_statuses(self, start: datetime, end: datetime) -> tuple[str, ...]:
        """The statuses with a bucket in [start, end) if any transaction came then, sorted;
        none if nothing did. Cheaper than `totals_by_status` on SQLite: the (minute, status) key
        lists the statuses without reading the rows behind it, and one sale proves traffic."""
        c, sale = schema.counts, schema.counts.alias("sale")
        first, last = _epoch(start), _epoch(end)
        busy = select(sale.c.minute).where(
            sale.c.minute >= first, sale.c.minute < last, sale.c["count"] > 0
        )
        query = (
            select(c.c.status)
            .where(c.c.minute >= first, c.c.minute < last, busy.exists())
            .distinct()
            .order_by(c.c.status)
        )
        with self._read() as conn:
            return tuple(str(s) for s in conn.execute(query).scalars())

    def last_minute(self, before: datetime | None = None) -> datetime | None:
        """The newest minute that has any bucket (and starts before `before`, if given)."""
        query = select(func.max(schema.counts.c.minute))
        if before is not None:
            query = query.where(schema.counts.c.minute < _epoch(before))
        with self._read() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else datetime.fromtimestamp(int(value), UTC)
