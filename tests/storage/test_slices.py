"""Slices: dimensioned count and event rows, stored idempotently as totals and marginals."""

from __future__ import annotations

from datetime import UTC, date, datetime

from storage.parsing import parse_csv
from storage.store import Store

DAY = date(2025, 7, 14)
SINCE, UNTIL = datetime(2025, 7, 14, tzinfo=UTC), datetime(2025, 7, 15, tzinfo=UTC)
TWO_ACQUIRERS = (
    "timestamp,status,acquirer,count\n"
    "2025-07-14T03:00:00Z,approved,cielo,100\n"
    "2025-07-14T03:00:00Z,approved,stone,7\n"
)


def _parse(text: str) -> object:
    return parse_csv(text, default_date=DAY, tz=UTC)


def test_an_extra_column_is_a_dimension_not_a_collapsed_bucket(store: Store) -> None:
    store.ingest(parse_csv(TWO_ACQUIRERS, default_date=DAY, tz=UTC))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
