"""`nightshift runbook list|show|run`: the runbook whitelist from the shell, audited as the user."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.app import build_runbook_service
from bot.clock import SystemClock
from bot.console import login_name
from bot.errors import CliError
from bot.settings import Settings
from runbooks.catalog import Catalog, Plan, Runbook, load_catalog
from runbooks.errors import (
    RunbookBusy,
    RunbookConfigError,
    RunbookDenied,
    RunbookError,
)
from runbooks.executor import RunEvent, StepResult
from runbooks.service import PendingConfirmation, RunbookService
from storage.store import StorageError, open_store

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 3
_MARK = {"ok": "ok", "failed": "FAILED", "timeout": "TIMEOUT", "cancelled": "CANCELLED"}


def cmd_list(args: argparse.Namespace) -> int:
    catalog = _catalog(args.settings)
    for runbook in catalog:
        danger = "  [dangerous: confirmation]" if runbook.danger else ""
        print(f"{runbook.name}{danger}\n    {runbook.description}")
        if runbook.params:
            print(f"    {_usage(runbook)}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    runbook = _runbook(_catalog(args.settings), args.name)
    print(f"{runbook.name}: {runbook.description}")
    print(f"file: {runbook.source}")
    print(f"danger: {'yes (admin + confirmation)' if runbook.danger else 'no'}")
    for param in runbook.params:
        print(f"param {param.describe()}" + (" (may start with '-')" if param.allow_dash else ""))
    if runbook.env:
        print("env: " + ", ".join(name for name, _ in runbook.env))
    if runbook.cwd is not None:
        print(f"cwd: {runbook.cwd}")
    for i, step in enumerate(runbook.steps):
        template = [
            "".join(f"{{{text}}}" if slot else text for slot, text in element.parts)
            for element in step.run
        ]
        print(f"step {i + 1}: {step.name} (timeout {step.timeout:g}s)")
        print(f"    {json.dumps(template, ensure_ascii=False)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    try:
        store = open_store(settings.database_url)
    except StorageError as error:
        raise CliError(f"NIGHTSHIFT_DATABASE_URL: {error}") from None
    try:
        try:
            service = build_runbook_service(settings, SystemClock(), store)
        except RunbookConfigError as error:
            raise CliError(str(error)) from None
        return asyncio.run(_run(service, f"shell:{login_name()}", args))
    finally:
        store.close()


async def _run(service: RunbookService, actor: str, args: argparse.Namespace) -> int:
    _runbook(service.catalog, args.name)
    try:
        outcome = await service.request(
            actor, "admin", args.name, args.params, dry_run=args.dry_run
        )
        if isinstance(outcome, PendingConfirmation):
            plan = await _confirm(service, actor, outcome, yes=args.yes)
        elif args.dry_run:
            print(f"{outcome.runbook.name}: dry run, nothing is run. Exact argv (no shell):")
            _print_argv(outcome)
            return EXIT_OK
        else:
            plan = outcome
        result = await service.execute(plan, actor, _print_event)
    except RunbookDenied as error:
        print(f"nightshift: refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except RunbookBusy as error:
        print(f"nightshift: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RunbookError as error:
        raise CliError(f"{args.name}: {error}") from None
    took = f"{result.seconds:.1f}s"
    if result.ok:
        print(f"{result.runbook}: ok in {took} (run {result.run_id})")
        return EXIT_OK
    last = result.steps[-1] if result.steps else None
    where = f" at step {last.index + 1}/{result.total_steps} ({last.name})" if last else ""
    print(f"{result.runbook}: {result.status}{where} after {took} (run {result.run_id})")
    return EXIT_FAILED


async def _confirm(
    service: RunbookService, actor: str, pending: PendingConfirmation, *, yes: bool
) -> Plan:
    print(f"{pending.plan.runbook.name} is dangerous. It will run exactly:")
    _print_argv(pending.plan)
    if yes:
        typed = pending.code
    elif sys.stdin.isatty():
        typed = await asyncio.to_thread(input, f"Type {pending.code} to confirm: ")
    else:
        await service.discard_pending(actor, pending.code)
        raise CliError(
            f"{pending.plan.runbook.name}: dangerous; type the code on a terminal or pass --yes"
        )
    return await service.confirm(actor, "admin", typed)


async def _print_event(event: RunEvent) -> None:
    head = f"[{event.index + 1}/{event.run.total_steps}] {event.step}"
    if event.kind == "step_started":
        print(f"{head} …", flush=True)
    elif event.kind == "output":
        print(f"    {event.line}", flush=True)
    elif event.result is not None:
        print(f"{head} {_result_mark(event.result)}", flush=True)


def _result_mark(result: StepResult) -> str:
    mark = _MARK.get(result.status, "ERROR")
    code = f", exit {result.exit_code}" if result.exit_code not in (0, None) else ""
    return f"{mark} ({result.seconds:.1f}s{code})"


def _print_argv(plan: Plan) -> None:
    for argv in plan.argvs:
        print(f"    {json.dumps(list(argv), ensure_ascii=False)}")


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.runbooks_dir)
    except RunbookConfigError as error:
        raise CliError(str(error)) from None


def _runbook(catalog: Catalog, name: str) -> Runbook:
    try:
        return catalog.get(name)
    except RunbookError:
        known = ", ".join(r.name for r in catalog)
        raise CliError(f"runbook {name!r} not found (known: {known})") from None


def _usage(runbook: Runbook) -> str:
    parts = []
    for param in runbook.params:
        shape = "|".join(param.choices) if param.choices else param.pattern_text
        part = f"{param.name}=<{shape}>"
        parts.append(f"[{part}]" if param.default is not None else part)
    return " ".join(parts)
