"""`runbook`, `confirmar`, `cancelar`: whitelisted runbooks from chat, step by step, audited."""

from __future__ import annotations

import json
import shlex
from datetime import timedelta

from runbooks.catalog import Plan, Runbook
from runbooks.errors import (
    RunbookBusy,
    RunbookDenied,
    RunbookError,
    RunbookInvalidParams,
    RunbookNotFound,
)
from runbooks.executor import RunEvent, RunResult, StepResult
from runbooks.service import PendingConfirmation, RunbookService
from skills.core import (
    Button,
    Invocation,
    Reply,
    Section,
    SkillContext,
    SkillError,
    SkillRefused,
    normalize,
)
from skills.formatting import ago, clock, duration, number

HISTORY_WORDS = frozenset({"historico", "history", "hist"})
DRY_RUN_FLAGS = frozenset({"--dry-run", "--dryrun", "--simular", "--simulate"})
HELP_WORDS = frozenset({"?", "ajuda", "help", "--help", "-h"})
HISTORY_LIMIT = 10
TAIL_LINES = 10
INCREMENTAL_PLATFORMS = frozenset({"console", "shell"})  # terminals print lines as they come

_STATUS_MARK = {
    "ok": "✅",
    "failed": "❌",
    "timeout": "⏱️",
    "cancelled": "⛔",
    "error": "❌",
}


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`runbook` lists; `runbook historico`; `runbook NOME [k=v ...] [--dry-run]` runs."""
    service = _service(ctx)
    words = args.split()
    if not words:
        return _catalog_reply(service, ctx)
    if normalize(words[0]) in HISTORY_WORDS:
        return await _history_reply(ctx)
    name = words[0].casefold()
    rest = args.split(None, 1)[1] if len(words) > 1 else ""
    tokens = _tokens(rest)
    if any(normalize(t) in HELP_WORDS for t in tokens):
        return _details_reply(_get(service, name, ctx), ctx)
    dry_run = any(t.casefold() in DRY_RUN_FLAGS for t in tokens)
    tokens = [t for t in tokens if t.casefold() not in DRY_RUN_FLAGS]
    try:
        outcome = await service.request(inv.actor, ctx.role, name, tokens, dry_run=dry_run)
    except RunbookError as error:
        raise _translated(error, service, ctx, name) from None
    if isinstance(outcome, PendingConfirmation):
        return _confirmation_reply(outcome, ctx)
    if dry_run:
        return _dry_run_reply(outcome, ctx)
    return await _execute(inv, outcome, service, ctx)


async def confirm(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`confirmar CODE`: run the dangerous runbook this code stands for."""
    service = _service(ctx)
    code = args.strip()
    if not code:
        raise SkillError(ctx.tr("Use `confirmar <código>`.", "Use `confirm <code>`."))
    try:
        plan = await service.confirm(inv.actor, ctx.role, code)
    except RunbookError as error:
        raise _translated(error, service, ctx) from None
    return await _execute(inv, plan, service, ctx)


async def cancel(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`cancelar [NOME|CÓDIGO]`: stop a run in progress, or drop a pending confirmation."""
    service = _service(ctx)
    target = args.strip()
    names = {r.name for r in service.runbooks()}
    running = {r.runbook for r in service.running()}
    if target and target.casefold() not in names:
        dropped = await service.discard_pending(inv.actor, target)
        if dropped:
            return Reply(title=ctx.tr("🗑️ Confirmação descartada.", "🗑️ Confirmation dropped."))
        raise SkillError(
            ctx.tr(
                f"Nada a cancelar com `{_cut(target)}`.", f"Nothing to cancel by `{_cut(target)}`."
            )
        )
    if not target and not running:
        dropped = await service.discard_pending(inv.actor)
        if dropped:
            return Reply(title=ctx.tr("🗑️ Confirmação descartada.", "🗑️ Confirmation dropped."))
        raise SkillError(ctx.tr("Nenhum runbook em execução.", "No runbook is running."))
    if target and target.casefold() not in running:
        raise SkillError(
            ctx.tr(
                f"`{target.casefold()}` não está em execução.",
                f"`{target.casefold()}` is not running.",
            )
        )
    if not target and len(running) > 1:
        listed = ", ".join(sorted(running))
        raise SkillError(
            ctx.tr(
                f"Há vários em execução ({listed}): `cancelar NOME`.",
                f"Several are running ({listed}): `cancel NAME`.",
            )
        )
    try:
        info = await service.cancel(inv.actor, ctx.role, target.casefold() or None)
    except RunbookError as error:
        raise _translated(error, service, ctx) from None
    since = ago(ctx, info.started_at)
    return Reply(
        title=ctx.tr(
            f"⛔ Cancelando `{info.runbook}` (iniciado por {info.actor} {since}).",
            f"⛔ Cancelling `{info.runbook}` (started by {info.actor} {since}).",
        )
    )


# -- running, with progress ------------------------------------------------------------------


class _Progress:
    """Turns executor events into one edited message, or into lines on a terminal."""

    def __init__(self, inv: Invocation, plan: Plan, ctx: SkillContext) -> None:
        self.ctx = ctx
        self.plan = plan
        self.incremental = inv.platform in INCREMENTAL_PLATFORMS
        self.states: list[str] = ["pending"] * len(plan.argvs)
        self.results: dict[int, StepResult] = {}

    def step_line(self, index: int) -> str:
        step = self.plan.runbook.steps[index]
        head = f"[{index + 1}/{len(self.states)}] {step.name}…"
        state = self.states[index]
        if state == "pending":
            return f"{head}"
        if state == "running":
            return f"{head} ⏳"
        result = self.results[index]
        return f"{head} {_STATUS_MARK[result.status]}{_step_note(result, self.ctx)}"

    def lines(self) -> tuple[str, ...]:
        return tuple(self.step_line(i) for i in range(len(self.states)))

    async def __call__(self, event: RunEvent) -> None:
        sink = self.ctx.progress
        if event.kind == "step_started":
            self.states[event.index] = "running"
        elif event.kind == "step_finished" and event.result is not None:
            self.states[event.index] = event.result.status
            self.results[event.index] = event.result
        if sink is None:
            return
        if self.incremental:
            text = f"    {event.line}" if event.kind == "output" else self.step_line(event.index)
            await sink.update(Reply(title=text))
        elif event.kind != "output":  # one edit per step change: chat APIs rate-limit edits
            title = self.ctx.tr(
                f"▶️ Executando `{self.plan.runbook.name}`",
                f"▶️ Running `{self.plan.runbook.name}`",
            )
            await sink.update(Reply(title=title, sections=(Section(lines=self.lines()),)))


async def _execute(
    inv: Invocation, plan: Plan, service: RunbookService, ctx: SkillContext
) -> Reply:
    progress = _Progress(inv, plan, ctx)
    try:
        result = await service.execute(plan, inv.actor, progress)
    except RunbookError as error:
        raise _translated(error, service, ctx) from None
    return _summary(result, progress, ctx)


def _summary(result: RunResult, progress: _Progress, ctx: SkillContext) -> Reply:
    name = result.runbook
    took = _seconds(result.seconds, ctx)
    last = result.steps[-1] if result.steps else None
    where = f"{last.index + 1}/{result.total_steps}" if last else "0"
    code = last.exit_code if last else None
    titles = {
        "ok": ctx.tr(f"✅ `{name}` concluído em {took}", f"✅ `{name}` finished in {took}"),
        "failed": ctx.tr(
            f"❌ `{name}` falhou no passo {where} (código {code}) · {took}",
            f"❌ `{name}` failed at step {where} (exit code {code}) · {took}",
        ),
        "timeout": ctx.tr(
            f"⏱️ `{name}`: tempo esgotado no passo {where}; processos encerrados · {took}",
            f"⏱️ `{name}`: step {where} timed out; its processes were killed · {took}",
        ),
        "cancelled": ctx.tr(
            f"⛔ `{name}` cancelado por {result.cancelled_by} no passo {where} · {took}",
            f"⛔ `{name}` cancelled by {result.cancelled_by} at step {where} · {took}",
        ),
        "error": ctx.tr(
            f"❌ `{name}`: o passo {where} não pôde ser iniciado · {took}",
            f"❌ `{name}`: step {where} could not be started · {took}",
        ),
    }
    sections = [Section(lines=progress.lines())]
    tail = result.output_tail[-TAIL_LINES:]
    if tail and not (progress.incremental and ctx.progress is not None):
        sections.append(
            Section(
                heading=ctx.tr("Saída (últimas linhas):", "Output (last lines):"),
                lines=tail,
                monospace=True,
            )
        )
    params = " ".join(f"{k}={v}" for k, v in result.params)
    footer = ctx.tr(
        f"Execução {result.run_id} por {result.actor}", f"Run {result.run_id} by {result.actor}"
    )
    sections.append(Section(lines=(f"{footer}" + (f" · {params}" if params else ""),)))
    return Reply(
        title=titles[result.status],
        sections=tuple(sections),
        outcome="ok" if result.ok else "error",
    )


def _step_note(result: StepResult, ctx: SkillContext) -> str:
    took = _seconds(result.seconds, ctx)
    if result.status == "ok":
        return f" ({took})"
    if result.status == "failed":
        return ctx.tr(
            f" (código {result.exit_code}, {took})", f" (exit code {result.exit_code}, {took})"
        )
    if result.status == "timeout":
        return ctx.tr(f" (tempo esgotado, {took})", f" (timed out, {took})")
    if result.status == "cancelled":
        return ctx.tr(" (cancelado)", " (cancelled)")
    return ctx.tr(" (não iniciou)", " (did not start)")


# -- replies without running -----------------------------------------------------------------


def _catalog_reply(service: RunbookService, ctx: SkillContext) -> Reply:
    lines: list[str] = []
    for runbook in service.runbooks():
        danger = ctx.tr(" ⚠️ perigoso (admin + confirmação)", " ⚠️ dangerous (admin + confirmation)")
        lines.append(
            f"• {runbook.name} — {runbook.description}" + (danger if runbook.danger else "")
        )
        if runbook.params:
            lines.append(f"    {_usage(runbook, ctx)}")
    if not lines:
        lines.append(ctx.tr("Nenhum runbook na lista.", "No runbooks in the whitelist."))
    return Reply(
        title=ctx.tr(
            f"📒 Runbooks ({len(service.runbooks())})", f"📒 Runbooks ({len(service.runbooks())})"
        ),
        sections=(
            Section(lines=tuple(lines)),
            Section(
                lines=(
                    ctx.tr(
                        "Executar: `runbook NOME k=v` · simular: `--dry-run` · "
                        "detalhes: `runbook NOME ?` · últimas execuções: `runbook historico` · "
                        "parar: `cancelar`",
                        "Run: `runbook NAME k=v` · simulate: `--dry-run` · "
                        "details: `runbook NAME ?` · last runs: `runbook history` · "
                        "stop: `cancel`",
                    ),
                )
            ),
        ),
    )


def _details_reply(runbook: Runbook, ctx: SkillContext) -> Reply:
    lines = [runbook.description] if runbook.description else []
    if runbook.danger:
        lines.append(
            ctx.tr(
                "⚠️ Perigoso: só administradores, com confirmação.",
                "⚠️ Dangerous: admins only, with a confirmation.",
            )
        )
    lines.append(
        ctx.tr("Uso: ", "Usage: ") + f"runbook {runbook.name} {_usage(runbook, ctx)}".strip()
    )
    total = len(runbook.steps)
    steps = tuple(
        f"[{i + 1}/{total}] {step.name} · {step.program} · ≤ {_seconds(step.timeout, ctx)}"
        for i, step in enumerate(runbook.steps)
    )
    return Reply(
        title=f"📒 {runbook.name}",
        sections=(
            Section(lines=tuple(lines)),
            Section(heading=ctx.tr("Passos:", "Steps:"), lines=steps),
        ),
    )


def _dry_run_reply(plan: Plan, ctx: SkillContext) -> Reply:
    return Reply(
        title=ctx.tr(
            f"🧪 Simulação de `{plan.runbook.name}`: nada foi executado",
            f"🧪 Dry run of `{plan.runbook.name}`: nothing was run",
        ),
        sections=(
            Section(
                heading=ctx.tr(
                    "Comandos exatos (argv, sem shell):", "Exact commands (argv, no shell):"
                ),
                lines=_argv_lines(plan),
                monospace=True,
            ),
        ),
    )


def _confirmation_reply(pending: PendingConfirmation, ctx: SkillContext) -> Reply:
    plan = pending.plan
    until = clock(ctx, pending.expires_at)
    return Reply(
        title=ctx.tr(
            f"⚠️ `{plan.runbook.name}` é perigoso: confirme até {until}",
            f"⚠️ `{plan.runbook.name}` is dangerous: confirm by {until}",
        ),
        sections=(
            Section(
                heading=ctx.tr("Vai executar exatamente:", "It will run exactly:"),
                lines=_argv_lines(plan),
                monospace=True,
            ),
            Section(
                lines=(
                    ctx.tr(
                        f"Para confirmar: `confirmar {pending.code}` "
                        "(vale 2 minutos, só para você).",
                        f"To confirm: `confirm {pending.code}` (valid 2 minutes, only for you).",
                    ),
                )
            ),
        ),
        buttons=(
            Button(ctx.tr("Confirmar", "Confirm"), f"confirmar {pending.code}", "danger"),
            Button(ctx.tr("Cancelar", "Cancel"), f"cancelar {pending.code}"),
        ),
    )


async def _history_reply(ctx: SkillContext) -> Reply:
    entries = await ctx.call(ctx.store.audit_entries, "runbook.result", HISTORY_LIMIT)
    lines: list[str] = []
    for entry in entries:
        detail = entry.detail
        status = str(detail.get("status", entry.outcome))
        seconds = detail.get("seconds")
        took = f" · {_seconds(float(seconds), ctx)}" if isinstance(seconds, int | float) else ""
        params = detail.get("params")
        shown = (
            " · " + " ".join(f"{k}={v}" for k, v in params.items())
            if isinstance(params, dict) and params
            else ""
        )
        lines.append(
            f"{clock(ctx, entry.at)} {_STATUS_MARK.get(status, '•')} {detail.get('runbook', '?')}"
            f" · {status}{took} · {entry.actor}{shown}"
        )
    if not lines:
        lines.append(ctx.tr("Nenhuma execução registrada.", "No runs recorded."))
    return Reply(
        title=ctx.tr("🗂️ Últimas execuções de runbooks", "🗂️ Last runbook runs"),
        sections=(Section(lines=tuple(lines)),),
    )


# -- small pieces ----------------------------------------------------------------------------


def _service(ctx: SkillContext) -> RunbookService:
    if ctx.runbooks is None:
        raise SkillError(ctx.tr("Runbooks não estão configurados.", "Runbooks are not configured."))
    return ctx.runbooks


def _get(service: RunbookService, name: str, ctx: SkillContext) -> Runbook:
    try:
        return service.get(name)
    except RunbookNotFound as error:
        raise _translated(error, service, ctx) from None


def _tokens(text: str) -> list[str]:
    """`k=v` words; quotes group words (`note="a b"`) but nothing else is interpreted."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _usage(runbook: Runbook, ctx: SkillContext) -> str:
    parts = []
    for param in runbook.params:
        shape = "|".join(param.choices) if param.choices else ctx.tr("valor", "value")
        part = f"{param.name}=<{shape}>"
        parts.append(f"[{part}]" if param.default is not None else part)
    return " ".join(parts)


def _argv_lines(plan: Plan) -> tuple[str, ...]:
    return tuple(json.dumps(list(argv), ensure_ascii=False) for argv in plan.argvs)


def _seconds(seconds: float, ctx: SkillContext) -> str:
    if seconds < 60:
        return f"{number(seconds, ctx.lang, 1)} s"
    return duration(timedelta(seconds=seconds), ctx.lang)


def _cut(text: str, limit: int = 40) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_PROBLEMS_PT = {
    "unknown": "parâmetro desconhecido {p}",
    "missing": "falta o parâmetro {p}",
    "empty": "{p} está vazio",
    "length": "{p} é longo demais",
    "control": "{p} tem caracteres de controle ou invisíveis",
    "dash": "{p} não pode começar com '-'",
    "choice": "{p} deve ser um de: {choices}",
    "pattern": "{p} não está no formato permitido",
    "syntax": "use nome=valor (recebi {p})",
    "duplicate": "{p} foi dado duas vezes",
    "type": "{p} deve ser texto",
}
_PROBLEMS_EN = {
    "unknown": "unknown parameter {p}",
    "missing": "missing parameter {p}",
    "empty": "{p} is empty",
    "length": "{p} is too long",
    "control": "{p} has control or invisible characters",
    "dash": "{p} may not start with '-'",
    "choice": "{p} must be one of: {choices}",
    "pattern": "{p} is not in the allowed format",
    "syntax": "use name=value (got {p})",
    "duplicate": "{p} was given twice",
    "type": "{p} must be text",
}
_DENIED = {
    "stranger": ("Você não pode executar runbooks.", "You may not run runbooks."),
    "role": (
        "Este runbook é perigoso: só administradores.",
        "This runbook is dangerous: admins only.",
    ),
    "unknown": (
        "Código de confirmação desconhecido ou já usado.",
        "Unknown or already used confirmation code.",
    ),
    "wrong_user": (
        "Este código de confirmação não é seu.",
        "This confirmation code is not yours.",
    ),
    "expired": (
        "Código de confirmação expirado: peça o runbook de novo.",
        "Confirmation code expired: ask for the runbook again.",
    ),
    "unauthorized": ("Execução não autorizada.", "Run not authorized."),
}


def _translated(
    error: RunbookError, service: RunbookService, ctx: SkillContext, name: str = ""
) -> SkillError:
    if isinstance(error, RunbookDenied):
        pt, en = _DENIED.get(error.reason, (str(error), str(error)))
        return SkillRefused(ctx.tr(pt, en))
    if isinstance(error, RunbookNotFound):
        known = ", ".join(r.name for r in service.runbooks())
        return SkillError(
            ctx.tr(
                f"Runbook `{_cut(error.name)}` não existe. Disponíveis: {known}.",
                f"No runbook `{_cut(error.name)}`. Available: {known}.",
            )
        )
    if isinstance(error, RunbookBusy):
        return SkillError(
            ctx.tr(
                f"⏳ `{error.runbook}` já está em execução: iniciado por {error.started_by} "
                f"{ago(ctx, error.started_at)}. Para parar: `cancelar {error.runbook}`.",
                f"⏳ `{error.runbook}` is already running: started by {error.started_by} "
                f"{ago(ctx, error.started_at)}. To stop it: `cancel {error.runbook}`.",
            )
        )
    if isinstance(error, RunbookInvalidParams):
        return SkillError(_params_message(error, service, ctx, name))
    return SkillError(str(error))


def _params_message(
    error: RunbookInvalidParams, service: RunbookService, ctx: SkillContext, name: str
) -> str:
    choices = ""
    usage = ""
    runbook = next((r for r in service.runbooks() if r.name == name), None)
    if runbook is not None:
        spec = next((p for p in runbook.params if p.name == error.param), None)
        if spec is not None:
            choices = ", ".join(spec.choices)
        usage = f"runbook {runbook.name} {_usage(runbook, ctx)}".strip()
    template = (_PROBLEMS_PT if ctx.lang == "pt" else _PROBLEMS_EN).get(error.problem, "{p}")
    text = template.format(p=_cut(error.param), choices=choices)
    head = ctx.tr("Parâmetros inválidos", "Invalid parameters")
    return f"{head}: {text}." + (ctx.tr(f" Uso: `{usage}`", f" Usage: `{usage}`") if usage else "")
