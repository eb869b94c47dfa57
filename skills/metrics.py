"""`metricas [nome]`: a metric now (last 15 minutes) against the same window on previous days;
`metricas acquirer` (`metricas por adquirente`): each slice of a dimension the same way, worst
first."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from skills.baseline import DAYS, WINDOW, Window, recent
from skills.core import Invocation, Reply, Section, SkillContext, SkillError, normalize
from skills.formatting import number, percent
from storage.store import Store

_VOLUME = ("transacoes", "transactions", "volume", "tpm")
_APPROVAL = ("aprovacao", "approval", "approval rate", "taxa de aprovacao", "aprovadas")
#: Portuguese names operators type for the dimensions payment feeds carry.
DIMENSION_WORDS = {
    "adquirente": "acquirer",
    "adquirentes": "acquirer",
    "bandeira": "brand",
    "bandeiras": "brand",
    "emissor": "issuer",
    "emissores": "issuer",
    "lojista": "merchant_id",
    "lojistas": "merchant_id",
    "comerciante": "merchant_id",
    "merchant": "merchant_id",
    "regiao": "region",
    "regioes": "region",
    "metodo": "payment_method",
    "meio de pagamento": "payment_method",
}


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


@dataclass(frozen=True, slots=True)
class SliceNow:
    """One slice's last minutes by status, and the median of the same window on previous days
    (empty without history)."""

    value: str
    totals: dict[str, int]
    normal: dict[str, float]

    def approved_ratio(self) -> float:
        """Approvals now over normal (1.0 without a normal): how the worst are found."""
        normal = self.normal.get("approved", 0.0)
        return self.totals.get("approved", 0) / normal if normal else 1.0


def _by_value(
    store: Store, dimension: str, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    frame = store.slice_frame(start, end, dimension)
    out: dict[str, dict[str, int]] = {}
    for value, status, count in frame[["value", "status", "count"]].itertuples(index=False):
        by_status = out.setdefault(str(value), {})
        by_status[str(status)] = by_status.get(str(status), 0) + int(count)
    return out


def slices_now(store: Store, dimension: str, now: datetime) -> list[SliceNow]:
    """The slices of `dimension` over the last 15 minutes beside their normal, worst first."""
    end = now.replace(second=0, microsecond=0)
    start = end - WINDOW
    current = _by_value(store, dimension, start, end)
    shifts = [timedelta(days=back) for back in range(1, DAYS + 1)]
    previous = [_by_value(store, dimension, start - shift, end - shift) for shift in shifts]
    days = [day for day in previous if day]
    values = set(current) | {v for day in days for v in day}
    out = []
    for value in values:
        statuses = {s for day in days for s in day.get(value, {})}
        normal = {
            s: float(statistics.median(day.get(value, {}).get(s, 0) for day in days))
            for s in statuses
        }
        out.append(SliceNow(value, current.get(value, {}), normal))
    return sorted(out, key=lambda x: (x.approved_ratio(), -sum(x.totals.values()), x.value))


def _slice_line(
    ctx: SkillContext, dimension: str, row: SliceNow, minutes: float, typical: float
) -> str:
    """`🔴 acquirer=rede: 10,1/min (normal 59,9/min, 0,2×) · aprovação 89% (normal 89%)`; the
    icon says how its approvals moved against the median slice's (`typical`)."""
    total, normal = sum(row.totals.values()), sum(row.normal.values())
    volume = _versus(
        ctx,
        number(total / minutes, ctx.lang, 1) + "/min",
        number(normal / minutes, ctx.lang, 1) + "/min" if row.normal else None,
        total / normal if normal else None,
    )
    share = row.totals.get("approved", 0) / total if total else 0.0
    normal_share = row.normal.get("approved", 0.0) / normal if normal else None
    approval = ctx.tr("aprovação", "approval") + " " + percent(share, ctx.lang)
    if normal_share is not None:
        approval += f" (normal {percent(normal_share, ctx.lang)})"
    # Against the dimension's typical slice, so a quiet hour for everyone is not a red slice.
    relative = row.approved_ratio() / typical if typical else 1.0
    icon = "🔴" if relative < 0.5 else "🟠" if relative < 0.8 else "🟢"
    return f"{icon} {dimension}={row.value}: {volume} · {approval}"


async def _slices(ctx: SkillContext, dimension: str) -> Reply:
    rows = await ctx.read(slices_now, ctx.store, dimension, ctx.clock.now())
    minutes = WINDOW.total_seconds() / 60
    typical = statistics.median([r.approved_ratio() for r in rows]) if rows else 1.0
    lines = [_slice_line(ctx, dimension, row, minutes, typical) for row in rows[:20]]
    if len(rows) > 20:
        lines.append(ctx.tr(f"… e mais {len(rows) - 20}", f"… and {len(rows) - 20} more"))
    return Reply(
        title=ctx.tr(
            f"📊 {dimension}: fatias nos últimos 15 min vs mesmo horário nos dias anteriores",
            f"📊 {dimension}: slices over the last 15 min vs the same window on previous days",
        ),
        sections=(Section(lines=tuple(lines)),),
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    name = normalize(args)
    dimensions: tuple[str, ...] = ()
    if name and name not in _VOLUME and name not in _APPROVAL:
        dimensions = await ctx.read(ctx.store.dimension_names)
        # `acquirer`, `por adquirente`: a dimension, by its name or the word operators type
        wanted = name.removeprefix("por ").strip()
        wanted = DIMENSION_WORDS.get(wanted, wanted)
        if wanted in dimensions:
            return await _slices(ctx, wanted)
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
        known = ", ".join(["transacoes", "aprovacao", *statuses, *dimensions])
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
