"""Transaction feed formats: CSV and JSON rows parsed and validated into a FeedBatch.

A batch is all-or-nothing: any bad row makes `FeedError` with every bad row listed, and nothing
of it is stored. Three kinds of rows share one feed:

- count rows: `time`/`timestamp`, `status`, `count` (CloudWalk exports call it `f0_`);
- authorization-code rows: `timestamp`, `auth_code`, `count`;
- event rows: `id`, `timestamp`, `status`, optional `amount`, `merchant_id`.

A batch of clean count or authorization-code rows is checked a column at a time, each distinct
time, status and code once; any other batch, and any batch with a row those checks doubt, goes
row by row, the reference that words every error.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from functools import partial
from itertools import repeat
from operator import add, attrgetter, itemgetter, methodcaller, mod, sub
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast, overload

import orjson
import pandas as pd

MAX_TEXT = 128
MAX_STATUS = 32
MAX_COUNT = 10**12
_HOUR_MINUTE = re.compile(r"^\s*(\d{1,2})h\s*(\d{1,2})\s*$")
_STATUS = re.compile(r"^[a-z0-9_\-]+$")
_AUTH_CODE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_ZULU = methodcaller("replace", "Z", "+00:00")
_TZINFO = attrgetter("tzinfo")
_TO_UTC = methodcaller("astimezone", UTC)


class FeedError(ValueError):
    """Rows that cannot be stored; `problems` lists (row number, reason), row 1 the first."""

    def __init__(self, message: str, problems: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


# Count and authorization-code rows are named tuples, not dataclasses: a batch has ten thousand
# of them to make (see _Rows), and a tuple is made in C, a dataclass by its __init__.


class CountRow(NamedTuple):
    minute: int  # epoch seconds, UTC, on a minute boundary
    status: str
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


class AuthCodeRow(NamedTuple):
    minute: int
    auth_code: str
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


_Row = TypeVar("_Row", CountRow, AuthCodeRow)


class _Rows(Sequence[_Row]):
    """Rows kept as three columns (minutes, keys, counts) and made `row`s as they are read.

    A named tuple or a dataclass is watched by the garbage collector as long as it lives: ten
    thousand of them a batch, alive until the batch was stored, made the collector sweep the
    whole heap every few batches (130-270 ms a sweep with the modules of `serve` loaded).
    Columns are three lists, and a row made as the store reads it is freed once read.
    """

    __slots__ = ("_counts", "_keys", "_minutes", "_row")
    _row: type[_Row]
    _minutes: Sequence[int]
    _keys: Sequence[str]
    _counts: Sequence[int]

    def __init__(
        self, row: type[_Row], minutes: Sequence[int], keys: Sequence[str], counts: Sequence[int]
    ) -> None:
        self._row, self._minutes, self._keys, self._counts = row, minutes, keys, counts

    @classmethod
    def of(cls, row: type[_Row], buckets: Mapping[tuple[int, str], int]) -> _Rows[_Row]:
        return cls(row, [m for m, _ in buckets], [k for _, k in buckets], list(buckets.values()))

    def __len__(self) -> int:
        return len(self._counts)

    @overload
    def __getitem__(self, index: int) -> _Row: ...

    @overload
    def __getitem__(self, index: slice) -> _Rows[_Row]: ...

    def __getitem__(self, index: int | slice) -> _Row | _Rows[_Row]:
        if isinstance(index, slice):
            return _Rows(self._row, self._minutes[index], self._keys[index], self._counts[index])
        return self._row(self._minutes[index], self._keys[index], self._counts[index])

    def __iter__(self) -> Iterator[_Row]:
        # tuple.__new__ makes each row in C; a named tuple's own __new__ and _make are Python.
        rows = zip(self._minutes, self._keys, self._counts, strict=True)
        return cast("Iterator[_Row]", map(tuple.__new__, repeat(self._row), rows))

    def __eq__(self, other: object) -> bool:  # as the tuple of its rows compares
        if isinstance(other, _Rows | tuple):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    minute: int
    status: str
    amount: float | None
    merchant_id: str | None


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Validated rows, ready to store in one transaction."""

    counts: Sequence[CountRow] = ()
    auth_codes: Sequence[AuthCodeRow] = ()
    events: tuple[EventRow, ...] = ()

    def __len__(self) -> int:
        return len(self.counts) + len(self.auth_codes) + len(self.events)

    def count_tuples(self) -> list[tuple[int, str, int]]:
        """Count rows as plain (minute, status, count) tuples: what the store sends."""
        return _tuples(self.counts)

    def auth_code_tuples(self) -> list[tuple[int, str, int]]:
        """Authorization-code rows as plain (minute, auth_code, count) tuples."""
        return _tuples(self.auth_codes)

    def counts_frame(self) -> pd.DataFrame:
        """Count rows as a frame: `minute` (UTC), `status`, `count`."""
        return _frame(self.count_tuples(), "status")

    def auth_codes_frame(self) -> pd.DataFrame:
        """Authorization-code rows as a frame: `minute` (UTC), `auth_code`, `count`."""
        return _frame(self.auth_code_tuples(), "auth_code")


def _tuples(rows: Sequence[CountRow] | Sequence[AuthCodeRow]) -> list[tuple[int, str, int]]:
    if isinstance(rows, _Rows):  # straight from the columns, in C
        return list(zip(rows._minutes, rows._keys, rows._counts, strict=True))
    return [(minute, key, count) for minute, key, count in rows]


def _frame(rows: list[tuple[int, str, int]], key: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["minute", key, "count"])
    frame["minute"] = pd.to_datetime(frame["minute"].astype("int64"), unit="s", utc=True)
    frame["count"] = frame["count"].astype("int64")
    return frame


@dataclass(slots=True)
class _TimeParser:
    """Parses the feed's time formats; naive times are on the shift clock `tz`."""

    default_date: date
    tz: tzinfo
    cache: dict[str, int] = field(default_factory=dict)

    def minute(self, raw: object) -> int:
        text = str(raw).strip() if raw is not None else ""
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        value = self._parse(text)
        self.cache[text] = value
        return value

    def _parse(self, text: str) -> int:
        if not text:
            raise ValueError("time is empty")
        match = _HOUR_MINUTE.match(text)
        if match:
            hour, minute = int(match.group(1)), int(match.group(2))
            if hour > 23 or minute > 59:
                raise ValueError(f"time {text!r} is not a time of day")
            local = datetime.combine(self.default_date, time(hour, minute), tzinfo=self.tz)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"time {text!r} is not ISO 8601, 'YYYY-MM-DD HH:MM:SS' or 'HHh MM'"
                ) from None
            local = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=self.tz)
        try:
            seconds = int(local.astimezone(UTC).timestamp())
        except OverflowError:  # an offset that crosses year 1 or 9999
            raise ValueError(f"time {text!r} is out of range") from None
        return seconds - seconds % 60

    def minutes(self, texts: Sequence[str]) -> list[int]:
        """`minute` of each text. When all are ISO 8601, all with an offset or all naive, the
        steps of `_parse` run as C loops over all of them (up to twice as fast); else one by one."""
        try:
            parsed = list(map(datetime.fromisoformat, map(_ZULU, map(str.strip, texts))))
        except ValueError:
            return list(map(self.minute, texts))
        zones = set(map(_TZINFO, parsed))
        if None in zones:
            if len(zones) > 1:
                return list(map(self.minute, texts))
            parsed = list(map(methodcaller("replace", tzinfo=self.tz), parsed))
        seconds = list(map(int, map(datetime.timestamp, map(_TO_UTC, parsed))))
        return list(map(sub, seconds, map(mod, seconds, repeat(60))))


def _count(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("count must be a whole number")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or raw != int(raw):
            raise ValueError(f"count {raw!r} is not a whole number")
        value = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ValueError(f"count {raw!r} is not a number") from None
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise ValueError(f"count {raw!r} is not a whole number") from None
            value = int(as_float)
    else:
        raise ValueError("count is missing" if raw is None else "count must be a number")
    if value < 0 or value > MAX_COUNT:
        raise ValueError(f"count {value} is out of range (0 to {MAX_COUNT})")
    return value


def _status(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("status is missing")
    status = raw.strip().lower()
    if len(status) > MAX_STATUS or not _STATUS.match(status):
        raise ValueError(f"status {raw!r} is not a status name (letters, digits, _ or -)")
    return status


def _auth_code(raw: object) -> str:
    code = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    if not _AUTH_CODE.match(code):
        raise ValueError(f"auth_code {raw!r} is not a 1 to 4 character code")
    return code


def _text(raw: object, name: str, *, required: bool) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ValueError(f"{name} is missing")
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"{name} must be text")
    text = str(raw).strip()
    if len(text) > MAX_TEXT or any(ord(c) < 32 for c in text):
        raise ValueError(f"{name} is too long or has control characters")
    return text


def _amount(raw: object) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ValueError("amount must be a number")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        raise ValueError(f"amount {raw!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > 1e15:
        raise ValueError(f"amount {raw!r} is not a finite number")
    return value


@dataclass(slots=True)
class _Collector:
    times: _TimeParser
    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    auth_codes: dict[tuple[int, str], int] = field(default_factory=dict)
    events: dict[str, EventRow] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)

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
            assert event_id is not None  # noqa: S101 - required=True never returns None
            if event_id not in self.events:
                self.events[event_id] = EventRow(
                    id=event_id,
                    minute=self.times.minute(stamp),
                    status=_status(row.get("status")),
                    amount=_amount(row.get("amount")),
                    merchant_id=_text(row.get("merchant_id"), "merchant_id", required=False),
                )
            return
        raw_count = row["count"] if "count" in row else row.get("f0_")
        if "auth_code" in row:
            code = _auth_code(row.get("auth_code"))
            self.auth_codes[(self.times.minute(stamp), code)] = _count(raw_count)
            return
        self.counts[(self.times.minute(stamp), _status(row.get("status")))] = _count(raw_count)

    def batch(self, where: str) -> FeedBatch:
        if self.problems:
            first_row, first_reason = self.problems[0]
            more = (
                f" (and {len(self.problems) - 1} more bad rows)" if len(self.problems) > 1 else ""
            )
            raise FeedError(f"{where}{first_row}: {first_reason}{more}", self.problems)
        return FeedBatch(
            counts=_Rows.of(CountRow, self.counts),
            auth_codes=_Rows.of(AuthCodeRow, self.auth_codes),
            events=tuple(self.events.values()),
        )


_KNOWN_HEADERS = {
    "time",
    "timestamp",
    "status",
    "count",
    "f0_",
    "auth_code",
    "id",
    "amount",
    "merchant_id",
}


def _header_names(header: list[str]) -> list[str]:
    return [h.strip().lower().lstrip("\ufeff") for h in header]


def _csv_rows(text: str, where: str) -> Iterator[tuple[int, dict[str, object]]]:
    """Rows by line number; a line csv cannot read (a lone CR, a field over csv's limit) makes
    the whole batch a FeedError naming that line."""
    reader = csv.reader(io.StringIO(text))
    try:
        yield from _csv_reader_rows(reader, where)
    except csv.Error as error:
        line = max(reader.line_num, 1)
        raise FeedError(
            f"{where}{line}: not readable as CSV ({error})", [(line, str(error))]
        ) from None


def _csv_reader_rows(
    reader: Iterator[list[str]], where: str
) -> Iterator[tuple[int, dict[str, object]]]:
    header = next(reader, None)
    if header is None:
        raise FeedError(f"{where}1: the file is empty (a CSV header is expected)", [(1, "empty")])
    names = _header_names(header)
    if "time" not in names and "timestamp" not in names:
        raise FeedError(
            f"{where}1: header {','.join(names)!r} has no time or timestamp column",
            [(1, "no time column")],
        )
    if not ({"count", "f0_"} & set(names)) and "id" not in names:
        raise FeedError(
            f"{where}1: header {','.join(names)!r} has no count (or f0_) column, nor id for events",
            [(1, "no count column")],
        )
    for line_number, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(names):
            yield line_number, {"__bad__": f"{len(values)} fields, the header has {len(names)}"}
            continue
        yield line_number, {n: v for n, v in zip(names, values, strict=True) if n in _KNOWN_HEADERS}


_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def _long_number(text: str) -> bool:
    """Whether 19 digits come in a row (a byte table beats a regex here by 10x)."""
    return b"0" * 19 in text.encode("utf-8", "surrogatepass").translate(_ZERO_DIGITS)


def _loads(text: str) -> object:
    """`json.loads`, by orjson where orjson takes the text (2.5x faster on a feed batch). What
    orjson refuses (NaN, lone surrogates, deep nesting, bad JSON) goes to `json`, and so does
    a text with a number of 19 digits or more (orjson reads an integer past 64 bits as a
    float), so what is accepted, the values, and each error's message stay json's."""
    if not _long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _json_items(text: str, where: str) -> list[object]:
    try:
        document = _loads(text)
    except json.JSONDecodeError as error:
        raise FeedError(f"{where}{error.lineno}: not valid JSON ({error.msg})", []) from None
    except RecursionError:
        raise FeedError("not valid JSON: arrays or objects nested too deeply", []) from None
    return document if isinstance(document, list) else [document]


def _json_rows(items: list[object]) -> Iterator[tuple[int, dict[str, object]]]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield number, {"__bad__": "a row must be a JSON object"}
        else:
            yield number, item


def _collect(rows: Iterable[tuple[int, dict[str, object]]], times: _TimeParser) -> _Collector:
    collector = _Collector(times)
    for number, row in rows:
        bad = row.get("__bad__")
        if bad is not None:
            collector.problems.append((number, str(bad)))
        else:
            collector.add(number, row)
    return collector


# -- clean batches a column at a time ------------------------------------------------------------

_T = TypeVar("_T")
# What the column checks raise on a batch they cannot vouch for: the row path then decides it,
# and words any error (or raises what it raises, as for a time out of datetime's range).
_DOUBT = (ArithmeticError, LookupError, TypeError, ValueError)
_TEXT: frozenset[type] = frozenset({str})
_CODE_TYPES: frozenset[type] = frozenset({str, int})


def _each_distinct(
    column: Sequence[object], convert: Callable[[list[Any]], Iterable[_T]], types: frozenset[type]
) -> list[_T]:
    """Every value converted, by `convert` of the distinct values. Only values of `types`
    (exactly), so that no two values the row path tells apart (1 and True) share an entry."""
    distinct = list(set(column))
    # Text equals no other value a feed holds: for text, the distinct values show every type.
    if not set(map(type, distinct if types == _TEXT else column)) <= types:
        raise TypeError("a column of mixed types")
    converted = dict(zip(distinct, convert(distinct), strict=True))
    return list(map(converted.__getitem__, column))


def _column_counts(column: Sequence[object]) -> list[int]:
    types = set(map(type, column))
    if types == _TEXT:
        # int() strips the whitespace str.strip() does: where it succeeds, _count agrees.
        counts = list(map(int, cast("Sequence[str]", column)))
    elif types == {int}:
        counts = cast("list[int]", column)
    else:
        raise TypeError("counts of another type")
    if min(counts) < 0 or max(counts) > MAX_COUNT:
        raise ValueError("a count out of range")
    return counts


def _repeats(minutes: list[int], keys: list[str]) -> bool:
    """Whether some (minute, key) bucket comes more than once."""
    numbers = {key: number for number, key in enumerate(set(keys))}
    if len(numbers) > 60:
        return len(set(zip(minutes, keys, strict=True))) < len(keys)
    # Minutes are multiples of 60, so minute + the key's number (below 60) names the bucket:
    # one int a row, where pairs would be ten thousand more objects for the collector.
    return len(set(map(add, minutes, map(numbers.__getitem__, keys)))) < len(keys)


def _buckets(
    row: type[_Row], minutes: list[int], keys: list[str], counts: list[int]
) -> _Rows[_Row]:
    if _repeats(minutes, keys):
        # A bucket sent twice: its last count, in the place of its first, as the row path keeps.
        return _Rows.of(row, dict(zip(zip(minutes, keys, strict=True), counts, strict=True)))
    return _Rows(row, minutes, keys, counts)


def _columns_batch(
    names: Collection[str], column: Callable[[str], Sequence[object]], times: _TimeParser
) -> FeedBatch:
    """Count or authorization-code rows from their columns, or one of `_DOUBT`."""
    if "id" in names:
        raise LookupError("event rows")
    stamps = column("timestamp" if "timestamp" in names else "time")
    counts = _column_counts(column("count" if "count" in names else "f0_"))
    minutes = _each_distinct(stamps, times.minutes, _TEXT)
    if "auth_code" in names:
        codes = _each_distinct(column("auth_code"), partial(map, _auth_code), _CODE_TYPES)
        return FeedBatch(auth_codes=_buckets(AuthCodeRow, minutes, codes, counts))
    statuses = _each_distinct(column("status"), partial(map, _status), _TEXT)
    return FeedBatch(counts=_buckets(CountRow, minutes, statuses, counts))


def _csv_batch(text: str, times: _TimeParser) -> FeedBatch | None:
    """Without quotes or lone carriage returns, csv.reader's rows are the lines split at commas:
    a comma count per line shows each has the header's width, and columns are slices of one
    split of all the rows. None: the row path decides."""
    if '"' in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the newline that ends the last row
    limit = csv.field_size_limit()  # csv.reader refuses a longer field
    if len(lines) < 2 or (len(text) >= limit and max(map(len, lines)) >= limit):
        return None
    names = _header_names(lines[0].split(","))
    rows = lines[1:]
    width = len(names)
    if set(map(str.count, rows, repeat(","))) != {width - 1}:  # as wide as the header, no blanks
        return None
    fields = ",".join(rows).split(",")
    index = {name: i for i, name in enumerate(names)}  # a repeated name: its last column
    try:
        return _columns_batch(index.keys(), lambda name: fields[index[name] :: width], times)
    except _DOUBT:
        return None


def _json_batch(items: list[object], times: _TimeParser) -> FeedBatch | None:
    """Objects that all have the first one's keys. None: the row path decides."""
    if not items or set(map(type, items)) != {dict}:
        return None
    rows = cast("list[dict[str, object]]", items)
    keys = rows[0].keys()
    if set(map(len, rows)) != {len(keys)}:
        return None
    try:
        if len(keys) > 3:  # with three, the three columns taken show every row has those keys
            deque(map(itemgetter(*keys), rows), maxlen=0)
        return _columns_batch(keys, lambda name: list(map(itemgetter(name), rows)), times)
    except _DOUBT:
        return None


# -- the surface ---------------------------------------------------------------------------------


def parse_csv(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """Rows of a CSV feed (header first); row numbers are file line numbers."""
    times = _TimeParser(default_date, tz)
    batch = _csv_batch(text, times)
    return batch if batch is not None else _collect(_csv_rows(text, where), times).batch(where)


def parse_json(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """A JSON object or array of objects; row numbers count array items from 1."""
    items = _json_items(text, where)
    times = _TimeParser(default_date, tz)
    batch = _json_batch(items, times)
    return batch if batch is not None else _collect(_json_rows(items), times).batch(where)


def _parse_csv_by_row(
    text: str, *, default_date: date, tz: tzinfo, where: str = "row "
) -> FeedBatch:
    """The reference `parse_csv` must agree with: every row on its own."""
    return _collect(_csv_rows(text, where), _TimeParser(default_date, tz)).batch(where)


def _parse_json_by_row(
    text: str, *, default_date: date, tz: tzinfo, where: str = "row "
) -> FeedBatch:
    """The reference `parse_json` must agree with: every row on its own."""
    items = _json_items(text, where)
    return _collect(_json_rows(items), _TimeParser(default_date, tz)).batch(where)


def load_file(path: Path, *, default_date: date, tz: tzinfo) -> FeedBatch:
    """A transaction file (CSV or JSON by content); errors read `path:line: reason`."""
    where = f"{path}:"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FeedError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FeedError(f"{path}: cannot be read ({error})") from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return parse_json(text, default_date=default_date, tz=tz, where=where)
    return parse_csv(text, default_date=default_date, tz=tz, where=where)
