"""`incidente [descrição]`: open an incident record, list the open ones, or close one."""

from __future__ import annotations

import re

from skills.core import Invocation, Reply, Section, SkillContext, SkillError, normalize
from skills.formatting import ago

_CLOSE = re.compile(r"^(?:fechar|encerrar|close|resolve)\s+#?(\d+)\s*$")
MAX_TITLE = 300


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    text = args.strip()
    now = ctx.clock.now()
    close = _CLOSE.match(normalize(text))
    if close:
        number = int(close.group(1))
        record = await ctx.call(ctx.store.close_incident, number, inv.actor, now)
        if record is None:
            raise SkillError(ctx.tr(f"Incidente #{number} não existe.", f"No incident #{number}."))
        await ctx.call(
            ctx.store.record_audit, inv.actor, "incident.close", {"id": number}, "ok", now
        )
        return Reply(
            title=ctx.tr(f"✅ Incidente #{number} encerrado.", f"✅ Incident #{number} closed.")
        )
    if text:
        if len(text) > MAX_TITLE:
            raise SkillError(
                ctx.tr(
                    f"Descrição longa demais (máx. {MAX_TITLE} caracteres).",
                    f"Description too long (max {MAX_TITLE} characters).",
                )
            )
        record = await ctx.call(ctx.store.open_incident, text, inv.actor, now)
        await ctx.call(
            ctx.store.record_audit,
            inv.actor,
            "incident.open",
            {"id": record.id, "title": text},
            "ok",
            now,
        )
        return Reply(
            title=ctx.tr(
                f"📋 Incidente #{record.id} aberto: {text}",
                f"📋 Incident #{record.id} opened: {text}",
            ),
            sections=(
                Section(
                    lines=(
                        ctx.tr(
                            f"Para encerrar: `incidente fechar {record.id}`",
                            f"To close it: `incident close {record.id}`",
                        ),
                    )
                ),
            ),
        )
    open_ones = await ctx.call(lambda: ctx.store.incidents(open_only=True))
    if not open_ones:
        return Reply(
            title=ctx.tr("📋 Nenhum incidente aberto.", "📋 No open incidents."),
            sections=(
                Section(
                    lines=(
                        ctx.tr(
                            "Para abrir: `incidente <descrição>`",
                            "To open one: `incident <description>`",
                        ),
                    )
                ),
            ),
        )
    lines = tuple(f"#{i.id} {i.title} · {ago(ctx, i.opened_at)} · {i.opened_by}" for i in open_ones)
    return Reply(
        title=ctx.tr(
            f"📋 Incidentes abertos: {len(open_ones)}", f"📋 Open incidents: {len(open_ones)}"
        ),
        sections=(Section(lines=lines),),
    )
