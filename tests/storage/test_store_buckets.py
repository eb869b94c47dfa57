"""Chart reads summed in the database: `status_buckets` and `traffic_statuses` on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from storage.parsing import CountRow, FeedBatch
from storage.store import Store

START = datetime(2025, 7, 13, 22, 0, tzinfo=UTC)
STATUSES = ("approved", "denied", "failed")


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _random_minutes(seed: int, start: datetime, minutes: int) -> FeedBatch:
    """Minutes with some statuses each, many missing, counts from 0 (a bucket sent as zero)."""
    rng = random.Random(seed)
    rows = [
        CountRow(_epoch(start) + 60 * m, status, rng.randint(0, 40))
        for m in range(minutes)
        if rng.random() < 0.7
        for status in rng.sample(STATUSES, rng.randint(1, len(STATUSES)))
    ]
    return FeedBatch(counts=rows)


def _reference(
    store: Store, status: str, start: datetime, end: datetime, bucket: timedelta
) -> pd.Series:
    """The same sums from the minute rows, in pandas."""
    frame = store.counts_frame(start, end)
    frame = frame[frame["status"] == status]
    slot = (frame["minute"] - pd.Timestamp(start)) // pd.Timedelta(bucket)
    index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=bucket, inclusive="left")
    sums = frame["count"].groupby(slot.to_numpy()).sum()
    return pd.Series(sums.reindex(range(len(index)), fill_value=0).to_numpy(), index=index)


@pytest.mark.parametrize("seed", [1, 2])
def test_status_buckets_equal_the_minutes_summed_in_pandas(store: Store, seed: int) -> None:
    store.ingest(_random_minutes(seed, START, 3 * 1440))
    cases = [
        (START, timedelta(days=1), timedelta(minutes=5)),
        # starts off the data's hours and the bucket's grid; the day boundary falls mid-bucket
        (START + timedelta(minutes=7), timedelta(hours=6), timedelta(minutes=15)),
        # not a whole number of buckets: the last one is cut short at `end`
        (START + timedelta(hours=1), timedelta(hours=5, minutes=10), timedelta(minutes=30)),
        (START + timedelta(days=1), timedelta(days=2), timedelta(hours=2)),
        (START - timedelta(hours=3), timedelta(hours=4), timedelta(minutes=1)),  # half before
    ]
    for start, span, bucket in cases:
        for status in STATUSES:
            got = store.status_buckets(status, start, start + span, bucket)
            expected = _reference(store, status, start, start + span, bucket)
            assert isinstance(got.index, pd.DatetimeIndex) and got.index.tz is not None
            assert list(got.index) == list(expected.index)
            assert got.tolist() == expected.tolist(), (start, span, bucket, status)
            assert got.dtype == "int64"


def test_status_buckets_of_an_unknown_status_are_zero(store: Store) -> None:
    store.ingest(_random_minutes(3, START, 120))
    got = store.status_buckets("pix", START, START + timedelta(hours=1), timedelta(minutes=5))
    assert got.tolist() == [0] * 12


def test_traffic_statuses_need_a_transaction_and_list_every_status_seen(store: Store) -> None:
    m = _epoch(START)
    store.ingest(
        FeedBatch(
            counts=[
                CountRow(m, "denied", 0),  # zeros only in the first hour
                CountRow(m + 60, "approved", 0),
                CountRow(m + 3600, "refunded", 0),  # second hour: one sale among zeros
                CountRow(m + 3660, "approved", 3),
                CountRow(m + 7200, "failed", 1),  # third hour's first minute
            ]
        )
    )
    hour = timedelta(hours=1)
    assert store.traffic_statuses(START, START + hour) == ()
    assert store.traffic_statuses(START + hour, START + 2 * hour) == ("approved", "refunded")
    assert store.traffic_statuses(START - hour, START) == ()
    assert store.traffic_statuses(START, START + 2 * hour + timedelta(minutes=1)) == (
        "approved",
        "denied",
        "failed",
        "refunded",
    )
    # `end` is not included
    assert store.traffic_statuses(START, START + 2 * hour) == ("approved", "denied", "refunded")
