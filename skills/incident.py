"""`incidentes`, `incidente [descrição | N | fechar N]` and `falso N`: the fires of the night."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from skills.core import Invocation, Reply, Section, SkillContext, SkillError, normalize
from skills.formatting import clock, criticos
from skills.notices import (
    Impact,
    care_lines,
    group_line,
    headline,
    incident_card,
    incident_line,
    member_name,
    state_line,
)
from storage.records import SEVERITY_RANK, IncidentView, TimelineEntry

_CLOSE = re.compile(r"^(?:fechar|encerrar|close|resolve)\s+#?(\d+)\s*$")
_NUMBER = re.compile(r"^#?(\d{1,9})$")
_EXPIRY = re.compile(r"\s@\d{9,11}\s*$")
MAX_TITLE = 300
SHOWN = 15
FALSE_MUTE = timedelta(hours=1)


def impact_of(ctx: SkillContext) -> Impact:
    """Money per approval: learned from event amounts (7 days), else NIGHTSHIFT_AVG_TICKET."""
    now = ctx.clock.now()
    ticket = ctx.store.average_ticket(now - timedelta(days=7), now)
    return Impact(ticket if ticket is not None else ctx.avg_ticket, ctx.currency)


def incident_number(ctx: SkillContext, text: str) -> int | None:
    """`#12` or `12` → 12 (None if the text is not an incident number)."""
    found = _NUMBER.match(text.strip())
    return int(found.group(1)) if found else None


def worst_first(views: list[IncidentView]) -> list[IncidentView]:
    """Open before closed, critical before warning, costlier before cheaper, newer first."""
    return sorted(
        views,
        key=lambda v: (
            not v.incident.is_open,
            SEVERITY_RANK.get(v.incident.severity, 2),
            -v.approvals_lost,
            -v.incident.opened_at.timestamp(),
        ),
    )


async def _one(ctx: SkillContext, number: int, *, with_timeline: bool = False) -> IncidentView:
    view = await ctx.read(lambda: ctx.store.incident_view(number, with_timeline=with_timeline))
    if view is None:
        raise SkillError(ctx.tr(f"Incidente #{number} não existe.", f"No incident #{number}."))
    return view


def _event_line(ctx: SkillContext, entry: TimelineEntry) -> str:
    d = entry.detail
    name = member_name(str(d.get("name", "")), ctx.lang)
    count, n = d.get("count", 1), d.get("n", "?")
    targets = d.get("to")
    to = ", ".join(map(str, targets)) if isinstance(targets, list) else ""
    until = str(d.get("until", ""))
    words = {
        "opened": ctx.tr("aberto", "opened"),
        "joined": f"+{count} {name}",
        "symptom": ctx.tr(f"novo sintoma: {name}", f"new symptom: {name}"),
        "severity": ctx.tr(f"severidade → {d.get('severity')}", f"severity → {d.get('severity')}"),
        "acked": ctx.tr("reconhecido", "acknowledged"),
        "silenced": ctx.tr("silenciado", "silenced")
        + (f" → {clock(ctx, datetime.fromisoformat(until))}" if until else ""),
        "escalated": ctx.tr(f"escalado ({n}ª vez) para {to}", f"escalated (#{n}) to {to}"),
        "resolved": ctx.tr("resolvido", "resolved"),
        "closed": ctx.tr("encerrado", "closed"),
        "false": ctx.tr("julgado falso alarme", "judged a false alarm"),
    }
    what = words.get(entry.event, entry.event)
    by = "" if entry.actor == "nightshift" else f" · {entry.actor}"
    return f"{clock(ctx, entry.at)} {what}{by}"


async def show(ctx: SkillContext, number: int) -> Reply:
    """`incidente N`: the card, every member group and the timeline."""
    view = await _one(ctx, number, with_timeline=True)
    impact = await ctx.read(impact_of, ctx)
    now = ctx.clock.now()
    card = incident_card(
        view,
        ctx.lang,
        ctx.tz,
        now,
        impact=impact,
        buttons_until=now + timedelta(hours=12),
        can_silence=ctx.alertmanager is not None,
    )
    members = tuple(group_line(g, ctx.lang) for g in view.members)
    timeline = tuple(_event_line(ctx, e) for e in view.timeline)
    money = impact.line(view, ctx.lang)
    head = [state_line(view, ctx.lang, ctx.tz, now), *([money] if money else [])]
    head += care_lines(view, ctx.lang, ctx.tz, now)
    return Reply(
        title=card.title,
        sections=(
            Section(lines=tuple(head)),
            Section(heading=ctx.tr("Membros", "Members"), lines=members)
            if members
            else Section(
                lines=(ctx.tr("Sem membros (aberto à mão).", "No members (opened by hand)."),)
            ),
            Section(heading=ctx.tr("Linha do tempo", "Timeline"), lines=timeline),
        ),
        buttons=card.buttons,
    )


async def listing(ctx: SkillContext, *, open_only: bool = True) -> Reply:
    """`incidentes`: open incidents, worst first, with members, impact, ack and age."""

    def read() -> tuple[list[IncidentView], Impact]:
        found = ctx.store.incidents(open_only=open_only, limit=200)
        return worst_first(ctx.store.incident_views(found)), impact_of(ctx)

    views, impact = await ctx.read(read)
    now = ctx.clock.now()
    if not views:
        return Reply(
            title=ctx.tr("📋 Nenhum incidente aberto.", "📋 No open incidents."),
            sections=(
                Section(
                    lines=(
                        ctx.tr(
                            "Para abrir um à mão: `incidente <descrição>`",
                            "To open one by hand: `incident <description>`",
                        ),
                    )
                ),
            ),
        )
    critical = sum(1 for v in views if v.incident.severity == "critical")
    lines = [incident_line(v, ctx.lang, ctx.tz, now, impact) for v in views[:SHOWN]]
    if len(views) > SHOWN:
        more = len(views) - SHOWN
        lines.append(ctx.tr(f"… e mais {more}", f"… and {more} more"))
    return Reply(
        title=ctx.tr(
            f"🔥 Incidentes abertos: {len(views)} ({criticos(critical)})",
            f"🔥 Open incidents: {len(views)} ({critical} critical)",
        ),
        sections=(
            Section(lines=tuple(lines)),
            Section(lines=(ctx.tr("Um deles: `incidente N`", "One of them: `incident N`"),)),
        ),
    )


async def run_list(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    return await listing(ctx)


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    text = _EXPIRY.sub("", " " + args).strip()
    now = ctx.clock.now()
    close = _CLOSE.match(normalize(text))
    if close:
        closing = int(close.group(1))
        record = await ctx.call(ctx.store.close_incident, closing, inv.actor, now)
        if record is None:
            raise SkillError(
                ctx.tr(f"Incidente #{closing} não existe.", f"No incident #{closing}.")
            )
        await ctx.call(
            ctx.store.record_audit, inv.actor, "incident.close", {"id": closing}, "ok", now
        )
        return Reply(
            title=ctx.tr(f"✅ Incidente #{closing} encerrado.", f"✅ Incident #{closing} closed.")
        )
    number = incident_number(ctx, text)
    if number is not None:
        return await show(ctx, number)
    if not text:
        return await listing(ctx)
    if len(text) > MAX_TITLE:
        raise SkillError(
            ctx.tr(
                f"Descrição longa demais (máx. {MAX_TITLE} caracteres).",
                f"Description too long (max {MAX_TITLE} characters).",
            )
        )
    record = await ctx.call(ctx.store.open_incident, text, inv.actor, now, ctx.announce())
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


async def judge_false(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`falso N`: the detector was wrong; the incident resolves as false, its kinds go quiet."""
    number = incident_number(ctx, _EXPIRY.sub("", " " + args))
    if number is None:
        raise SkillError(
            ctx.tr(
                "Uso: `falso N` (o número do incidente).", "Usage: `false N` (the incident number)."
            )
        )
    view = await _one(ctx, number)
    if not view.findings:
        raise SkillError(
            ctx.tr(
                f"O incidente #{number} não veio do detector: "
                f"feche com `incidente fechar {number}`.",
                f"Incident #{number} did not come from the detector: close it with "
                f"`incident close {number}`.",
            )
        )
    if not view.incident.is_open:
        raise SkillError(
            ctx.tr(
                f"O incidente #{number} já está encerrado.",
                f"Incident #{number} is already closed.",
            )
        )
    now = ctx.clock.now()
    await ctx.call(ctx.store.judge_false, number, inv.actor, now, FALSE_MUTE)
    await ctx.call(ctx.store.record_audit, inv.actor, "incident.false", {"id": number}, "ok", now)
    kinds = ", ".join(
        f"{member_name(name, ctx.lang)} (`{name}`)"
        for name in sorted({g.name for g in view.members if g.kind == "finding"})
    )
    return Reply(
        title=ctx.tr(
            f"⚪ Incidente #{number} ({headline(view, ctx.lang)}) marcado como falso alarme.",
            f"⚪ Incident #{number} ({headline(view, ctx.lang)}) marked a false alarm.",
        ),
        sections=(
            Section(
                lines=(
                    ctx.tr(
                        f"{kinds} silenciado por 1 h; conta na passagem de turno.",
                        f"{kinds} muted for 1 h; counted in the handoff.",
                    ),
                )
            ),
        ),
    )
