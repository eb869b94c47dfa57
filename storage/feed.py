"""Transaction feed formats: CSV and JSON rows parsed and validated into a FeedBatch.

A batch is all-or-nothing: any bad row makes `FeedError` with every bad row listed, and nothing
of it is stored. Three kinds of rows share one feed:

- count rows: `time`/`timestamp`, `status`, `count` (CloudWalk exports call it `f0_`);
- authorization-code rows: `timestamp`, `auth_code`, `count`;
- event rows: `id`, `timestamp`, `status`, optional `amount`, `merchant_id`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path

import pandas as pd

MAX_TEXT = 128
MAX_STATUS = 32
MAX_COUNT = 10**12
_HOUR_MINUTE = re.compile(r"^\s*(\d{1,2})h\s*(\d{1,2})\s*$")
_STATUS = re.compile(r"^[a-z0-9_\-]+$")
_AUTH_CODE = re.compile(r"^[A-Za-z0-9]{1,4}$")


class FeedError(ValueError):
    """Rows that cannot be stored; `problems` lists (row number, reason), row 1 the first."""

    def __init__(self, message: str, problems: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class CountRow:
    minute: int  # epoch seconds, UTC, on a minute boundary
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class AuthCodeRow:
    minute: int
    auth_code: str
    count: int


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

    counts: tuple[CountRow, ...] = ()
    auth_codes: tuple[AuthCodeRow, ...] = ()
    events: tuple[EventRow, ...] = ()

    def __len__(self) -> int:
        return len(self.counts) + len(self.auth_codes) + len(self.events)

    def counts_frame(self) -> pd.DataFrame:
        """Count rows as a frame: `minute` (UTC), `status`, `count`."""
        return _frame([(r.minute, r.status, r.count) for r in self.counts], "status")

    def auth_codes_frame(self) -> pd.DataFrame:
        """Authorization-code rows as a frame: `minute` (UTC), `auth_code`, `count`."""
        return _frame([(r.minute, r.auth_code, r.count) for r in self.auth_codes], "auth_code")


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
        seconds = int(local.astimezone(UTC).timestamp())
        return seconds - seconds % 60


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
            code = row.get("auth_code")
            code_text = str(code).strip() if isinstance(code, str | int) else ""
            if not _AUTH_CODE.match(code_text):
                raise ValueError(f"auth_code {code!r} is not a 1 to 4 character code")
            self.auth_codes[(self.times.minute(stamp), code_text)] = _count(raw_count)
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
            counts=tuple(CountRow(m, s, c) for (m, s), c in self.counts.items()),
            auth_codes=tuple(AuthCodeRow(m, a, c) for (m, a), c in self.auth_codes.items()),
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


def _csv_rows(text: str, where: str) -> Iterator[tuple[int, dict[str, object]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise FeedError(f"{where}1: the file is empty (a CSV header is expected)", [(1, "empty")])
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
    for line_number, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(names):
            yield line_number, {"__bad__": f"{len(values)} fields, the header has {len(names)}"}
            continue
        yield line_number, {n: v for n, v in zip(names, values, strict=True) if n in _KNOWN_HEADERS}


def _json_rows(text: str, where: str) -> Iterator[tuple[int, dict[str, object]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise FeedError(f"{where}{error.lineno}: not valid JSON ({error.msg})", []) from None
    items = document if isinstance(document, list) else [document]
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


def parse_csv(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """Rows of a CSV feed (header first); row numbers are file line numbers."""
    times = _TimeParser(default_date, tz)
    return _collect(_csv_rows(text, where), times).batch(where)


def parse_json(text: str, *, default_date: date, tz: tzinfo, where: str = "row ") -> FeedBatch:
    """A JSON object or array of objects; row numbers count array items from 1."""
    times = _TimeParser(default_date, tz)
    return _collect(_json_rows(text, where), times).batch(where)


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
