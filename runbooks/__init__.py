"""Whitelisted runbooks: the YAML catalog, parameter checks, the no-shell executor, the service.

Modules: ``catalog`` (load and validate the YAML whitelist), ``params`` (parameter values and
argv templates), ``redaction`` (secrets masked in output), ``executor`` (subprocesses, process
groups, timeouts, one run per runbook), ``service`` (permissions, confirmations, audit).

Exceptions (``runbooks.errors``)::

    RunbookError
    ├── RunbookConfigError      a runbook file is invalid: one line naming the file and field
    ├── RunbookNotFound         no runbook of that name in the whitelist
    ├── RunbookDenied           not allowed: stranger, operator on a dangerous runbook,
    │                           unknown, expired or someone else's confirmation code
    ├── RunbookInvalidParams    a parameter value is unknown, missing or refused
    ├── RunbookBusy             that runbook is already running (carries who and since when)
    └── RunbookFailed           a run ended badly (raised by ``RunResult.raise_for_status``)
        ├── RunbookTimeout      a step hit its timeout and its process group was killed
        └── RunbookCancelled    someone cancelled the run
"""
