"""`alertas [todos]`: the alerts that are firing, from webhooks and Alertmanager's live view."""

from __future__ import annotations

import logging

from skills.core import Invocation, Reply, Section, SkillContext, normalize
from skills.formatting import ago, severity_icon
from storage.records import AlertRecord

log = logging.getLogger(__name__)
SHOWN = 20


async def _live_state(ctx: SkillContext) -> tuple[dict[str, str], str | None]:
    """Fingerprint → Alertmanager state (`active`/`suppressed`), or a note why it is unknown."""
    if ctx.alertmanager is None:
        return {}, None
    try:
        live = await ctx.alertmanager.active_alerts()
    except Exception as error:
        log.warning("alertmanager unreachable: %s", type(error).__name__)
        return {}, ctx.tr(
            "Alertmanager não respondeu; mostrando o que chegou por webhook.",
            "Alertmanager did not answer; showing what came by webhook.",
        )
    states: dict[str, str] = {}
    for alert in live:
        status = alert.get("status")
        fingerprint = alert.get("fingerprint")
        if isinstance(fingerprint, str) and isinstance(status, dict):
            states[fingerprint] = str(status.get("state", ""))
    return states, None


def _line(ctx: SkillContext, alert: AlertRecord, states: dict[str, str]) -> str:
    since = ago(ctx, alert.starts_at or alert.first_received)
    summary = f" — {alert.summary}" if alert.summary else ""
    marks = []
    if states.get(alert.fingerprint) == "suppressed":
        marks.append(ctx.tr("🔇 silenciado", "🔇 silenced"))
    if alert.acked_by:
        marks.append(ctx.tr(f"👀 ack por {alert.acked_by}", f"👀 acked by {alert.acked_by}"))
    if alert.status == "resolved":
        marks.append(ctx.tr("✅ resolvido", "✅ resolved"))
    suffix = f" [{', '.join(marks)}]" if marks else ""
    since_word = ctx.tr("desde", "since")
    return (
        f"{severity_icon(alert.severity)} {alert.severity} · {alert.alertname}{summary} · "
        f"{since_word} {since} · id {alert.fingerprint[:8]}{suffix}"
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    everything = normalize(args) in ("todos", "all", "tudo")
    alerts = await ctx.call(lambda: ctx.store.alerts(active_only=not everything, limit=100))
    states, note = await _live_state(ctx)
    if not alerts:
        title = ctx.tr("🔕 Nenhum alerta ativo.", "🔕 No active alerts.")
        return Reply(title=title, sections=(Section(lines=(note,)),) if note else ())
    order = {"critical": 0, "warning": 1}
    alerts.sort(key=lambda a: (a.status != "firing", order.get(a.severity, 2)))
    lines = [_line(ctx, a, states) for a in alerts[:SHOWN]]
    if len(alerts) > SHOWN:
        lines.append(ctx.tr(f"… e mais {len(alerts) - SHOWN}", f"… and {len(alerts) - SHOWN} more"))
    firing = sum(1 for a in alerts if a.status == "firing")
    title = ctx.tr(f"🚨 Alertas ativos: {firing}", f"🚨 Active alerts: {firing}")
    if everything:
        title = ctx.tr(
            f"🚨 Alertas (todos): {len(alerts)}, {firing} ativos",
            f"🚨 Alerts (all): {len(alerts)}, {firing} active",
        )
    sections = [Section(lines=tuple(lines))]
    if note:
        sections.append(Section(lines=(note,)))
    return Reply(title=title, sections=tuple(sections))
