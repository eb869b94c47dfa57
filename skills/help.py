"""`ajuda`: the commands, generated from the skill registry itself."""

from __future__ import annotations

from skills.core import Invocation, Reply, Section, SkillContext


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    lines = []
    for skill in ctx.skills:
        if skill.access == "admin" and ctx.role != "admin":
            continue
        summary = skill.summary_pt if ctx.lang == "pt" else skill.summary_en
        aliases = ", ".join(skill.aliases[:3])
        lines.append(f"• {skill.usage} — {summary}" + (f" ({aliases})" if aliases else ""))
    return Reply(
        title=ctx.tr("🌙 nightshift · comandos", "🌙 nightshift · commands"),
        sections=(
            Section(lines=tuple(lines)),
            Section(
                lines=(
                    ctx.tr(
                        "Períodos: 30m, 2h, 1d, última hora, últimas 2 horas. "
                        "Maiúsculas e acentos tanto faz.",
                        "Periods: 30m, 2h, 1d, last hour, last 2 hours. "
                        "Case and accents don't matter.",
                    ),
                )
            ),
        ),
    )
