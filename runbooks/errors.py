"""The runbook exception tree (drawn in the package docstring)."""

from __future__ import annotations

from datetime import datetime


class RunbookError(Exception):
    """Anything that went wrong with a runbook; the message is one line, safe to show."""


class RunbookConfigError(RunbookError):
    """A runbook file is invalid; the message names the file and the field."""


class RunbookNotFound(RunbookError):
    """No runbook of that name in the whitelist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no runbook named {name!r}")
        self.name = name


class RunbookDenied(RunbookError):
    """The actor may not do this (role, confirmation missing, expired or not theirs)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RunbookInvalidParams(RunbookError):
    """A parameter is unknown, missing or has a refused value.

    `problem` says which rule: unknown, missing, empty, length, control, dash, choice,
    pattern, syntax (not `name=value`), duplicate, type.
    """

    def __init__(self, message: str, *, param: str, problem: str = "invalid") -> None:
        super().__init__(message)
        self.param = param
        self.problem = problem


class RunbookBusy(RunbookError):
    """The runbook is already running: who started it and when."""

    def __init__(self, runbook: str, started_by: str, started_at: datetime) -> None:
        super().__init__(
            f"runbook {runbook!r} is already running, started by {started_by} "
            f"at {started_at.isoformat(timespec='seconds')}"
        )
        self.runbook = runbook
        self.started_by = started_by
        self.started_at = started_at


class RunbookFailed(RunbookError):
    """A run ended with a failing step."""


class RunbookTimeout(RunbookFailed):
    """A step ran past its timeout; its whole process group was killed."""


class RunbookCancelled(RunbookFailed):
    """The run was cancelled on request."""
