"""The known incidents of tests/data (see LABELS.md there), in local time of the files."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from detector.evaluation import Incident

TZ = ZoneInfo("America/Sao_Paulo")
T1_DAY = date(2025, 1, 1)  # transactions_1.csv has no date; tests give it this one


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


_DENIED = ("denied", "approved")
_FAILED = ("failed", "backend_reversed", "approved")
_BACKEND = ("backend_reversed", "approved")

# transactions.csv: 13 injected incidents (end is the last bad minute + 1)
TRANSACTIONS = tuple(
    Incident(name, _at(a), _at(b), statuses)
    for name, a, b, statuses in [
        ("denied 07-12 17:09", "2025-07-12 17:09", "2025-07-12 17:27", _DENIED),
        ("failed 07-13 00:31", "2025-07-13 00:31", "2025-07-13 01:30", _FAILED),
        ("denied 07-13 08:48", "2025-07-13 08:48", "2025-07-13 09:18", _DENIED),
        ("denied 07-13 11:32", "2025-07-13 11:32", "2025-07-13 11:52", _DENIED),
        ("failed 07-13 16:00", "2025-07-13 16:00", "2025-07-13 16:44", _FAILED),
        ("backend 07-13 18:22", "2025-07-13 18:22", "2025-07-13 19:05", _BACKEND),
        ("denied 07-13 21:30", "2025-07-13 21:30", "2025-07-13 22:00", _DENIED),
        ("backend 07-14 03:42", "2025-07-14 03:42", "2025-07-14 04:29", _BACKEND),
        ("failed 07-14 05:15", "2025-07-14 05:15", "2025-07-14 05:45", _FAILED),
        ("denied 07-14 11:48", "2025-07-14 11:48", "2025-07-14 12:08", _DENIED),
        ("denied 07-14 14:45", "2025-07-14 14:45", "2025-07-14 15:05", _DENIED),
        ("denied 07-15 03:04", "2025-07-15 03:04", "2025-07-15 03:33", _DENIED),
        ("failed 07-15 04:29", "2025-07-15 04:29", "2025-07-15 04:47", _FAILED),
    ]
)


def _t1(hhmm: str) -> datetime:
    return datetime.combine(T1_DAY, time.fromisoformat(hhmm), tzinfo=TZ)


# transactions_1.csv: LABELS.md says "14h-18h"; the minute data shows the surge starting at 14:30
# (reversed 6 at 14:30, 122 at 14:33; `processing` appears at 14:30) and ending by 18:34.
TRANSACTIONS_1 = (
    Incident(
        "reversal surge 14:30",
        _t1("14:30"),
        _t1("18:35"),
        ("reversed", "backend_reversed", "processing"),
    ),
    Incident("approval collapse 17:01", _t1("17:01"), _t1("18:35"), ("approved",)),
)
T1_QUIET_NIGHT = (_t1("02:00"), _t1("05:00"))

# checkout hours: (file, hours that must be flagged, hours where a flag is also right)
CHECKOUT = {
    "checkout_1.csv": ({8, 9}, set[int]()),
    "checkout_2.csv": ({15, 16, 17}, {14, 18}),
}
