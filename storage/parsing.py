"""Feed input parsing: CSV and JSON text read into a validated FeedBatch, a column at a time.

A batch is all-or-nothing: any bad row makes `FeedError` with every bad row listed as (row
number, reason), and nothing of it is stored. CSV rows are numbered by line (the header is row
1, a blank line is skipped but counted), JSON rows by array item from 1. Three kinds of rows
share one feed:

- count rows: `time`/`timestamp`, `status`, `count` (CloudWalk exports call it `f0_`); a row
  sets the count of its (minute, status) bucket: a bucket sent twice keeps its last count, in
  the place of its first;
- authorization-code rows: `timestamp`, `auth_code`, `count`; buckets by (minute, code), alike;
- event rows: `id`, `timestamp`, `status`, optional `amount`, `merchant_id`; the first good row
  of an id is kept, later rows with that id are not read.

A row with an `id` is an event row, else one with an `auth_code` a code row, else a count row.
`timestamp` is read before `time` and `count` before `f0_`.

Every other field is an extra column: a dimension (`acquirer`, `brand`, ...; `merchant_id` of
event rows is one too). A count row then counts one combination of its extra columns' values
(a combo): a combo sent twice in a batch keeps its last count, and the (minute, status) total is
the sum of its combos (`FeedBatch.slices`, `counts`). `dimensions` (NIGHTSHIFT_DIMENSIONS; None:
all) names the extra columns kept as dimensions, the others are summed away (a combo is still
told apart by them, so rows that differ only there add up). A kept dimension's name is
`[a-z][a-z0-9_]{0,31}`, its value text or a whole number up to MAX_TEXT characters; an empty or
missing value is the value `unknown` (a row is not refused for a gap, as `merchant_id` never
was). Extra columns on authorization-code rows are summed away alike. A bad row's reason is the
first check it fails, in this order (each check's messages are its own):

    every row    "timestamp is missing (or time)", when neither field has a value
    count rows   the count, the time, the status
    code rows    the code, the count, the time
    event rows   the id, then (a first row of that id) the time, the status, the amount,
                 the merchant_id
    all rows     then each kept dimension, in name order

How: the text is cut into columns, one list of values per field (CSV at its commas, a long
text by pandas' C tokenizer, which gives each column's distinct texts and codes, or by
`csv.reader` where quotes or a lone carriage return need it; JSON by msgspec, straight into
one struct a row when the rows are alike, else into objects where it reads the text as `json`
would, else by `json`); each distinct value of a column is checked once, and
count rows are made columns of codes (`storage.codes`) that are deduplicated and summed by
numpy; rows are walked one by one only where a check refused a value, to word their reasons.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache, partial
from itertools import repeat
from operator import attrgetter, itemgetter, methodcaller, mod, sub
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack, cast, overload

import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd

from storage.codes import (
    Coded,
    Ints,
    fingerprints,
    first_rows,
    grouped,
    last_rows,
    packed,
    sums,
)
from storage.dimensions import DIMENSION_NAME, MAX_DIMENSIONS
from storage.errors import FeedError

__all__ = [
    "MAX_COUNT",
    "MAX_STATUS",
    "MAX_TEXT",
    "UNKNOWN",
    "AuthCodeRow",
    "ComboKeys",
    "Combos",
    "CountRow",
    "EventRow",
    "FeedBatch",
    "FeedError",
    "Reading",
    "SliceRow",
    "combo_columns",
    "load_file",
    "parse_csv",
    "parse_json",
]

MAX_TEXT = 128
MAX_STATUS = 32
MAX_COUNT = 10**12
UNKNOWN = "unknown"  # the value of a dimension a row leaves empty
_HOUR_MINUTE = re.compile(r"^\s*(\d{1,2})h\s*(\d{1,2})\s*$")
_STATUS = re.compile(r"^[a-z0-9_\-]+$")
_AUTH_CODE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_ZULU = methodcaller("replace", "Z", "+00:00")
_TZINFO = attrgetter("tzinfo")
_TO_UTC = methodcaller("astimezone", UTC)
_NO_TIME = "timestamp is missing (or time)"
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- the rows a batch holds ------------------------------------------------------------------

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


COMBO_NAMES, COMBO_START, COMBO_VALUES = "\x1f", "\x1e", "\x1f"


def combo_columns(combo: str) -> dict[str, str]:
    """A combo key's extra columns and values: the key is the names, then the values, each
    list joined by US (\\x1f), the two by RS (\\x1e); no name or value holds either."""
    names, _, values = combo.partition(COMBO_START)
    return dict(zip(names.split(COMBO_NAMES), values.split(COMBO_VALUES), strict=True))


class SliceRow(NamedTuple):
    """One combo of a minute and status: `combo` is the key of all its extra columns' values
    (the identity the store keeps, `combo_columns`), `values` the kept dimensions' ones, in
    `FeedBatch.dimensions` order."""

    minute: int
    status: str
    combo: str
    values: tuple[str, ...]
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, on purpose


_Row = TypeVar("_Row", CountRow, AuthCodeRow)
_Tuple = TypeVar("_Tuple", bound=tuple[Any, ...])


class _Columns(Sequence[_Tuple]):
    """Rows kept as columns and made as they are read compare, hash and print as the tuple of
    their rows."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Columns | tuple):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


class _Rows(_Columns[_Row]):
    """Rows kept as three columns (minutes, keys, counts) and made `row`s as they are read.

    A named tuple or a dataclass is watched by the garbage collector as long as it lives, and a
    batch of ten thousand of them, alive until it is stored, made the collector sweep the whole
    heap every few batches. Columns are three lists, and a row made as it is read is freed once
    read.
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


@dataclass(frozen=True, slots=True)
class ComboKeys:
    """Rows' combo keys (`combo_columns`), made only where read: the store names a combo by
    its id (`storage.codes.fingerprints` of the same names and values). `names` is the key's
    part before its values (the extra columns' names joined); `columns` every extra column's
    values by row. With `whole`, the one column holds the keys themselves."""

    names: str
    columns: tuple[Coded, ...]
    whole: bool = False

    def take(self, rows: Ints) -> ComboKeys:
        return ComboKeys(self.names, tuple(c.take(rows) for c in self.columns), self.whole)

    def texts(self) -> list[str]:
        """Each row's key."""
        if self.whole:
            return cast("list[str]", self.columns[0].values().tolist())
        values = zip(*(c.values().tolist() for c in self.columns), strict=True)
        return list(map((self.names + COMBO_START).__add__, map(COMBO_VALUES.join, values)))


def _key_id(key: str) -> int:
    """The combo id of one combo key."""
    names, _, values = key.partition(COMBO_START)
    columns = [
        Coded(np.zeros(1, np.int64), np.asarray([v], dtype=object))
        for v in values.split(COMBO_VALUES)
    ]
    return int(fingerprints(names, columns)[0])


class Combos(_Columns[SliceRow]):
    """A batch's combos as columns of codes (`storage.codes`), what the store reads: minute,
    status, combo (its codes' labels are the combos' ids), each kept dimension's value, and
    count; and the combos' keys, made only where read. A `SliceRow` is made as it is read; the
    store reads the columns, with no object a row."""

    __slots__ = ("combos", "counts", "keys", "minutes", "statuses", "values")

    def __init__(
        self,
        minutes: Coded,
        statuses: Coded,
        combos: Coded,
        values: tuple[Coded, ...],
        counts: Ints,
        keys: ComboKeys,
    ) -> None:
        self.minutes, self.statuses, self.combos = minutes, statuses, combos
        self.values, self.counts, self.keys = values, counts, keys

    @classmethod
    def of(cls, rows: Sequence[SliceRow]) -> Combos:
        """The rows as columns (the rows themselves, if they are)."""
        if isinstance(rows, Combos):
            return rows
        width = len(rows[0].values) if rows else 0
        values = list(zip(*(r.values for r in rows), strict=True)) if width else []
        keys = Coded.of([r.combo for r in rows])
        ids = np.fromiter(map(_key_id, keys.labels.tolist()), np.int64, len(keys.labels))
        return cls(
            Coded.of(np.asarray([r.minute for r in rows], np.int64)),
            Coded.of([r.status for r in rows]),
            Coded(keys.codes, ids),
            tuple(map(Coded.of, values)),
            np.asarray([r.count for r in rows], np.int64),
            ComboKeys("", (keys,), whole=True),
        )

    def take(self, rows: Ints, counts: Ints | None = None) -> Combos:
        """These rows, each with its entry of `counts` (default: its own count)."""
        return Combos(
            self.minutes.take(rows),
            self.statuses.take(rows),
            self.combos.take(rows),
            tuple(v.take(rows) for v in self.values),
            self.counts[rows] if counts is None else counts,
            self.keys.take(rows),
        )

    def __len__(self) -> int:
        return len(self.counts)

    @overload
    def __getitem__(self, index: int) -> SliceRow: ...

    @overload
    def __getitem__(self, index: slice) -> Combos: ...

    def __getitem__(self, index: int | slice) -> SliceRow | Combos:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        return next(iter(self.take(np.arange(len(self))[[index]])))

    def __iter__(self) -> Iterator[SliceRow]:
        values = zip(*(v.values().tolist() for v in self.values), strict=True)
        rows = zip(
            self.minutes.values().tolist(),
            self.statuses.values().tolist(),
            self.keys.texts(),
            values if self.values else repeat((), len(self)),
            self.counts.tolist(),
            strict=True,
        )
        return map(tuple.__new__, repeat(SliceRow), rows)  # made in C, as _Rows does


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    minute: int
    status: str
    amount: float | None
    merchant_id: str | None
    values: tuple[str, ...] = ()  # the kept dimensions', in `FeedBatch.dimensions` order


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Validated rows, ready to store in one transaction. With extra columns, `slices` holds
    the count rows' combos and `counts` their totals per (minute, status); `dimensions` names
    the kept dimensions, the order of each slice's and event's `values`."""

    counts: Sequence[CountRow] = ()
    auth_codes: Sequence[AuthCodeRow] = ()
    events: tuple[EventRow, ...] = ()
    dimensions: tuple[str, ...] = ()
    slices: Sequence[SliceRow] = ()

    def __len__(self) -> int:
        """Rows kept: count rows (each combo, when dimensioned), code rows, events."""
        counts = len(self.slices) or len(self.counts)
        return counts + len(self.auth_codes) + len(self.events)

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

    def slices_frame(self) -> pd.DataFrame:
        """The count rows' marginals, long: `minute` (UTC, as `counts_frame`), `status`,
        `dimension`, `value`, `count`, the sum of the batch's combos per (minute, status,
        dimension, value); events are not in it."""
        sums: dict[tuple[int, str, str, str], int] = {}
        for minute, status, _, values, count in self.slices:
            for dimension, value in zip(self.dimensions, values, strict=True):
                key = (minute, status, dimension, value)
                sums[key] = sums.get(key, 0) + count
        frame = pd.DataFrame(
            [(*key, count) for key, count in sums.items()],
            columns=["minute", "status", "dimension", "value", "count"],
        )
        frame["minute"] = pd.to_datetime(frame["minute"].astype("int64"), unit="s", utc=True)
        frame["count"] = frame["count"].astype("int64")
        return frame


def _tuples(rows: Sequence[CountRow] | Sequence[AuthCodeRow]) -> list[tuple[int, str, int]]:
    if isinstance(rows, _Rows):  # straight from the columns, in C
        return list(zip(rows._minutes, rows._keys, rows._counts, strict=True))
    return [(minute, key, count) for minute, key, count in rows]


def _frame(rows: list[tuple[int, str, int]], key: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["minute", key, "count"])
    frame["minute"] = pd.to_datetime(frame["minute"].astype("int64"), unit="s", utc=True)
    frame["count"] = frame["count"].astype("int64")
    return frame


# -- one value at a time: each check returns the value as stored or raises ValueError ----------


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
        steps of `_parse` run as C loops over all of them; else one by one."""
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


def _counts(column: Sequence[object]) -> list[int]:
    """`_count` of a column of text or of integers, at C speed; TypeError for any other column,
    ValueError if any count is refused (then `_count` words each refusal)."""
    types = set(map(type, column))
    if types == {str}:
        # int() strips the whitespace str.strip() does: where it succeeds, _count agrees.
        counts = list(map(int, cast("Sequence[str]", column)))
    elif types == {int}:
        counts = cast("list[int]", column)
    else:
        raise TypeError("counts of another type")
    if counts and (min(counts) < 0 or max(counts) > MAX_COUNT):
        raise ValueError("a count out of range")
    return counts


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


def _half_character(text: str) -> bool:
    """Whether a text holds a lone surrogate (JSON's "\\ud800"), which no UTF-8 encodes."""
    return not text.isascii() and _SURROGATE.search(text) is not None


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
    if _half_character(text):
        raise ValueError(f"{name} holds half of a character (a lone surrogate)")
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
    except OverflowError:  # an integer past any float
        value = math.inf
    if not math.isfinite(value) or abs(value) > 1e15:
        raise ValueError(f"amount {raw!r} is not a finite number")
    return value


_event_id = partial(_text, name="id", required=True)
_merchant_id = partial(_text, name="merchant_id", required=False)


# -- a whole column at a time ------------------------------------------------------------------


class _Bad:
    """A value a check refused, and the reason it gave."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_TEXT_OR_NONE: frozenset[type] = frozenset({str, type(None)})
_EXACT: frozenset[type] = frozenset({str, int, type(None)})


def _distinct(column: Sequence[object]) -> list[object] | None:
    """The column's distinct values, when equal values are alike to every check: text, whole
    numbers and None (1 == True == 1.0 and -0.0 == 0.0 are worded apart). None otherwise."""
    try:
        values = set(column)
    except TypeError:  # a list or an object among them
        return None
    # Text and None equal nothing else a feed holds: their distinct values show every type.
    if not set(map(type, values)) <= _TEXT_OR_NONE and not set(map(type, column)) <= _EXACT:
        return None
    return list(values)


def _each(check: Callable[[Any], object], values: Iterable[object]) -> tuple[list[Any], bool]:
    done: list[Any] = []
    refused = False
    for value in values:
        try:
            done.append(check(value))
        except ValueError as error:
            done.append(_Bad(str(error)))
            refused = True
    return done, refused


Check = Callable[[Any], object]
Many = Callable[[list[Any]], Iterable[object]] | None


def _answers(todo: list[Any], check: Check, many: Many) -> tuple[list[Any], bool]:
    """`check` of each value, a refused one as `_Bad`, and whether any was refused; `many`
    checks them all at once, faster, with the same answers, unless it meets a value it cannot
    take."""
    try:
        return list(many(todo) if many is not None else map(check, todo)), False
    except (ArithmeticError, TypeError, ValueError):  # `many` met one it cannot take
        return _each(check, todo)


def _checked(
    column: Sequence[object], check: Check, many: Many = None, *, distinct: bool = True
) -> tuple[list[Any], bool]:
    """`check` of every value, a refused one as `_Bad`; and whether any was refused. With
    `distinct`, each distinct value is checked once (where `_distinct` allows; always for
    `_Tokens`, texts or whole numbers only)."""
    if isinstance(column, _Tokens):
        done, refused = _answers(column.texts, check, many)
        return _objects(done)[column.codes].tolist(), refused
    values = _distinct(column) if distinct else None
    done, refused = _answers(list(column) if values is None else values, check, many)
    if values is None:
        return done, refused
    answers = dict(zip(values, done, strict=True))
    return list(map(answers.__getitem__, column)), refused


_NO_CODES = Coded(np.zeros(0, np.int64), np.zeros(0, dtype=object))


def _coded(
    column: Sequence[object], check: Check, many: Many = None, dtype: type = object
) -> tuple[Coded, list[Any] | None]:
    """`_checked` of a column as codes (`storage.codes`): each row's code into the checked
    values, each distinct value checked once. Where a check refused a value there are no codes
    but the checked values row by row (`_Bad` where refused), to word the reasons."""
    values: list[Any]
    if isinstance(column, _Tokens):
        values, codes = list(column.texts), column.codes
    elif (text := _texts(column)) is not None:
        values, codes = text
    else:
        distinct = _distinct(column)
        if distinct is None:
            done, refused = _checked(column, check, many, distinct=False)
            return (_NO_CODES, done) if refused else (Coded.of(_array(done, dtype)), None)
        values, index = distinct, dict(zip(distinct, range(len(distinct)), strict=True))
        codes = np.fromiter(map(index.__getitem__, column), np.int64, len(column))
    done, refused = _answers(values, check, many)
    if refused:
        return _NO_CODES, _objects(done)[codes].tolist()
    labels = Coded.of(_array(done, dtype))  # two values may check alike (" visa", "visa")
    return Coded(labels.codes[codes], labels.labels), None


def _texts(column: Sequence[object]) -> tuple[list[str], Ints] | None:
    """A column of text only: its distinct texts and each row's code into them, by pandas'
    hash table (one pass, in C); None for a column holding anything else."""
    try:
        codes, uniques = pd.factorize(_objects(column))
    except TypeError:  # a list or an object among them
        return None
    if len(codes) and codes.min() < 0:  # None or NaN, code -1
        return None
    texts = uniques.tolist()
    if not all(type(t) is str for t in texts):  # pandas takes 1 for True
        return None
    return texts, codes.astype(np.int64, copy=False)


def _objects(values: Sequence[object]) -> npt.NDArray[Any]:
    """The values as a 1-d array of objects (a tuple among them stays one object)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _array(values: Sequence[Any], dtype: type) -> npt.NDArray[Any]:
    return _objects(values) if dtype is object else np.asarray(values, dtype)


def _reasons(
    numbers: Sequence[int], stamps: Sequence[object], *checked: Sequence[object]
) -> list[tuple[int, str]]:
    """Each bad row's number and first refusal, the checks taken in the order given."""
    problems = []
    for number, stamp, *values in zip(numbers, stamps, *checked, strict=True):
        if stamp is None:
            problems.append((number, _NO_TIME))
            continue
        bad = next((v for v in values if type(v) is _Bad), None)
        if bad is not None:
            problems.append((number, bad.reason))
    return problems


# -- rows as columns ---------------------------------------------------------------------------


class _Absent:
    """What a JSON object without a field holds in that field's column."""


_ABSENT = _Absent()
# The fields that are no dimension; every other field is an extra column (merchant_id too).
_CORE = frozenset({"time", "timestamp", "status", "count", "f0_", "auth_code", "id", "amount"})


class _Tokens(Sequence[Any]):
    """A CSV column as pandas' C tokenizer reads it: its distinct texts (a count column's
    whole numbers: see `_tokenized`), and each row's code into them; its values are made only
    if they are read one by one."""

    __slots__ = ("codes", "texts")

    def __init__(self, codes: Ints, texts: list[Any]) -> None:
        self.codes, self.texts = codes, texts

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: Any) -> Any:  # a row's value, or a slice's as a list
        if isinstance(index, slice):
            return list(self)[index]
        return self.texts[int(self.codes[index])]

    def __iter__(self) -> Iterator[Any]:
        return iter(_objects(self.texts)[self.codes].tolist())


@dataclass(frozen=True, slots=True)
class _Table:
    """Rows as columns: each known field's values by row, `_ABSENT` where a row lacks the
    field (only in the `gappy` columns), the rows' numbers, and the rows refused whole."""

    numbers: Sequence[int]
    fields: Mapping[str, Sequence[object]]
    gappy: frozenset[str] = frozenset()
    refused: Sequence[tuple[int, str]] = ()
    header: bool = False  # a CSV's: a column's name is on row 1

    def get(self, name: str) -> Sequence[object]:
        """`row.get(name)` of every row."""
        column = self.fields.get(name)
        if column is None:
            return [None] * len(self.numbers)
        if name in self.gappy:
            return [None if v is _ABSENT else v for v in column]
        return column

    def either(self, name: str, other: str) -> Sequence[object]:
        """`row[name] if name in row else row.get(other)` of every row."""
        column = self.fields.get(name)
        if column is None:
            return self.get(other)
        if name not in self.gappy:
            return column
        return [o if v is _ABSENT else v for v, o in zip(column, self.get(other), strict=True)]

    def has(self, name: str) -> list[bool]:
        """Whether each row has the field."""
        column = self.fields.get(name)
        if column is None or name not in self.gappy:
            return [column is not None] * len(self.numbers)
        return [v is not _ABSENT for v in column]

    def take(self, rows: Sequence[int]) -> _Table:
        """The rows at these places."""
        return _Table(
            [self.numbers[i] for i in rows],
            {name: [column[i] for i in rows] for name, column in self.fields.items()},
            self.gappy,
        )


def _kind(event: bool, code: bool) -> str:
    return "event" if event else "code" if code else "count"


def _kinds(table: _Table) -> Iterator[tuple[str, _Table]]:
    """The table's rows by kind (`event`: with an id, `code`: with an auth_code, else
    `count`), each kind's rows in order."""
    if not {"id", "auth_code"} & table.gappy:  # each field in every row or in none: one kind
        yield _kind("id" in table.fields, "auth_code" in table.fields), table
        return
    kinds = list(map(_kind, table.has("id"), table.has("auth_code")))
    for kind in ("count", "code", "event"):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if rows:
            yield kind, table.take(rows)


# -- CSV ---------------------------------------------------------------------------------------


def _header(header: Sequence[str], where: str) -> list[str]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
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
    return names


def _empty(where: str) -> FeedError:
    return FeedError(f"{where}1: the file is empty (a CSV header is expected)", [(1, "empty")])


def _csv_table(text: str, where: str) -> _Table:
    """The rows of a CSV text, header first. Without quotes or lone carriage returns,
    `csv.reader`'s rows are the lines split at commas: when every line has the header's width,
    the columns are those of pandas' C tokenizer (a long text) or slices of one split of all
    the lines. Otherwise `csv.reader` reads it."""
    if '"' in text:
        return _read_csv(text, where)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return _read_csv(text, where)
    tokens = _tokenized(text, where) if len(text) >= TOKENIZED else None
    if tokens is not None:
        return tokens
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the newline that ends the last row
    limit = csv.field_size_limit()  # csv.reader refuses a longer field
    if len(text) >= limit and max(map(len, lines)) >= limit:
        return _read_csv(text, where)
    if not lines:
        raise _empty(where)
    names, rows = _header(lines[0].split(","), where), lines[1:]
    width = len(names)
    if set(map(str.count, rows, repeat(","))) - {width - 1}:  # a blank or ragged line
        return _read_csv(text, where)
    fields = ",".join(rows).split(",") if rows else []
    columns = [fields[i::width] for i in range(width)]
    numbers: Sequence[int] = range(2, len(rows) + 2)
    # A line of blank fields only ("  ,,") is skipped, as csv.reader's reading skips it.
    if any(not value.strip() for value in set(columns[0])):
        kept = [i for i, row in enumerate(zip(*columns, strict=True)) if any(map(str.strip, row))]
        numbers = [numbers[i] for i in kept]
        columns = [[column[i] for i in kept] for column in columns]
    return _csv_columns(names, columns, numbers)


TOKENIZED = 65_536  # characters of CSV text from which pandas' tokenizer pays for its start


def _tokenized(text: str, where: str) -> _Table | None:
    """`_csv_table`'s split, by pandas' C tokenizer: each column's distinct texts and codes,
    no string made a row. None where its reading might not be the split's (then the split
    decides): a NUL, a line of another width (the commas are counted, and a line with too many
    is refused by pandas, or if it is the first one, read with an index), a first field blank
    (a blank line is skipped), a field over csv's limit."""
    head, _, body = text.partition("\n")
    if not body or "\x00" in text:
        return None
    names = _header(head.split(","), where)
    width, lines = len(names), body.count("\n") + (not body.endswith("\n"))
    if body.count(",") != (width - 1) * lines:
        return None
    try:
        frame = _read_columns(body, width, dtype="category")
        columns = [frame[i].cat for i in range(width)]
        texts = [column.categories.tolist() for column in columns]
        # pandas makes numbers of a column of numbers: those columns are read again, as text,
        # but a count's whole numbers, which are what `_count` makes of their texts.
        counts = {i for i, name in enumerate(names) if name in ("count", "f0_")}
        numbers = [
            i
            for i, some in enumerate(texts)
            if some
            and not isinstance(some[0], str)
            and not (i in counts and all(type(n) is int for n in some))
        ]
        again = _read_columns(body, width, dtype=str, usecols=numbers) if numbers else None
    except (ValueError, UnicodeError):  # pandas' ParserError is a ValueError
        return None
    if len(frame) != lines or type(frame.index) is not pd.RangeIndex:  # a line too wide
        return None
    fields: list[Sequence[Any]] = [
        _Tokens(column.codes.to_numpy().astype(np.int64), some)
        for column, some in zip(columns, texts, strict=True)
    ]
    for i in numbers:
        fields[i] = cast("pd.DataFrame", again)[i].to_numpy(dtype=object).tolist()
    limit = csv.field_size_limit()
    distinct = [field.texts if isinstance(field, _Tokens) else set(field) for field in fields]
    if any(len(str(t)) >= limit for some in distinct for t in some):
        return None
    if any(isinstance(t, str) and not t.strip() for t in distinct[0]):  # a blank line: skipped
        return None
    return _csv_columns(names, fields, range(2, lines + 2))


def _read_columns(body: str, width: int, **how: Any) -> pd.DataFrame:
    """The lines as pandas' C parser reads them, every field as it is (no quoting, no
    missing values), each line's fields its row's columns 0 to width - 1."""
    frame: pd.DataFrame = pd.read_csv(
        io.StringIO(body),
        header=None,
        names=list(range(width)),
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=False,
        engine="c",
        low_memory=False,
        **how,
    )
    return frame


def _read_csv(text: str, where: str) -> _Table:
    """The rows as `csv.reader` reads them; a line it cannot read (a lone CR, a field over its
    limit) makes the whole batch a FeedError naming that line."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise _empty(where)
        names = _header(header, where)
        numbers, rows, refused = [], [], []
        for number, values in enumerate(reader, start=2):
            if not any(map(str.strip, values)):
                continue
            if len(values) != len(names):
                refused.append((number, f"{len(values)} fields, the header has {len(names)}"))
                continue
            numbers.append(number)
            rows.append(values)
    except csv.Error as error:
        line = max(reader.line_num, 1)
        raise FeedError(
            f"{where}{line}: not readable as CSV ({error})", [(line, str(error))]
        ) from None
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return _csv_columns(names, columns, numbers, refused)


def _csv_columns(
    names: Sequence[str],
    columns: Sequence[Sequence[str]],
    numbers: Sequence[int],
    refused: Sequence[tuple[int, str]] = (),
) -> _Table:
    index = {name: i for i, name in enumerate(names)}  # a repeated name: its last
    fields = {name: columns[i] for name, i in index.items()}
    return _Table(numbers, fields, refused=refused, header=True)


# -- JSON --------------------------------------------------------------------------------------


_NUMBERS = frozenset({"count", "f0_"})  # fields whose values a typed row takes as whole numbers


def _loads(text: str) -> object:
    """`json.loads`, by msgspec where msgspec takes the text (its values are json's, whole
    numbers of any length included). What msgspec refuses (NaN, a lone surrogate, a number
    past a float's range, bad JSON) goes to `json`, so what is accepted, the values, and each
    error's message stay json's."""
    try:
        return _ANY.decode(text)
    except (msgspec.MsgspecError, UnicodeEncodeError):
        return json.loads(text)


_ANY = msgspec.json.Decoder()


def _json_items(text: str, where: str) -> list[object]:
    try:
        document = _loads(text)
    except json.JSONDecodeError as error:
        raise FeedError(f"{where}{error.lineno}: not valid JSON ({error.msg})", []) from None
    except RecursionError:
        raise FeedError("not valid JSON: arrays or objects nested too deeply", []) from None
    except ValueError:  # Python's own limit on the digits of an integer it reads
        limit = sys.get_int_max_str_digits()
        raise FeedError(f"not valid JSON: a number has more than {limit} digits", []) from None
    return document if isinstance(document, list) else [document]


@lru_cache(maxsize=32)
def _rows_of(names: tuple[str, ...]) -> msgspec.json.Decoder[list[Any]]:
    """A decoder of an array of objects that hold these fields and no other, each a text (the
    count a whole number), read as one struct a row: made in C, no dict a row."""
    fields = [(f"f{i}", int if name in _NUMBERS else str) for i, name in enumerate(names)]
    row = msgspec.defstruct(
        "Row",
        fields,
        rename={f"f{i}": name for i, name in enumerate(names)},
        forbid_unknown_fields=True,
        gc=False,  # texts and numbers only: no cycle to collect
    )
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])  # an array's items, each left as its text
_SHAPE = [("timestamp", "status", "count")]  # the fields of the last rows read typed


def _typed(names: tuple[str, ...], text: str) -> list[Any] | None:
    """The text's rows as structs of these fields, or None where they are not all such."""
    try:
        decoder = _rows_of(names)
    except ValueError:  # a field msgspec cannot name: a quote, a backslash, a control character
        return None
    try:
        rows: list[Any] = decoder.decode(text)
    except (msgspec.MsgspecError, UnicodeEncodeError, RecursionError):
        return None
    return rows


def _typed_table(text: str) -> _Table | None:
    """The rows of a JSON array of objects alike (the same fields in each, every value a text
    and the count a whole number: what a feed sends) as columns, read straight from the text;
    None for any other text, which `_json_table` reads. The fields are tried as the last rows
    read had them, then as the first item has them."""
    names = _SHAPE[0]
    rows = _typed(names, text)
    if rows is None:
        try:
            items = _ITEMS.decode(text)
            first = _ANY.decode(items[0]) if items else None
        except (msgspec.MsgspecError, UnicodeEncodeError, RecursionError):
            return None
        if not isinstance(first, dict) or not first:
            return None
        names = tuple(first)
        rows = _typed(names, text)
        if rows is None:
            return None
        _SHAPE[0] = names
    if not rows:
        return None
    columns = zip(*map(msgspec.structs.astuple, rows), strict=True)
    return _Table(range(1, len(rows) + 1), dict(zip(names, columns, strict=True)))


def _json_table(items: list[object]) -> _Table:
    """The objects of a JSON array as columns; an item that is no object is a refused row."""
    numbers: Sequence[int] = range(1, len(items) + 1)
    refused: list[tuple[int, str]] = []
    if set(map(type, items)) != {dict}:
        objects = [isinstance(item, dict) for item in items]
        pairs = list(zip(numbers, objects, strict=True))
        refused = [(n, "a row must be a JSON object") for n, ok in pairs if not ok]
        numbers = [n for n, ok in pairs if ok]
        items = [item for item, ok in zip(items, objects, strict=True) if ok]
    rows = cast("list[dict[str, object]]", items)
    if rows:
        keys = rows[0].keys()
        if set(map(len, rows)) == {len(keys)}:  # every row with the first one's keys?
            try:
                fields = {name: list(map(itemgetter(name), rows)) for name in keys}
                return _Table(numbers, fields, refused=refused)
            except KeyError:
                pass
    names = frozenset(set().union(*rows))
    fields = {name: list(map(methodcaller("get", name, _ABSENT), rows)) for name in names}
    return _Table(numbers, fields, names, refused)


# -- the batch ---------------------------------------------------------------------------------


def _dimension(raw: object, name: str) -> str:
    return _text(raw, name, required=False) or UNKNOWN


def _identity(raw: object) -> str:
    """A dropped extra column's value, as far as telling combos apart goes (never refused)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return UNKNOWN
    text = raw.strip() if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    # A combo's key separates values with control characters: a value keeps none of its own,
    # nor a lone surrogate, which has no UTF-8 to be hashed in (json.dumps escapes both).
    odd = any(ord(c) < 32 for c in text) or _half_character(text)
    return json.dumps(text) if odd else text


@dataclass(frozen=True, slots=True)
class _Extras:
    """The table's extra columns (sorted) and the ones kept as dimensions (sorted)."""

    names: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()

    def columns(self, rows: _Table) -> tuple[list[list[Any]], bool]:
        """Each extra column's values by row (kept ones checked, `_Bad` where refused), and
        whether any was refused."""
        columns: list[list[Any]] = []
        refused = False
        for name in self.names:
            if name in self.kept:
                values, bad = _checked(rows.get(name), partial(_dimension, name=name))
                refused = refused or bad
            else:
                values = list(map(_identity, rows.get(name)))
            columns.append(values)
        return columns, refused

    def values(self, columns: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
        """The kept dimensions' values by row."""
        kept = [c for name, c in zip(self.names, columns, strict=True) if name in self.kept]
        return list(zip(*kept, strict=True)) if kept else [()] * len(columns[0])

    def keys(self, columns: Sequence[Coded]) -> ComboKeys:
        """The combo keys (`combo_columns`) of the rows of these columns (all the extra ones)."""
        return ComboKeys(COMBO_NAMES.join(map(_identity, self.names)), tuple(columns))


def _bucket_rows(
    rows: _Table, times: _TimeParser, row: type[_Row], extras: _Extras
) -> tuple[_Rows[_Row], Sequence[SliceRow], list[tuple[int, str]]]:
    """Count or code rows as their buckets (and, with extra columns, count rows' combos), or
    the bad rows' reasons."""
    stamps = rows.either("timestamp", "time")
    counts, bad_count = _checked(rows.either("count", "f0_"), _count, _counts, distinct=False)
    minute, minutes = _coded(stamps, times.minute, times.minutes, np.int64)
    name, check = ("auth_code", _auth_code) if row is AuthCodeRow else ("status", _status)
    key, keys = _coded(rows.get(name), check)
    extra: list[tuple[Coded, list[Any] | None]] = [
        _coded(rows.get(n), partial(_dimension, name=n) if n in extras.kept else _identity)
        for n in extras.names
    ]
    refused = [minutes, keys, *(bad for _, bad in extra)]
    if bad_count or any(column is not None for column in refused):
        blank: list[Any] = [None] * len(rows.numbers)
        at, code, *dimensions = [blank if c is None else c for c in refused]
        first = (code, counts, at) if row is AuthCodeRow else (counts, at, code)
        return _Rows(row, [], [], []), (), _reasons(rows.numbers, stamps, *first, *dimensions)
    summed, slices = _combos(row, minute, key, counts, extras, [c for c, _ in extra])
    return summed, slices or (), []


def _combos(
    row: type[_Row],
    minute: Coded,
    key: Coded,
    counts: list[int],
    extras: _Extras,
    extra: Sequence[Coded],
) -> tuple[_Rows[_Row], Combos | None]:
    """The rows' buckets: a bucket (or with extra columns, a combo of one) sent twice keeps
    its last count, in the place of its first; with extra columns, a bucket is the sum of its
    combos, which count rows keep (code rows sum their extra columns away). Codes throughout
    (`storage.codes`): a combo's key is made once, from its first row."""
    columns = [minute, key]
    if extra:
        combo, _ = grouped(packed(*extra))
        firsts = extras.keys([column.take(first_rows(combo)) for column in extra])
        columns.append(Coded(combo, fingerprints(firsts.names, firsts.columns)))
    groups, n = grouped(packed(*columns))
    if n == len(groups) and not extra:  # each bucket once: the rows as they came
        return _Rows(row, minute.values().tolist(), key.values().tolist(), counts), None
    first = first_rows(groups)
    last = first if n == len(groups) else last_rows(groups, n)
    sent = np.asarray(counts, np.int64)[last]
    minute, key = minute.take(first), key.take(first)
    buckets, m = grouped(packed(minute, key))
    at = first_rows(buckets)
    summed = _Rows(
        row,
        minute.values()[at].tolist(),
        key.values()[at].tolist(),
        sums(buckets, m, sent).tolist(),
    )
    if row is AuthCodeRow or not extra:
        return summed, None
    kept = [
        c.take(first) for name, c in zip(extras.names, extra, strict=True) if name in extras.kept
    ]
    keys = extras.keys([column.take(first) for column in extra])
    return summed, Combos(minute, key, columns[2].take(first), tuple(kept), sent, keys)


def _event_rows(
    rows: _Table, times: _TimeParser, extras: _Extras
) -> tuple[dict[str, EventRow], list[tuple[int, str]]]:
    """Event rows by id, the first good row of each; and the bad rows' reasons."""
    stamps = rows.either("timestamp", "time")
    ids, _ = _checked(rows.get("id"), _event_id, distinct=False)
    minutes, _ = _checked(stamps, times.minute, times.minutes)
    statuses, _ = _checked(rows.get("status"), _status)
    amounts, _ = _checked(rows.get("amount"), _amount, distinct=False)
    merchants, _ = _checked(rows.get("merchant_id"), _merchant_id)
    kept = _Extras(extras.kept, extras.kept)
    columns, _ = kept.columns(rows)
    values = kept.values(columns) if kept.names else [()] * len(ids)
    events: dict[str, EventRow] = {}
    problems = []
    for number, stamp, event_id, dims, *fields in zip(
        rows.numbers, stamps, ids, values, minutes, statuses, amounts, merchants, strict=True
    ):
        if stamp is None or type(event_id) is _Bad:
            problems.append((number, _NO_TIME if stamp is None else event_id.reason))
        elif event_id not in events:
            bad = next((v for v in (*fields, *dims) if type(v) is _Bad), None)
            if bad is not None:
                problems.append((number, bad.reason))
            else:
                minute, status, amount, merchant = fields
                events[event_id] = EventRow(event_id, minute, status, amount, merchant, dims)
    return events, problems


def _extras(table: _Table, dimensions: Sequence[str] | None, where: str) -> _Extras:
    """The table's extra columns, and those kept; FeedError for a kept one badly named, or
    more than MAX_DIMENSIONS kept."""
    names = tuple(sorted(name for name in table.fields if name not in _CORE))
    kept = tuple(n for n in names if dimensions is None or n in dimensions)
    for name in kept:
        if not DIMENSION_NAME.fullmatch(name):
            column = table.fields[name]
            holding = (n for n, v in zip(table.numbers, column, strict=True) if v is not _ABSENT)
            number = 1 if table.header else next(holding, 1)
            reason = f"column {name!r} is not a dimension name ([a-z][a-z0-9_]{{0,31}})"
            raise FeedError(f"{where}{number}: {reason}", [(number, reason)])
    if len(kept) > MAX_DIMENSIONS:
        reason = f"{len(kept)} dimension columns, at most {MAX_DIMENSIONS} (NIGHTSHIFT_DIMENSIONS)"
        raise FeedError(f"{where}1: {reason}", [(1, reason)])
    return _Extras(names, kept)


def _batch(table: _Table, times: _TimeParser, how: Reading) -> FeedBatch:
    where = how.get("where", "row ")
    extras = _extras(table, how.get("dimensions"), where)
    counts: Sequence[CountRow] = ()
    codes: Sequence[AuthCodeRow] = ()
    slices: Sequence[SliceRow] = ()
    events: dict[str, EventRow] = {}
    problems = list(table.refused)
    for kind, rows in _kinds(table):
        if kind == "event":
            events, found = _event_rows(rows, times, extras)
        elif kind == "code":
            codes, _, found = _bucket_rows(rows, times, AuthCodeRow, extras)
        else:
            counts, slices, found = _bucket_rows(rows, times, CountRow, extras)
        problems.extend(found)
    if problems:
        problems.sort()
        first_row, first_reason = problems[0]
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise FeedError(f"{where}{first_row}: {first_reason}{more}", problems)
    return FeedBatch(
        counts=counts,
        auth_codes=codes,
        events=tuple(events.values()),
        dimensions=extras.kept if slices or events else (),
        slices=slices,
    )


# -- the surface -------------------------------------------------------------------------------


class Reading(TypedDict, total=False):
    """How a text is read: `where` prefixes a row number in errors ("row ", or "path:"),
    `dimensions` names the extra columns kept as dimensions (None, the default: all)."""

    where: str
    dimensions: Sequence[str] | None


def parse_csv(text: str, *, default_date: date, tz: tzinfo, **how: Unpack[Reading]) -> FeedBatch:
    """Rows of a CSV feed (header first); row numbers are file line numbers."""
    table = _csv_table(text, how.get("where", "row "))
    return _batch(table, _TimeParser(default_date, tz), how)


def parse_json(text: str, *, default_date: date, tz: tzinfo, **how: Unpack[Reading]) -> FeedBatch:
    """A JSON object or array of objects; row numbers count array items from 1."""
    table = _typed_table(text)
    if table is None:
        table = _json_table(_json_items(text, how.get("where", "row ")))
    return _batch(table, _TimeParser(default_date, tz), how)


def load_file(
    path: Path, *, default_date: date, tz: tzinfo, dimensions: Sequence[str] | None = None
) -> FeedBatch:
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
        return parse_json(
            text, default_date=default_date, tz=tz, where=where, dimensions=dimensions
        )
    return parse_csv(text, default_date=default_date, tz=tz, where=where, dimensions=dimensions)
