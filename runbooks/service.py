"""The runbook service: permissions, confirmation codes, dry runs, execution and its audit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from runbooks.catalog import Catalog, Plan, Runbook
from runbooks.errors import (
    RunbookBusy,
    RunbookDenied,
    RunbookError,
    RunbookInvalidParams,
    RunbookNotFound,
)
from runbooks.executor import EventCallback, Executor, RunEvent, RunningRun, RunResult
from runbooks.params import parse_assignments

logger = logging.getLogger(__name__)

Role = Literal["admin", "operator"]
CONFIRM_TTL = timedelta(minutes=2)
TICKET_TTL = timedelta(minutes=10)
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: typed on a phone at 3 a.m.
CODE_LENGTH = 6
_AUDIT_TEXT_LIMIT = 200


class AuditLog(Protocol):
    """Where every request, confirmation, step and result is recorded (the store)."""

    def record_audit(
        self,
        actor: str,
        action: str,
        detail: Mapping[str, object],
        outcome: str,
        at: datetime,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """A dangerous run waiting for `confirmar <code>` from the same admin before `expires_at`."""

    code: str
    actor: str
    plan: Plan
    expires_at: datetime


def new_code() -> str:
    """A random confirmation code, e.g. `K7QF2M`."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class RunbookService:
    """What the chat skill and the CLI hold: the catalog, the executor, confirmations, audit.

    Operators may run runbooks with `danger: false`; `danger: true` needs an admin and a
    confirmation code typed (or pressed) by that same admin within two minutes, for exactly
    the parameters shown. Anyone without a role is refused. Everything is audited.
    """

    def __init__(
        self,
        catalog: Catalog,
        executor: Executor,
        now: Callable[[], datetime],
        audit: AuditLog | None = None,
        *,
        confirm_ttl: timedelta = CONFIRM_TTL,
        code_factory: Callable[[], str] = new_code,
    ) -> None:
        self._catalog = catalog
        self._executor = executor
        self._now = now
        self._audit_log = audit
        self._confirm_ttl = confirm_ttl
        self._pending: dict[str, PendingConfirmation] = {}
        self._tickets: dict[str, tuple[str, Plan, datetime]] = {}
        self._code_factory = code_factory

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def runbooks(self) -> tuple[Runbook, ...]:
        """The whitelist, sorted by name."""
        return self._catalog.runbooks

    def get(self, name: str) -> Runbook:
        """The runbook called `name`, or `RunbookNotFound`."""
        return self._catalog.get(name)

    def running(self) -> tuple[RunningRun, ...]:
        """Runs in progress."""
        return self._executor.running()

    async def request(
        self,
        actor: str,
        role: Role | None,
        name: str,
        params: Mapping[str, str] | Sequence[str],
        *,
        dry_run: bool = False,
    ) -> Plan | PendingConfirmation:
        """Check a request to run `name` with `params` (a mapping, or `name=value` words).

        Returns the plan to show (`dry_run`), the plan to `execute`, or, for a dangerous
        runbook, a `PendingConfirmation` whose code the same admin must send to `confirm`.
        Raises `RunbookDenied`, `RunbookNotFound`, `RunbookInvalidParams` or `RunbookBusy`;
        every outcome is audited.
        """
        detail: dict[str, object] = {"runbook": _safe(name), "dry_run": dry_run}
        if isinstance(params, Mapping):
            detail["params"] = {_safe(k): _safe(v) for k, v in params.items()}
        else:
            detail["params"] = [_safe(word) for word in params]
        try:
            if role is None:
                raise RunbookDenied("not allowed to run runbooks", reason="stranger")
            if not isinstance(params, Mapping):
                params = parse_assignments(params)
                detail["params"] = {_safe(k): _safe(v) for k, v in params.items()}
            runbook = self._catalog.get(name)
            detail["danger"] = runbook.danger
            plan = runbook.plan(params)
            detail["argv"] = [list(argv) for argv in plan.argvs]
            if dry_run:
                await self._audit(actor, "runbook.request", detail, "dry_run")
                return plan
            if runbook.danger and role != "admin":
                raise RunbookDenied(
                    f"runbook {name} is dangerous: only an admin may run it", reason="role"
                )
            self._check_idle(runbook.name)
        except RunbookError as exc:
            await self._audit(actor, "runbook.request", detail, _outcome(exc), error=str(exc))
            raise
        if runbook.danger:
            pending = self._new_pending(actor, plan)
            detail["code"] = pending.code
            detail["expires_at"] = pending.expires_at.isoformat()
            await self._audit(actor, "runbook.request", detail, "needs_confirmation")
            return pending
        await self._audit(actor, "runbook.request", detail, "accepted")
        return self._authorize(actor, plan)

    async def confirm(self, actor: str, role: Role | None, code: str) -> Plan:
        """The plan a pending code stands for, ready to `execute`; the code is then used up.

        An unknown, expired or someone else's code is refused (`RunbookDenied`) and audited.
        """
        key = code.strip().upper()
        now = self._now()
        pending = self._pending.get(key)
        detail: dict[str, object] = {"code": _safe(key)}
        if pending is not None:
            detail["runbook"] = pending.plan.runbook.name
            detail["params"] = pending.plan.param_dict
        try:
            if role is None:
                raise RunbookDenied("not allowed to run runbooks", reason="stranger")
            if pending is None:
                raise RunbookDenied("unknown or already used confirmation code", reason="unknown")
            if pending.actor != actor:
                raise RunbookDenied("this confirmation code is not yours", reason="wrong_user")
            if now >= pending.expires_at:
                del self._pending[key]
                raise RunbookDenied(
                    "confirmation code expired: ask for the runbook again", reason="expired"
                )
            if role != "admin":
                raise RunbookDenied("only an admin may run this runbook", reason="role")
            self._check_idle(pending.plan.runbook.name)
        except RunbookError as exc:
            await self._audit(actor, "runbook.confirm", detail, _outcome(exc), error=str(exc))
            raise
        del self._pending[key]
        await self._audit(actor, "runbook.confirm", detail, "ok")
        return self._authorize(actor, pending.plan)

    async def execute(
        self, plan: Plan, actor: str, on_event: EventCallback | None = None
    ) -> RunResult:
        """Run an authorized plan (from `request` or `confirm`, once, by the same actor).

        Every finished step and the result are audited. Raises `RunbookDenied` for a plan
        that was not authorized, `RunbookBusy` if that runbook is running.
        """
        ticket = self._tickets.pop(plan.ticket, None) if plan.ticket else None
        detail: dict[str, object] = {"runbook": plan.runbook.name, "params": plan.param_dict}
        if ticket is None or ticket[0] != actor or ticket[1] != plan:
            await self._audit(actor, "runbook.run", detail, "refused", error="not authorized")
            raise RunbookDenied("this run was not authorized", reason="unauthorized")

        async def audited(event: RunEvent) -> None:
            if event.kind == "step_finished" and event.result is not None:
                step = event.result
                await self._audit(
                    actor,
                    "runbook.step",
                    {
                        "runbook": plan.runbook.name,
                        "run_id": event.run.run_id,
                        "step": step.index + 1,
                        "name": step.name,
                        "argv": list(step.argv),
                        "exit_code": step.exit_code,
                        "seconds": round(step.seconds, 3),
                    },
                    step.status,
                )
            if on_event is not None:
                await on_event(event)

        try:
            result = await self._executor.run(plan, actor, audited)
        except RunbookBusy as exc:
            await self._audit(actor, "runbook.run", detail, "busy", error=str(exc))
            raise
        await self._audit(
            actor,
            "runbook.result",
            {
                **detail,
                "run_id": result.run_id,
                "status": result.status,
                "exit_codes": list(result.exit_codes),
                "steps_run": len(result.steps),
                "steps_total": result.total_steps,
                "seconds": round(result.seconds, 3),
                "started_at": result.started_at.isoformat(),
                "cancelled_by": result.cancelled_by,
                "output_tail": list(result.output_tail[-5:]),
            },
            result.status,
        )
        return result

    async def cancel(self, actor: str, role: Role | None, name: str | None = None) -> RunningRun:
        """Cancel the run of `name` (or the only run in progress) and drop the actor's codes.

        Raises `RunbookDenied` (no role; an operator on a dangerous runbook) or
        `RunbookNotFound`/`RunbookError` when there is nothing (or more than one run) to cancel.
        """
        detail: dict[str, object] = {"runbook": _safe(name or "")}
        try:
            if role is None:
                raise RunbookDenied("not allowed to cancel runbooks", reason="stranger")
            running = self._executor.running()
            if name is None:
                if not running:
                    raise RunbookError("no runbook is running")
                if len(running) > 1:
                    names = ", ".join(r.runbook for r in running)
                    raise RunbookError(f"several runbooks are running ({names}): name one")
                name = running[0].runbook
                detail["runbook"] = name
            runbook = self._catalog.get(name)
            if runbook.danger and role != "admin":
                raise RunbookDenied(f"only an admin may cancel {name}", reason="role")
            info = self._executor.cancel(name, actor)
            if info is None:
                raise RunbookError(f"runbook {name} is not running")
        except RunbookError as exc:
            await self._audit(actor, "runbook.cancel", detail, _outcome(exc), error=str(exc))
            raise
        detail["run_id"] = info.run_id
        detail["started_by"] = info.actor
        await self._audit(actor, "runbook.cancel", detail, "ok")
        return info

    async def discard_pending(self, actor: str, code: str | None = None) -> int:
        """Forget the actor's pending confirmations (or just `code`); how many there were."""
        key = code.strip().upper() if code else None
        codes = [c for c, p in self._pending.items() if p.actor == actor and key in (None, c)]
        for c in codes:
            pending = self._pending.pop(c)
            await self._audit(
                actor,
                "runbook.confirm",
                {
                    "code": c,
                    "runbook": pending.plan.runbook.name,
                    "params": pending.plan.param_dict,
                },
                "discarded",
            )
        return len(codes)

    def pending_for(self, actor: str) -> tuple[PendingConfirmation, ...]:
        """The actor's confirmations still waiting (expired ones included until used)."""
        return tuple(p for p in self._pending.values() if p.actor == actor)

    def _check_idle(self, name: str) -> None:
        running = self._executor.busy(name)
        if running is not None:
            raise RunbookBusy(name, running.actor, running.started_at)

    def _new_pending(self, actor: str, plan: Plan) -> PendingConfirmation:
        now = self._now()
        for code, old in list(self._pending.items()):
            if now >= old.expires_at:
                del self._pending[code]
        code = self._code_factory()
        while code in self._pending:
            code = self._code_factory()
        pending = PendingConfirmation(code, actor, plan, now + self._confirm_ttl)
        self._pending[code] = pending
        return pending

    def _authorize(self, actor: str, plan: Plan) -> Plan:
        now = self._now()
        for ticket, (_, _, issued) in list(self._tickets.items()):
            if now - issued > TICKET_TTL:
                del self._tickets[ticket]
        authorized = dataclasses.replace(plan, ticket=secrets.token_urlsafe(16))
        self._tickets[authorized.ticket] = (actor, authorized, now)
        return authorized

    async def _audit(
        self,
        actor: str,
        action: str,
        detail: Mapping[str, object],
        outcome: str,
        *,
        error: str = "",
    ) -> None:
        logger.info("audit %s %s by %s", action, outcome, actor)
        if self._audit_log is None:
            return
        if error:
            detail = {**detail, "error": _safe(error)}
        await asyncio.to_thread(
            self._audit_log.record_audit, actor, action, detail, outcome, self._now()
        )


def _outcome(exc: RunbookError) -> str:
    if isinstance(exc, RunbookDenied):
        return "refused"
    if isinstance(exc, RunbookNotFound):
        return "not_found"
    if isinstance(exc, RunbookInvalidParams):
        return "invalid"
    if isinstance(exc, RunbookBusy):
        return "busy"
    return "error"


def _safe(text: str) -> str:
    """User text fit for the audit log: non-printables escaped (PostgreSQL refuses NUL), cut."""
    if not isinstance(text, str):
        text = repr(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text if len(text) <= _AUDIT_TEXT_LIMIT else text[:_AUDIT_TEXT_LIMIT] + "…"
