"""`metricas [nome]`: a metric now (last 15 minutes) against the same window on previous days."""

from __future__ import annotations

from skills.baseline import Window, recent
from skills.core import Invocation, Reply, Section, SkillContext, SkillError, normalize
from skills.formatting import number, percent

_VOLUME = ("transacoes", "transactions", "volume", "tpm")
_APPROVAL = ("aprovacao", "approval", "approval rate", "taxa de aprovacao", "aprovadas")


def _versus(ctx: SkillContext, now_text: str, normal_text: str | None, ratio: float | None) -> str:
    if normal_text is None:
        return f"{now_text} " + ctx.tr("(sem histórico)", "(no history)")
    change = ""
    if ratio is not None:
        change = f", {number(ratio, ctx.lang, 1)}×"
    return f"{now_text} " + ctx.tr(
        f"(normal {normal_text}{change})", f"(normal {normal_text}{change})"
    )


def _volume(ctx: SkillContext, w: Window) -> str:
    minutes, total = w.minutes, w.total
    normal = w.normal.total if w.normal.days else None
    return ctx.tr("Transações/min: ", "Transactions/min: ") + _versus(
        ctx,
        number(total / minutes, ctx.lang, 1),
        None if normal is None else number(normal / minutes, ctx.lang, 1),
        None if not normal else total / normal,
    )


def _share(ctx: SkillContext, w: Window, status: str) -> str:
    total = w.total
    now_share = w.totals.get(status, 0) / total if total else 0.0
    normal = w.normal.share(status) if w.normal.days else None
    label = ctx.tr("Aprovação", "Approval rate") if status == "approved" else status
    return f"{label}: " + _versus(
        ctx,
        f"{percent(now_share, ctx.lang)} ({number(w.totals.get(status, 0), ctx.lang)})",
        None if normal is None else percent(normal, ctx.lang),
        now_share / normal if normal else None,
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    name = normalize(args)
    w = await ctx.read(recent, ctx.store, ctx.clock.now())
    statuses = sorted(set(w.totals) | set(w.normal.totals))
    if not name:
        lines = [_volume(ctx, w), _share(ctx, w, "approved")]
        lines += [_share(ctx, w, s) for s in statuses if s != "approved"]
    elif name in _VOLUME:
        lines = [_volume(ctx, w)]
    elif name in _APPROVAL:
        lines = [_share(ctx, w, "approved")]
    elif name in statuses:
        lines = [_share(ctx, w, name)]
    else:
        known = ", ".join(["transacoes", "aprovacao", *statuses])
        raise SkillError(
            ctx.tr(
                f"Métrica `{args.strip()}` desconhecida. Conheço: {known}.",
                f"Unknown metric `{args.strip()}`. I know: {known}.",
            )
        )
    return Reply(
        title=ctx.tr(
            "📊 Métricas (últimos 15 min vs mesmo horário nos dias anteriores)",
            "📊 Metrics (last 15 min vs the same window on previous days)",
        ),
        sections=(Section(lines=tuple(lines)),),
    )
