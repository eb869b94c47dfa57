"""Feed parsing: what `parse_csv` and `parse_json` give is what the documented rules give, read
row by row (the model below), to the rows, their order and every error's words."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from typing import Any, cast
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import parsing
from storage.errors import StorageError
from storage.parsing import (
    UNKNOWN,
    AuthCodeRow,
    CountRow,
    EventRow,
    FeedBatch,
    FeedError,
    SliceRow,
    _amount,
    _auth_code,
    _count,
    _json_items,
    _loads,
    _status,
    _text,
    _TimeParser,
    parse_csv,
    parse_json,
)

Parse = Callable[..., FeedBatch]
SP = ZoneInfo("America/Sao_Paulo")
DAY = date(2025, 7, 14)
T0 = 1_752_462_000  # 2025-07-14 03:00 UTC, 00:00 in São Paulo
ZONES = (SP, ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin"), UTC)
# Days with a clock change in one of ZONES (São Paulo kept summer time until 2019), and one without.
DAYS = (
    date(2018, 11, 4),
    date(2019, 2, 16),
    date(2025, 3, 9),
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2025, 11, 2),
    date(2025, 7, 14),
)


def described(batch: FeedBatch) -> object:
    """A batch down to each row's type and values, in order."""
    return (
        [(type(r), tuple(r)) for r in batch.counts],
        [(type(r), tuple(r)) for r in batch.auth_codes],
        batch.events,
        [(type(r), tuple(r)) for r in batch.slices],
        batch.dimensions,
    )


def outcome(parse: Parse, text: str, day: date, zone: tzinfo) -> object:
    """What a parse gives, or the error it raises, word for word."""
    try:
        return described(parse(text, default_date=day, tz=zone))
    except FeedError as error:
        return ("FeedError", str(error), error.problems)


# -- the model: the module docstring's rules, one row at a time ---------------------------------
# The value checks (`_count`, `_status`, ...) are the module's own, pinned by the examples below;
# what the model adds is the reading of rows: csv.reader, key lookups, the order of the checks,
# the first row of an event id, and how errors are numbered and worded.

_KNOWN_HEADERS = frozenset(
    {"time", "timestamp", "status", "count", "f0_", "auth_code", "id", "amount", "merchant_id"}
)
_CORE = _KNOWN_HEADERS - {"merchant_id"}


def _extra_value(raw: object, name: str) -> str:
    return _text(raw, name, required=False) or UNKNOWN


@dataclass
class _Model:
    times: _TimeParser
    extras: tuple[str, ...] = ()  # every extra column is kept (no NIGHTSHIFT_DIMENSIONS)
    combos: dict[tuple[int, str, str], tuple[tuple[str, ...], int]] = field(default_factory=dict)
    codes: dict[tuple[int, str, str], int] = field(default_factory=dict)
    events: dict[str, EventRow] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def _values(self, row: Mapping[str, object]) -> tuple[str, ...]:
        return tuple(_extra_value(row.get(name), name) for name in self.extras)

    def _combo(self, values: tuple[str, ...]) -> str:
        return "\x1f".join(self.extras) + "\x1e" + "\x1f".join(values)

    def add(self, number: int, row: Mapping[str, object]) -> None:
        try:
            self._add(row)
        except ValueError as error:
            self.problems.append((number, str(error)))

    def _add(self, row: Mapping[str, object]) -> None:
        stamp = row.get("timestamp", row.get("time"))
        if stamp is None:
            raise ValueError("timestamp is missing (or time)")
        if "id" in row:
            event_id = _text(row.get("id"), "id", required=True)
            assert event_id is not None
            if event_id not in self.events:
                self.events[event_id] = EventRow(
                    id=event_id,
                    minute=self.times.minute(stamp),
                    status=_status(row.get("status")),
                    amount=_amount(row.get("amount")),
                    merchant_id=_text(row.get("merchant_id"), "merchant_id", required=False),
                    values=self._values(row),
                )
            return
        raw_count = row["count"] if "count" in row else row.get("f0_")
        if "auth_code" in row:
            code = _auth_code(row.get("auth_code"))
            count = _count(raw_count)
            minute = self.times.minute(stamp)
            self.codes[(minute, code, self._combo(self._values(row)))] = count
            return
        count = _count(raw_count)
        minute, status = self.times.minute(stamp), _status(row.get("status"))
        values = self._values(row)
        self.combos[(minute, status, self._combo(values))] = (values, count)

    def batch(self, where: str) -> FeedBatch:
        if self.problems:
            first_row, first_reason = self.problems[0]
            more = (
                f" (and {len(self.problems) - 1} more bad rows)" if len(self.problems) > 1 else ""
            )
            raise FeedError(f"{where}{first_row}: {first_reason}{more}", self.problems)
        counts: dict[tuple[int, str], int] = {}
        for (m, s, _), (_, c) in self.combos.items():
            counts[(m, s)] = counts.get((m, s), 0) + c
        codes: dict[tuple[int, str], int] = {}
        for (m, a, _), c in self.codes.items():
            codes[(m, a)] = codes.get((m, a), 0) + c
        slices = [SliceRow(m, s, k, v, c) for (m, s, k), (v, c) in self.combos.items()]
        return FeedBatch(
            counts=tuple(CountRow(m, s, c) for (m, s), c in counts.items()),
            auth_codes=tuple(AuthCodeRow(m, a, c) for (m, a), c in codes.items()),
            events=tuple(self.events.values()),
            dimensions=self.extras if self.extras and (slices or self.events) else (),
            slices=slices if self.extras else (),
        )


def _model_rows(
    rows: Iterable[tuple[int, dict[str, object]]], times: _TimeParser, where: str
) -> _Model:
    rows = list(rows)
    header = (
        cast("list[str] | None", rows.pop(0)[1]["__header__"])
        if rows and "__header__" in rows[0][1]
        else None
    )
    names = header if header is not None else [k for _, row in rows for k in row]
    extras = tuple(sorted({n for n in names if n not in _CORE and n != "__bad__"}))
    for name in extras:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            number = 1 if header is not None else next(n for n, row in rows if name in row)
            reason = f"column {name!r} is not a dimension name ([a-z][a-z0-9_]{{0,31}})"
            raise FeedError(f"{where}{number}: {reason}", [(number, reason)])
    if len(extras) > 8:
        reason = f"{len(extras)} dimension columns, at most 8 (NIGHTSHIFT_DIMENSIONS)"
        raise FeedError(f"{where}1: {reason}", [(1, reason)])
    model = _Model(times, extras)
    for number, row in rows:
        bad = row.get("__bad__")
        if bad is not None:
            model.problems.append((number, str(bad)))
        else:
            model.add(number, row)
    return model


def _model_csv_rows(text: str, where: str) -> Iterator[tuple[int, dict[str, object]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise FeedError(
                f"{where}1: the file is empty (a CSV header is expected)", [(1, "empty")]
            )
        names = [h.strip().lower().lstrip("\ufeff") for h in header]
        if "time" not in names and "timestamp" not in names:
            raise FeedError(
                f"{where}1: header {','.join(names)!r} has no time or timestamp column",
                [(1, "no time column")],
            )
        if not ({"count", "f0_"} & set(names)) and "id" not in names:
            raise FeedError(
                f"{where}1: header {','.join(names)!r} has no count (or f0_) column, "
                "nor id for events",
                [(1, "no count column")],
            )
        yield 1, {"__header__": names}
        for line, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(names):
                yield line, {"__bad__": f"{len(values)} fields, the header has {len(names)}"}
                continue
            yield line, dict(zip(names, values, strict=True))
    except csv.Error as error:
        line = max(reader.line_num, 1)
        reason = str(error)
        raise FeedError(
            f"{where}{line}: not readable as CSV ({reason})", [(line, reason)]
        ) from None


def model_csv(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """`parse_csv` as the rules read, row by row."""
    rows = _model_csv_rows(text, where)
    return _model_rows(rows, _TimeParser(default_date, tz), where).batch(where)


def model_json(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """`parse_json` as the rules read, row by row."""
    rows = (
        (n, item if isinstance(item, dict) else {"__bad__": "a row must be a JSON object"})
        for n, item in enumerate(_json_items(text, where), start=1)
    )
    return _model_rows(rows, _TimeParser(default_date, tz), where).batch(where)


# -- values, valid ones in every form the feed takes -------------------------------------------

_pad = st.sampled_from(["", "", " ", "  ", "\t"])


@st.composite
def valid_times(draw: st.DrawFn) -> str:
    day = draw(st.sampled_from(DAYS)).isoformat()
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    text = draw(
        st.sampled_from(
            [
                f"{day}T{hour:02d}:{minute:02d}:{second:02d}Z",
                f"{day}T{hour:02d}:{minute:02d}:{second:02d}-03:00",
                f"{day}T{hour:02d}:{minute:02d}+05:30",
                f"{day} {hour:02d}:{minute:02d}:{second:02d}",  # on the shift clock
                f"{day}T{hour:02d}:{minute:02d}:{second:02d}.250",
                f"{hour:02d}h {minute:02d}",  # on default_date
                f"{hour}h{minute}",
                f"{hour:02d}h   {minute}",
            ]
        )
    )
    return draw(_pad) + text + draw(_pad)


_bad_times = st.sampled_from(
    [
        "",
        " ",
        "not a time",
        "24h 00",
        "12h 60",
        "12:00",
        "2025-13-01 00:00:00",
        "2025-02-30T00:00:00Z",
        "2025-07-14T03:00:00+24:00",
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC: datetime overflows
    ]
)


@st.composite
def valid_statuses(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["approved", "denied", "failed", "backend_reversed", "a-1", "x"]))
    name = draw(st.sampled_from([name, name.upper(), name.title()]))
    return draw(_pad) + name + draw(_pad)


_bad_statuses = st.sampled_from(["", "  ", "bad status", "a" * 33, "ação", "İ", "a.b"])
_valid_codes = st.from_regex(r"[A-Za-z0-9]{1,4}", fullmatch=True)
_bad_codes = st.sampled_from(["", " ", "ABCDE", "a b", "5-1"])
_valid_count_texts = st.builds(
    lambda pad, n, pad2: f"{pad}{n}{pad2}", _pad, st.integers(0, 10**12), _pad
) | st.sampled_from(["+7", "1_000", "0"])
# Not all bad: "5.0" and "1e3" are whole numbers the rules take (int() alone does not).
_odd_count_texts = st.sampled_from(["-1", str(10**12 + 1), "5.0", "1e3", "2.5", "abc", "", "nan"])
_extras = st.text(alphabet="ab xyz", max_size=4)
# Column name: (valid values, odd values). Extra columns the rules ignore, or read in place
# of another: timestamp over time, count over f0_, the last of a repeated name.
_CSV_EXTRAS = {
    "extra": (_extras, _extras),
    "time": (valid_times(), _bad_times),
    "f0_": (_valid_count_texts, _odd_count_texts),
    "status": (valid_statuses(), _bad_statuses),
}


# -- CSV batches -------------------------------------------------------------------------------


@st.composite
def csv_batches(draw: st.DrawFn, clean: bool) -> str:
    """A header and clean rows. Unless `clean`, maybe a few odd values, maybe odd lines: blank,
    quoted, ragged, a carriage return alone, event rows."""
    odd_values = not clean and draw(st.booleans())
    odd_lines = not clean and draw(st.booleans())
    kind = draw(st.sampled_from(["counts", "auth_codes", "events"][: 3 if odd_lines else 2]))
    # A few values each, so (minute, key) buckets repeat.
    times = st.sampled_from(draw(st.lists(valid_times(), min_size=1, max_size=4)))
    if kind == "auth_codes":
        key_names = ["auth_code", "AUTH_CODE"]
        keys = (st.sampled_from(draw(st.lists(_valid_codes, min_size=1, max_size=3))), _bad_codes)
    else:
        key_names = ["status", " Status "]
        keys = (
            st.sampled_from(draw(st.lists(valid_statuses(), min_size=1, max_size=3))),
            _bad_statuses,
        )
    columns = [
        (draw(st.sampled_from(["timestamp", "time", "Timestamp", " TIME"])), (times, _bad_times)),
        (draw(st.sampled_from(key_names)), keys),
        (
            draw(st.sampled_from(["count", "f0_", "COUNT", " F0_"])),
            (_valid_count_texts, _odd_count_texts),
        ),
    ]
    if kind == "events":
        columns.append(("id", (st.sampled_from(["tx-1", "tx-2", "tx-3"]), st.just(""))))
    for name in draw(st.lists(st.sampled_from(sorted(_CSV_EXTRAS)), max_size=2)):
        columns.append((name, _CSV_EXTRAS[name]))
    columns = draw(st.permutations(columns))
    rows = [[draw(valid) for _, (valid, _) in columns] for _ in range(draw(st.integers(1, 25)))]
    if odd_values:
        for _ in range(draw(st.integers(1, 3))):
            row, column = draw(st.sampled_from(rows)), draw(st.integers(0, len(columns) - 1))
            row[column] = draw(columns[column][1][1])
    header = ",".join(name for name, _ in columns)
    if not clean or not header[0].isspace():  # "\ufeff time" is no time column
        header = draw(st.sampled_from(["", "\ufeff"])) + header
    lines = [header, *(",".join(row) for row in rows)]
    if odd_lines:
        for _ in range(draw(st.integers(1, 3))):
            odd = ["", "  ", ",,", '"a",b,"c,d"', "x", "a,b,c,d,e", "a\rb"]
            lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(odd)))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"][: 3 if odd_lines else 2]))
    return end.join(lines) + draw(st.sampled_from([end, ""]))


# -- JSON batches ------------------------------------------------------------------------------

# Values of every type, and ones that compare equal across types (1, 1.0, True).
_odd_json_values = (
    st.sampled_from([None, True, False, 1, 0, 1.0, 2.5, float("nan"), "", " ", [1], {"a": 1}])
    | st.text(max_size=3)
    | _bad_times
    | _bad_statuses
    | _bad_codes
    | _odd_count_texts
)


@st.composite
def json_batches(draw: st.DrawFn, clean: bool) -> str:
    """An array of clean objects with the same keys. Unless `clean`, counts as numbers and as
    text in one batch, maybe a few odd values, maybe an odd shape: a row with other keys, an
    item that is no object, a lone object."""
    odd_values = not clean and draw(st.booleans())
    odd_shape = not clean and draw(st.booleans())
    names = [draw(st.sampled_from(["timestamp", "time"]))]
    strategies: dict[str, st.SearchStrategy[object]] = {
        # An extra column is a dimension: text or a whole number (empty or null: unknown).
        "extra": st.sampled_from(["cielo", "stone", "", " ", None, 7])
        if clean
        else _odd_json_values,
        "time": valid_times(),
        "f0_": _valid_count_texts,
        "status": valid_statuses(),
    }
    # A few values each, so (minute, key) buckets repeat.
    strategies[names[0]] = st.sampled_from(draw(st.lists(valid_times(), min_size=1, max_size=4)))
    if draw(st.booleans()):
        names.append("auth_code")
        codes = draw(st.lists(_valid_codes, min_size=1, max_size=3))
        strategies["auth_code"] = st.sampled_from([*codes, 51, 1, 0])
    else:
        names.append("status")
        strategies["status"] = st.sampled_from(
            draw(st.lists(valid_statuses(), min_size=1, max_size=3))
        )
    names.append(draw(st.sampled_from(["count", "f0_"])))
    counts = st.integers(0, 10**12) | _valid_count_texts
    if clean:  # numbers or text, not both
        counts = draw(st.sampled_from([st.integers(0, 10**12), _valid_count_texts]))
    strategies[names[-1]] = counts
    names += draw(st.lists(st.sampled_from(["extra", "time", "f0_", "status"]), max_size=2))
    rows = [
        {name: draw(strategies[name]) for name in names} for _ in range(draw(st.integers(1, 25)))
    ]
    if odd_values:
        for _ in range(draw(st.integers(1, 3))):
            draw(st.sampled_from(rows))[draw(st.sampled_from(names))] = draw(_odd_json_values)
    items: list[object] = list(rows)
    if odd_shape:
        for _ in range(draw(st.integers(1, 2))):
            row = draw(st.sampled_from(rows))
            if draw(st.booleans()):  # one key for another: the same number of keys
                del row[draw(st.sampled_from(sorted(row.keys() & names[3:]) or sorted(row)))]
            row[draw(st.sampled_from(["id", "auth_code", "status", "Timestamp", "x"]))] = "1"
        if draw(st.booleans()):
            items.insert(draw(st.integers(0, len(items))), draw(_odd_json_values))
        if draw(st.booleans()):
            return json.dumps(items[0])
    return json.dumps(items, indent=draw(st.sampled_from([None, 1])))


# -- the parser against the model, for both formats ------------------------------------------


@dataclass(frozen=True)
class Format:
    batches: Callable[[bool], st.SearchStrategy[str]]
    parse: Parse
    model: Parse


def parse_csv_tokenized(text: str, **how: Any) -> FeedBatch:
    """`parse_csv` with pandas' tokenizer taking every text, however short."""
    with mock.patch.object(parsing, "TOKENIZED", 0):
        return parse_csv(text, **how)


CSV = Format(csv_batches, parse_csv, model_csv)
CSV_TOKENIZED = Format(csv_batches, parse_csv_tokenized, model_csv)
JSON = Format(json_batches, parse_json, model_json)
both_formats = pytest.mark.parametrize(
    "fmt", [CSV, CSV_TOKENIZED, JSON], ids=["csv", "csv-tokenized", "json"]
)


@both_formats
@settings(max_examples=600, deadline=None)
@given(data=st.data(), clean=st.booleans(), day=st.sampled_from(DAYS), zone=st.sampled_from(ZONES))
def test_parse_gives_what_the_rules_give_row_by_row(
    fmt: Format, data: st.DataObject, clean: bool, day: date, zone: tzinfo
) -> None:
    text = data.draw(fmt.batches(clean), label="text")
    expected = outcome(fmt.model, text, day, zone)
    assert outcome(fmt.parse, text, day, zone) == expected
    if clean:  # and the strategies' clean batches are good by the rules
        assert not isinstance(expected, tuple) or expected[0] != "FeedError"


_ODD = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["00h 00", "2025-07-14T03:00:00Z", "approved", "51", " 5 ", "", "tx-1"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)
_FIELDS = st.sampled_from([*sorted(_KNOWN_HEADERS), "x"])


@settings(max_examples=500, deadline=None)
@given(
    items=st.lists(st.dictionaries(_FIELDS, _ODD, max_size=6) | _ODD, max_size=8),
    zone=st.sampled_from(ZONES),
)
def test_any_json_rows_are_read_as_the_rules_read_them(items: list[object], zone: tzinfo) -> None:
    """Rows of any kinds mixed, any keys, any values, items that are no objects."""
    text = json.dumps(items)
    assert outcome(parse_json, text, DAY, zone) == outcome(model_json, text, DAY, zone)


_CELLS = st.sampled_from(
    [
        *("", " ", "00h 00", "2025-07-14T03:00:00Z", "approved", "Denied ", "51", "5", "-1"),
        *("1.0", "tx-1", '"q"', "a,b", "x\r"),  # a quoted field, a comma inside, a lone CR
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    header=st.lists(_FIELDS, max_size=5),
    rows=st.lists(st.lists(_CELLS, max_size=6), max_size=6),
    end=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_csv_lines_are_read_as_the_rules_read_them(
    header: list[str], rows: list[list[str]], end: str
) -> None:
    """Headers with and without each field, ragged, blank, quoted and broken lines."""
    text = end.join([",".join(header), *(",".join(row) for row in rows)]) + end
    expected = outcome(model_csv, text, DAY, SP)
    assert outcome(parse_csv, text, DAY, SP) == expected
    assert outcome(parse_csv_tokenized, text, DAY, SP) == expected


# -- the rules, one example each -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (
            parse_csv,
            "\ufeffTime , STATUS,f0_,note\r\n00h 00,Approved,5,x\r\n00h 00, approved ,7,x\r\n"
            "2025-07-14T03:01:30Z,denied,1,z\r\n",
        ),
        (
            parse_json,
            '[{"time": "00h 00", "status": "Approved", "f0_": 5},'
            ' {"time": "00h 00", "status": " approved ", "f0_": 7},'
            ' {"time": "2025-07-14T03:01:30Z", "status": "denied", "f0_": "1"}]',
        ),
    ],
)
def test_a_bucket_sent_twice_keeps_its_last_count_in_its_first_place(
    parse: Parse, text: str
) -> None:
    batch = parse(text, default_date=DAY, tz=SP)
    assert list(batch.counts) == [
        CountRow(T0, "approved", 7),
        CountRow(T0 + 60, "denied", 1),
    ]


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_csv, "timestamp,status,count\n00h 00,approved,5\n00h 01,approved,-1\n\n00h 02,,1\n"),
        (
            parse_json,
            '[{"timestamp": "00h 00", "status": "approved", "count": 5},'
            ' {"timestamp": "00h 01", "status": "approved", "count": -1},'
            ' {"timestamp": "00h 02", "status": "", "count": 1}]',
        ),
    ],
)
def test_a_bad_row_fails_the_batch_with_every_bad_row(parse: Parse, text: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse(text, default_date=DAY, tz=SP)
    rows = [row for row, _ in caught.value.problems]
    # CSV rows are file lines (the blank line counts); JSON rows count items.
    assert rows == ([3, 5] if parse is parse_csv else [2, 3])
    assert "count -1 is out of range" in str(caught.value)
    assert "(and 1 more bad rows)" in str(caught.value)


def test_auth_code_rows_come_as_their_own_rows() -> None:
    text = "timestamp,auth_code,count\n2025-07-14 00:00:00,51,40\n2025-07-14 00:00:00,00,90\n"
    batch = parse_csv(text, default_date=DAY, tz=SP)
    assert list(batch.auth_codes) == [AuthCodeRow(T0, "51", 40), AuthCodeRow(T0, "00", 90)]
    assert not batch.counts
    assert batch.auth_codes_frame()["auth_code"].tolist() == ["51", "00"]


def test_parsed_rows_read_as_a_tuple_of_rows() -> None:
    text = "time,status,count\n00h 00,approved,5\n00h 01,denied,2\n"
    rows = parse_csv(text, default_date=DAY, tz=SP).counts
    expected = (CountRow(T0, "approved", 5), CountRow(T0 + 60, "denied", 2))
    assert rows == expected and expected == rows
    assert hash(rows) == hash(expected)
    assert (len(rows), rows[1], rows[-1].count, rows[:1]) == (2, expected[1], 2, expected[:1])
    assert [type(r) for r in rows] == [CountRow, CountRow]
    assert repr(rows) == repr(expected)
    assert FeedBatch(counts=rows) == FeedBatch(counts=expected)
    assert len(FeedBatch(counts=rows)) == 2


def _lines(rows: Sequence[str], header: str = "timestamp,status,count") -> str:
    return "".join(f"{line}\n" for line in [header, *rows])


def _objects(*rows: dict[str, object]) -> str:
    return json.dumps([{"timestamp": "2025-07-14T03:00:00Z", **row} for row in rows])


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        (CSV, _lines(['2025-07-14T03:00:00Z,"approved",1'])),  # quotes, for csv.reader
        (CSV, _lines(["2025-07-14T03:00:00Z,approved,1", ""])),  # a blank line
        (CSV, _lines(["2025-07-14T03:00:00Z,approved,1.0"])),  # a whole float
        (CSV, _lines(["2025-07-14T03:00:00Z,approved"])),  # a short row
        (CSV, _lines(["2025-07-14T03:00:00Z,approved\r,1"])),  # a lone CR: csv.Error
        (CSV, "timestamp,status,count\r2025-07-14T03:00:00Z,approved,1\r"),  # the same
        # a field over csv.field_size_limit(): csv.Error
        (CSV, _lines([f"00h 00,approved,1,{'x' * 200_000}"], "time,status,count,x")),
        (CSV, _lines(["tx-1,2025-07-14T03:00:00Z,approved"], "id,timestamp,status")),  # events
        (CSV, _lines(["0001-01-01T00:30:00+01:00,approved,1"])),  # before year 1: OverflowError
        # 1 == True == 1.0 and 0.0 == -0.0, but the rules word them apart
        (JSON, _objects({"auth_code": 1, "count": 1}, {"auth_code": True, "count": 2})),
        (JSON, _objects({"auth_code": 1.0, "count": 1}, {"auth_code": 1, "count": 2})),
        (JSON, _objects({"id": "a", "status": "x", "amount": 0.0}, {"id": "b", "amount": -0.0})),
        (JSON, _objects({"status": "a", "count": 1}, {"status": "b", "count": True})),
        # as many keys, other keys: an event row; one key more: an auth-code row
        (JSON, _objects({"status": "a", "count": 1, "x": 1}, {"status": "a", "count": 1, "id": 1})),
        (JSON, _objects({"status": "a", "count": 1}, {"status": "a", "count": 1, "auth_code": 1})),
        (JSON, _objects({"status": "a", "count": 1}, {"status": "a", "f0_": 1})),
        # an event id sent again is not read again, even with bad values; a bad first is not kept
        (JSON, _objects({"id": "a", "status": "x"}, {"id": "a", "status": "?"})),
        (JSON, _objects({"id": "a", "status": "?"}, {"id": "a", "status": "x"})),
        (JSON, '[{"status": "a", "count": 1}, 7, {"timestamp": null, "count": "x"}]'),
    ],
)
def test_odd_batches_are_read_as_the_rules_read_them(fmt: Format, text: str) -> None:
    assert outcome(fmt.parse, text, DAY, SP) == outcome(fmt.model, text, DAY, SP)


@pytest.mark.parametrize(
    ("fmt", "text", "reason"),
    [
        (CSV, _lines(["2025-07-14T03:00:00Z,approved\r,1"]), "row 2: not readable as CSV"),
        (
            CSV,
            _lines([f"00h 00,approved,1,{'x' * 200_000}"], "time,status,count,x"),
            "row 2: not readable as CSV (field larger than field limit",
        ),
        (CSV, _lines(["0001-01-01T00:30:00+01:00,approved,1"]), "is out of range"),
        (JSON, _objects({"auth_code": True, "count": 2}), "auth_code True is not a 1 to 4"),
        (
            JSON,
            _objects({"id": "a", "status": "x", "amount": 10**400}),
            f"row 1: amount {10**400} is not a finite number",
        ),
        (JSON, f"[{'1' * 5_000}]", "not valid JSON: a number has more than 4300 digits"),
    ],
)
def test_rows_csv_or_the_clock_cannot_take_are_named_errors(
    fmt: Format, text: str, reason: str
) -> None:
    """Once 500s: now a FeedError (a 422 on /transactions) naming the row, nothing stored."""
    with pytest.raises(FeedError, match=re.escape(reason)):
        fmt.parse(text, default_date=DAY, tz=SP)


def test_a_feed_error_is_a_storage_error_and_a_value_error() -> None:
    with pytest.raises(FeedError) as caught:
        parse_csv("timestamp,status,count\n00h 00,,1\n", default_date=DAY, tz=SP)
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, ValueError)
    assert caught.value.problems == ((2, "status is missing"),)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # past 64 bits
    | st.floats(allow_nan=True, allow_infinity=True)  # NaN and Infinity: json's extension
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(load: Callable[[str], object], text: str) -> tuple[str, object]:
    try:
        return "ok", load(text)
    except json.JSONDecodeError as error:
        return "error", (error.msg, error.lineno)


@settings(max_examples=300, deadline=None)
@given(
    text=_JSON_VALUES.map(json.dumps)
    | st.text(alphabet='[]{}",:0123456789.eE+-tfnrualsNIy \\u\n', max_size=30)
    | st.just('["\\ud800"]')  # a lone surrogate: msgspec refuses, json takes
)
def test_the_fast_json_loader_accepts_reads_and_refuses_exactly_as_json(text: str) -> None:
    fast, slow = _outcome(_loads, text), _outcome(json.loads, text)
    # NaN != NaN: compare the texts json writes back.
    assert json.dumps(fast) == json.dumps(slow)


def _typed_columns(table: Any) -> dict[str, list[tuple[type, object]]]:
    return {name: [(type(v), v) for v in column] for name, column in table.fields.items()}


_ROW_VALUES = st.one_of(
    st.sampled_from(["2025-07-14T03:00:00Z", "00h 00", "approved", "cielo", "", " 5 ", "\x1f"]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=400, deadline=None)
@given(
    names=st.lists(
        _FIELDS | st.sampled_from(["acquirer", "brand", 'a"b', "c\\d", "e\x01", ""]),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    data=st.data(),
)
def test_rows_read_typed_are_the_rows_read_as_objects(names: list[str], data: Any) -> None:
    """The fast path (one struct a row, when every row has the same fields, texts and a whole
    count) gives the columns the general path gives, each value of the same type; any other
    text, it leaves to the general path."""
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({n: _ROW_VALUES for n in names})
            | st.dictionaries(st.sampled_from(names), _ROW_VALUES),
            max_size=6,
        )
    )
    text = json.dumps(rows)
    typed = parsing._typed_table(text)
    if typed is not None:
        plain = parsing._json_table(parsing._json_items(text, "row "))
        assert list(typed.numbers) == list(plain.numbers)
        assert (typed.gappy, typed.refused) == (plain.gappy, tuple(plain.refused))
        assert _typed_columns(typed) == _typed_columns(plain)


def test_a_feed_of_texts_and_whole_counts_is_read_typed_whatever_came_before() -> None:
    rows = [
        {"timestamp": "2025-07-14T03:00:00Z", "status": "approved", "acquirer": a, "count": n}
        for a, n in (("cielo", 5), ("stone", 12345678901234567890123))
    ]
    earlier = ('[{"a\\"b": "x"}]', '[{"time": "00h 00", "status": "ok", "count": 1}]', "[]")
    for before in earlier:  # the last rows read typed (their fields are tried first), or not
        parsing._typed_table(before)
        typed = parsing._typed_table(json.dumps(rows))
        assert typed is not None
        assert _typed_columns(typed)["count"] == [(int, 5), (int, 12345678901234567890123)]
    assert parsing._typed_table(json.dumps([*rows, {**rows[0], "count": 1.0}])) is None
    assert parsing._typed_table(json.dumps([*rows, {**rows[0], "brand": "visa"}])) is None
    assert parsing._typed_table(json.dumps(rows[0])) is None  # one object, not an array


def test_json_nested_too_deeply_is_a_feed_error_not_a_crash() -> None:
    with pytest.raises(FeedError, match="nested too deeply"):
        parse_json("[" * 100_000, default_date=DAY, tz=UTC)
