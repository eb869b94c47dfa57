"""Slices: dimensioned count and event rows, stored idempotently as totals and marginals."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from storage import parsing
from storage.errors import FeedError
from storage.migrations import HEAD
from storage.parsing import Combos, FeedBatch, SliceRow, parse_csv, parse_json
from storage.records import AnomalyRecord, SliceDimension
from storage.schema import COMBO_IDS_FROM
from storage.slices import combo_hash, combo_hashes
from storage.store import Store, open_store
from tests.storage.downgrade import stamp_older

DAY = date(2025, 7, 14)
T0 = datetime(2025, 7, 14, 3, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2025, 7, 14, tzinfo=UTC), datetime(2025, 7, 15, tzinfo=UTC)
HEAD_ROW = "timestamp,status,acquirer,count\n"
CIELO = "2025-07-14T03:00:00Z,approved,cielo,100\n"
STONE = "2025-07-14T03:00:00Z,approved,stone,7\n"


def _csv(text: str, **how: object) -> FeedBatch:
    return parse_csv(text, default_date=DAY, tz=UTC, **how)  # type: ignore[arg-type]


def _marginals(store: Store, dimension: str | None = None) -> dict[tuple[str, str, str], int]:
    frame = store.slice_frame(SINCE, UNTIL, dimension)
    rows = zip(frame["status"], frame["dimension"], frame["value"], frame["count"], strict=True)
    return {(str(s), str(d), str(v)): int(n) for s, d, v, n in rows if n}


def test_an_extra_column_is_a_dimension_not_a_collapsed_bucket(store: Store) -> None:
    batch = _csv(HEAD_ROW + CIELO + STONE)
    assert batch.dimensions == ("acquirer",)
    store.ingest(batch)
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
    assert _marginals(store) == {
        ("approved", "acquirer", "cielo"): 100,
        ("approved", "acquirer", "stone"): 7,
    }


def test_a_resent_file_changes_no_count_and_a_changed_row_its_difference(store: Store) -> None:
    store.ingest(_csv(HEAD_ROW + CIELO + STONE))
    store.ingest(_csv(HEAD_ROW + CIELO + STONE))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
    store.ingest(_csv(HEAD_ROW + STONE.replace(",7", ",9")))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 109}
    assert _marginals(store)[("approved", "acquirer", "stone")] == 9


def test_one_minute_split_over_two_requests_counts_as_one(store: Store) -> None:
    store.ingest(_csv(HEAD_ROW + CIELO))
    store.ingest(_csv(HEAD_ROW + STONE))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
    assert store.counts_frame(SINCE, UNTIL)["count"].tolist() == [107]


def test_the_batch_frames_give_totals_and_marginals() -> None:
    batch = _csv(
        "timestamp,status,acquirer,brand,count\n"
        "2025-07-14T03:00:00Z,approved,cielo,visa,100\n"
        "2025-07-14T03:00:00Z,approved,stone,visa,7\n"
        "2025-07-14T03:00:00Z,approved,stone,visa,8\n"  # the same combo again: the last wins
    )
    assert batch.count_tuples() == [(int(T0.timestamp()), "approved", 108)]
    frame = batch.slices_frame()
    assert list(frame.columns) == ["minute", "status", "dimension", "value", "count"]
    assert frame["minute"].dtype == batch.counts_frame()["minute"].dtype
    rows = zip(frame["dimension"], frame["value"], frame["count"], strict=True)
    got = {(str(d), str(v)): int(n) for d, v, n in rows}
    assert got == {("acquirer", "cielo"): 100, ("acquirer", "stone"): 8, ("brand", "visa"): 108}


def test_dimensions_restrict_what_is_kept_and_the_rest_is_summed_away(store: Store) -> None:
    text = (
        "timestamp,status,acquirer,brand,count\n"
        "2025-07-14T03:00:00Z,approved,cielo,visa,100\n"
        "2025-07-14T03:00:00Z,approved,stone,visa,7\n"
    )
    batch = _csv(text, dimensions=("brand",))
    assert batch.dimensions == ("brand",)
    store.ingest(batch)
    store.ingest(_csv(text, dimensions=("brand",)))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
    assert _marginals(store) == {("approved", "brand", "visa"): 107}
    none_kept = _csv(text, dimensions=())
    assert none_kept.count_tuples()[0][2] == 107
    assert none_kept.slices_frame().empty


def test_a_dropped_column_holding_half_a_character_still_tells_combos_apart(
    store: Store,
) -> None:
    """JSON can spell a lone surrogate, which has no UTF-8; in a column summed away it names
    its combo all the same, and a re-send changes nothing."""
    row = '{"timestamp": "2025-07-14T03:00:00Z", "status": "approved", "brand": "visa", '
    text = f'[{row}"note": "\\ud800", "count": 100}}, {row}"note": "x", "count": 7}}]'
    batch = parse_json(text, default_date=DAY, tz=UTC, dimensions=("brand",))
    assert len(batch.slices) == 2
    store.ingest(batch)
    store.ingest(parse_json(text, default_date=DAY, tz=UTC, dimensions=("brand",)))
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 107}
    assert _marginals(store) == {("approved", "brand", "visa"): 107}


def test_values_past_the_top_count_as_other(store: Store) -> None:
    rows = "".join(
        f"2025-07-14T03:00:00Z,approved,a{i},{10 + i}\n" for i in range(5)
    )  # a4 carries most, a0 least
    store.ingest(_csv(HEAD_ROW + rows), slice_top=3)
    assert _marginals(store) == {
        ("approved", "acquirer", "a4"): 14,
        ("approved", "acquirer", "a3"): 13,
        ("approved", "acquirer", "a2"): 12,
        ("approved", "acquirer", "other"): 21,
    }
    store.ingest(_csv(HEAD_ROW + rows), slice_top=3)  # idempotent, other included
    store.ingest(_csv(HEAD_ROW + "2025-07-14T03:01:00Z,approved,a9,1000\n"), slice_top=3)
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 60 + 1000}
    [acquirer] = store.dimensions(SINCE, UNTIL)
    assert acquirer == SliceDimension(
        "acquirer", (("other", 1021), ("a4", 14), ("a3", 13), ("a2", 12))
    )
    series = store.slice_series("acquirer", "other", SINCE, UNTIL)
    assert list(series.columns) == ["minute", "status", "count"]
    assert series["count"].tolist() == [21, 1000]


def test_event_rows_with_dimensions_count_once_by_id(store: Store) -> None:
    events = [
        {"id": f"tx-{i}", "timestamp": "2025-07-14T03:00:00Z", "status": "approved"}
        | {"acquirer": "cielo" if i < 3 else "stone", "merchant_id": "m1"}
        for i in range(4)
    ]
    batch = parse_json(json.dumps(events), default_date=DAY, tz=UTC)
    assert batch.dimensions == ("acquirer", "merchant_id")
    assert store.ingest(batch).new_events == 4
    assert store.ingest(batch).new_events == 0
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 4}
    assert _marginals(store) == {
        ("approved", "acquirer", "cielo"): 3,
        ("approved", "acquirer", "stone"): 1,
        ("approved", "merchant_id", "m1"): 4,
    }


def test_an_empty_dimension_value_is_unknown() -> None:
    batch = _csv(HEAD_ROW + "2025-07-14T03:00:00Z,approved,,5\n")
    assert batch.slices_frame()["value"].tolist() == ["unknown"]


def test_retention_drops_old_slices(store: Store) -> None:
    store.ingest(_csv(HEAD_ROW + CIELO + "2025-07-14T05:00:00Z,approved,cielo,3\n"))
    store.delete_counts_before(T0 + timedelta(hours=1))
    assert _marginals(store) == {("approved", "acquirer", "cielo"): 3}
    assert store.totals_by_status(SINCE, UNTIL) == {"approved": 3}


def test_a_finding_keeps_its_slice(store: Store) -> None:
    base = dict(
        kind="drop",
        metric="approved_rate",
        statuses=("approved",),
        start=T0,
        end=None,
        detected_at=T0,
        updated_at=T0,
        severity="critical",
        score=0.9,
        expected=41.0,
        observed=0.0,
        explanation_pt="pt",
        explanation_en="en",
        resolved=False,
    )
    store.save_anomaly(AnomalyRecord(key="s", slice={"acquirer": "stone"}, **base))  # type: ignore[arg-type]
    store.save_anomaly(AnomalyRecord(key="t", **base))  # type: ignore[arg-type]
    assert store.anomaly("s").slice == {"acquirer": "stone"}  # type: ignore[union-attr]
    assert store.anomaly("t").slice is None  # type: ignore[union-attr]


def test_a_version_3_database_is_upgraded_to_slices(database_url: str) -> None:
    fresh = open_store(database_url)
    fresh.ingest(_csv("timestamp,status,count\n2025-07-14T03:00:00Z,approved,5\n"))
    fresh.close()
    stamp_older(  # undo versions 4 and 5: what a version 3 database is
        database_url,
        3,
        T0,
        *(f"DROP TABLE {table}" for table in ("slice_counts", "combo_counts", "slice_values")),
        "ALTER TABLE anomalies DROP COLUMN slice",
    )
    upgraded = open_store(database_url)
    try:
        assert upgraded.schema_version() == HEAD == 6
        upgraded.ingest(_csv(HEAD_ROW + STONE))
        assert upgraded.totals_by_status(SINCE, UNTIL) == {"approved": 12}
        assert isinstance(upgraded.slice_frame(SINCE, UNTIL), pd.DataFrame)
    finally:
        upgraded.close()


def test_code_rows_sum_their_extra_columns_away() -> None:
    batch = _csv(
        "timestamp,auth_code,acquirer,count\n"
        "2025-07-14T03:00:00Z,51,cielo,4\n"
        "2025-07-14T03:00:00Z,51,stone,2\n"
    )
    assert batch.auth_code_tuples() == [(int(T0.timestamp()), "51", 6)]
    assert not batch.slices


def test_a_bad_dimension_name_in_a_header_is_row_1() -> None:
    with pytest.raises(FeedError) as error:
        _csv("timestamp,status,9lives,count\n2025-07-14T03:00:00Z,approved,x,1\n")
    assert error.value.problems == (
        (1, "column '9lives' is not a dimension name ([a-z][a-z0-9_]{0,31})"),
    )
    assert _csv(
        "timestamp,status,9lives,count\n2025-07-14T03:00:00Z,approved,x,1\n", dimensions=()
    ).count_tuples() == [(int(T0.timestamp()), "approved", 1)]


def test_one_slice_summed_in_buckets_by_the_database(store: Store) -> None:
    rows = "".join(
        f"2025-07-14T03:{m:02d}:00Z,{status},{acquirer},{m + 1}\n"
        for m in range(12)
        for status in ("approved", "denied")
        for acquirer in ("cielo", "stone")
    )
    store.ingest(_csv(HEAD_ROW + rows))
    assert store.dimension_names() == ("acquirer",)
    start = T0 - timedelta(minutes=5)
    got = store.slice_buckets(
        "acquirer", "stone", "approved", start, start + timedelta(minutes=20), timedelta(minutes=5)
    )
    assert got.tolist() == [0, sum(range(1, 6)), sum(range(6, 11)), 11 + 12]
    assert got.index[0] == pd.Timestamp(start)


def test_a_combo_keeps_its_stored_name() -> None:
    """Stored combos are named by this hash: it must never change, however it is computed."""
    combos = ["acquirer\x1fbrand\x1ecielo\x1fvisa", "brand\x1enão"]
    assert [combo_hash(c) for c in combos] == [-4959573538441958025, 4331356895391442072]
    assert combo_hashes(combos).tolist() == [combo_hash(c) for c in combos]
    assert combo_hashes([]).tolist() == []


def test_a_combo_keeps_its_id_however_its_rows_come() -> None:
    """Combos are stored by this id since schema 6: it must never change, and rows made by
    hand name a combo as parsed rows do."""
    batch = _csv(
        "timestamp,status,acquirer,brand,count\n"
        "2025-07-14T03:00:00Z,approved,cielo,visa,1\n"
        "2025-07-14T03:00:00Z,approved,stone, não,1\n"
    )
    ids = [-7877993062010929774, -5610905273602355933]
    assert Combos.of(batch.slices).combos.values().tolist() == ids
    assert Combos.of(list(batch.slices)).combos.values().tolist() == ids
    assert [s.combo for s in batch.slices] == [
        "acquirer\x1fbrand\x1ecielo\x1fvisa",
        "acquirer\x1fbrand\x1estone\x1fnão",
    ]


def test_minutes_stored_before_schema_6_keep_their_names(database_url: str) -> None:
    """A version 5 store named combos by a hash of their key text: after the upgrade, rows of
    its minutes still find their combos (a re-send changes nothing, a new count its
    difference), and later minutes are named by id."""
    first = open_store(database_url)
    first.ingest(_csv(HEAD_ROW + CIELO + STONE))
    assert first.get_state(COMBO_IDS_FROM) is None  # made at schema 6: every minute by id
    first.close()
    engine = create_engine(database_url)
    with engine.begin() as conn:  # the names version 5 gave them
        for key in ("acquirer\x1ecielo", "acquirer\x1estone"):
            new = int(Combos.of([SliceRow(0, "approved", key, (), 1)]).combos.labels[0])
            conn.execute(
                text("UPDATE combo_counts SET combo = :old WHERE combo = :new"),
                {"old": combo_hash(key), "new": new},
            )
    engine.dispose()
    stamp_older(database_url, 5, T0)
    upgraded = open_store(database_url)
    try:
        assert upgraded.schema_version() == 6
        assert upgraded.get_state(COMBO_IDS_FROM) == str(int(T0.timestamp()) + 60)
        upgraded.ingest(_csv(HEAD_ROW + CIELO + STONE))
        assert upgraded.totals_by_status(SINCE, UNTIL) == {"approved": 107}
        upgraded.ingest(_csv(HEAD_ROW + CIELO.replace(",100", ",120")))
        assert upgraded.totals_by_status(SINCE, UNTIL) == {"approved": 127}
        later = HEAD_ROW + CIELO.replace("03:00", "03:01")
        upgraded.ingest(_csv(later))
        upgraded.ingest(_csv(later))
        assert upgraded.totals_by_status(SINCE, UNTIL) == {"approved": 227}
        frame = upgraded.slice_frame(SINCE, UNTIL)
        minutes = frame["minute"].dt.strftime("%H:%M")
        assert sorted(zip(minutes, frame["value"], frame["count"], strict=True)) == [
            ("03:00", "cielo", 120),
            ("03:00", "stone", 7),
            ("03:01", "cielo", 100),
        ]
    finally:
        upgraded.close()


def test_a_long_batch_stores_what_its_rows_say_row_by_row(store: Store) -> None:
    """Thousands of rows (CSV read by pandas' tokenizer): combos sent twice, values past the
    top, blank and numeric values, a changed count; totals and marginals as a naive sum."""
    lines, last = [], {}
    for i in range(4000):
        minute = T0 + timedelta(minutes=i % 37)
        status = ("approved", "denied", "failed")[i % 3]
        acquirer, brand = f"a{i * 7 % 13}", ("visa", "master", "", "007", " elo ")[i % 5]
        count = i % 11
        lines.append(f"{minute:%Y-%m-%dT%H:%M:%SZ},{status},{acquirer},{brand},{count}\n")
        last[(minute, status, acquirer, brand.strip() or "unknown")] = count
    text = "timestamp,status,acquirer,brand,count\n" + "".join(lines)
    assert len(text) > parsing.TOKENIZED
    assert parsing._tokenized(text, "row ") is not None
    batch = _csv(text)
    assert len(batch) == len(last)
    for _ in range(2):  # and again: nothing changes
        store.ingest(batch, slice_top=8)
        totals: dict[str, int] = {}
        for (_, status, _, _), n in last.items():
            totals[status] = totals.get(status, 0) + n
        assert store.totals_by_status(SINCE, UNTIL) == totals
        frame = store.slice_frame(SINCE, UNTIL)
        columns = (frame[c].tolist() for c in ("status", "dimension", "value", "count"))
        marginals: dict[tuple[str, str, str], int] = {}
        for status, dimension, value, n in zip(*columns, strict=True):
            key = (str(status), str(dimension), str(value))
            marginals[key] = marginals.get(key, 0) + int(n)
        marginals = {key: n for key, n in marginals.items() if n}
        kept = {value for name, value in _values(store) if name == "acquirer"} - {"other"}
        assert len(kept) == 8
        naive: dict[tuple[str, str, str], int] = {}
        for (_, status, acquirer, brand), n in last.items():
            for key in (
                (status, "acquirer", acquirer if acquirer in kept else "other"),
                (status, "brand", brand),
            ):
                naive[key] = naive.get(key, 0) + n
        assert marginals == {k: n for k, n in naive.items() if n}
    first = lines[0].rsplit(",", 1)[0]
    store.ingest(_csv(f"timestamp,status,acquirer,brand,count\n{first},1000\n"), slice_top=8)
    assert sum(store.totals_by_status(SINCE, UNTIL).values()) == sum(last.values()) + 1000


def _values(store: Store) -> set[tuple[str, str]]:
    return {(d.name, v) for d in store.dimensions(SINCE, UNTIL) for v, _ in d.values}
