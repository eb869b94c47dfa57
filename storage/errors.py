"""The storage package's exceptions, drawn here once.

::

    StorageError            the store cannot take or give data (unreachable, locked, refused, ...)
    ├── SchemaTooNew        the database was written by a newer nightshift
    └── FeedError           feed rows that cannot be stored (also a ValueError): every bad row,
                            with its number and reason, in `problems`

Every message is safe to show to an operator. Callers that treat bad input and an unavailable
store differently (a 422 and a 503) catch `FeedError` first.
"""

from __future__ import annotations

from collections.abc import Sequence


class StorageError(Exception):
    """The store could not do what was asked; the message is safe to show."""


class SchemaTooNew(StorageError):
    """The database was written by a newer nightshift than this one."""


class FeedError(StorageError, ValueError):
    """Rows that cannot be stored; `problems` lists (row number, reason), row 1 the first."""

    def __init__(self, message: str, problems: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
