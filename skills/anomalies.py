"""`anomalias [período]`: what the detector found, explained, resolved or not."""

from __future__ import annotations

from datetime import timedelta

from skills.core import Invocation, Reply, Section, SkillContext
from skills.formatting import clock, duration, number, severity_icon
from skills.periods import describe, parse_period

SHOWN = 15


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    period = parse_period(args, default=timedelta(hours=1))
    now = ctx.clock.now()
    found = await ctx.call(ctx.store.anomalies, now - period, now)
    when = describe(period, ctx.lang)
    if not found:
        return Reply(title=ctx.tr(f"✅ Nenhuma anomalia ({when}).", f"✅ No anomalies ({when})."))
    lines: list[str] = []
    for a in found[:SHOWN]:
        end = a.end or now
        state = (
            ctx.tr(f"resolvida às {clock(ctx, end, now)}", f"resolved at {clock(ctx, end, now)}")
            if a.resolved
            else ctx.tr("em andamento", "ongoing")
        )
        explanation = a.explanation_pt if ctx.lang == "pt" else a.explanation_en
        lines.append(
            f"{severity_icon(a.severity)} {clock(ctx, a.start, now)} · {a.kind} {a.metric} · "
            f"score {number(a.score, ctx.lang, 2)} · {duration(end - a.start, ctx.lang)} · {state}"
        )
        lines.append(f"   {explanation}")
    if len(found) > SHOWN:
        lines.append(ctx.tr(f"… e mais {len(found) - SHOWN}", f"… and {len(found) - SHOWN} more"))
    open_count = sum(1 for a in found if not a.resolved)
    return Reply(
        title=ctx.tr(
            f"📈 Anomalias ({when}): {len(found)}, {open_count} em andamento",
            f"📈 Anomalies ({when}): {len(found)}, {open_count} ongoing",
        ),
        sections=(Section(lines=tuple(lines)),),
    )
