"""`alertas [todos]`: the alerts that are firing, by incident and name, from webhooks and
Alertmanager's live view (`BarsLong: 80 alertas em pay-0…pay-79`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from skills.core import Invocation, Reply, Section, SkillContext, normalize
from skills.formatting import ago, severity_icon
from storage.incidents import spread_of
from storage.records import AlertRecord

log = logging.getLogger(__name__)
SHOWN = 20


async def _live_state(ctx: SkillContext) -> tuple[Mapping[str, str], str | None]:
    """Fingerprint → Alertmanager state (`active`/`suppressed`), or a note why it is unknown."""
    if ctx.alertmanager is None:
        return {}, None
    try:
        return await ctx.alertmanager.alert_states(), None
    except Exception as error:
        log.warning("alertmanager unreachable: %s", type(error).__name__)
        return {}, ctx.tr(
            "Alertmanager não respondeu; mostrando o que chegou por webhook.",
            "Alertmanager did not answer; showing what came by webhook.",
        )


@dataclass(frozen=True, slots=True)
class _Group:
    """Alerts of one name in one incident: what `alertas` shows on one line."""

    incident: int | None
    alerts: tuple[AlertRecord, ...]

    @property
    def first(self) -> AlertRecord:
        return self.alerts[0]


def _groups(alerts: list[AlertRecord], membership: dict[str, int]) -> list[_Group]:
    by_key: dict[tuple[int | None, str, str], list[AlertRecord]] = {}
    for alert in alerts:
        key = (membership.get(alert.fingerprint), alert.alertname, alert.status)
        by_key.setdefault(key, []).append(alert)
    groups = [_Group(incident, tuple(same)) for (incident, _, _), same in by_key.items()]
    order = {"critical": 0, "warning": 1}
    groups.sort(
        key=lambda g: (
            g.first.status != "firing",
            order.get(g.first.severity, 2),
            -len(g.alerts),
            g.first.alertname,
        )
    )
    return groups


def _line(ctx: SkillContext, group: _Group, states: Mapping[str, str]) -> str:
    alert = group.first
    since = ago(ctx, min(a.starts_at or a.first_received for a in group.alerts))
    n = len(group.alerts)
    where = ""
    spread = spread_of([a.labels for a in group.alerts])
    if spread is not None:
        first, last = spread
        where = ctx.tr(" em ", " on ") + (first if first == last else f"{first}…{last}")
    count = ctx.tr(f": {n} alertas", f": {n} alerts") if n > 1 else ""
    summary = f" — {alert.summary}" if alert.summary and n == 1 else ""
    marks = []
    silenced = sum(1 for a in group.alerts if states.get(a.fingerprint) == "suppressed")
    if silenced:
        marks.append(
            ctx.tr("🔇 silenciado", "🔇 silenced")
            if silenced == n
            else ctx.tr(f"🔇 {silenced} silenciados", f"🔇 {silenced} silenced")
        )
    acked = next((a.acked_by for a in group.alerts if a.acked_by), None)
    if acked:
        marks.append(ctx.tr(f"👀 ack por {acked}", f"👀 acked by {acked}"))
    if alert.status == "resolved":
        marks.append(ctx.tr("✅ resolvido", "✅ resolved"))
    suffix = f" [{', '.join(marks)}]" if marks else ""
    head = f"#{group.incident} " if group.incident is not None else ""
    ident = f" · id {alert.fingerprint[:8]}" if n == 1 else ""
    since_word = ctx.tr("desde", "since")
    return (
        f"{head}{severity_icon(alert.severity)} {alert.severity} · {alert.alertname}{count}"
        f"{where}{summary} · {since_word} {since}{ident}{suffix}"
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    everything = normalize(args) in ("todos", "all", "tudo")

    def read() -> tuple[list[AlertRecord], dict[str, int]]:
        found = ctx.store.alerts(active_only=not everything, limit=2000)
        return found, ctx.store.incident_membership("alert", [a.fingerprint for a in found])

    alerts, membership = await ctx.read(read)
    states, note = await _live_state(ctx)
    if not alerts:
        title = ctx.tr("🔕 Nenhum alerta ativo.", "🔕 No active alerts.")
        return Reply(title=title, sections=(Section(lines=(note,)),) if note else ())
    groups = _groups(alerts, membership)
    lines = [_line(ctx, g, states) for g in groups[:SHOWN]]
    if len(groups) > SHOWN:
        hidden = sum(len(g.alerts) for g in groups[SHOWN:])
        lines.append(ctx.tr(f"… e mais {hidden} alertas", f"… and {hidden} more alerts"))
    firing = sum(1 for a in alerts if a.status == "firing")
    title = ctx.tr(f"🚨 Alertas ativos: {firing}", f"🚨 Active alerts: {firing}")
    if everything:
        title = ctx.tr(
            f"🚨 Alertas (todos): {len(alerts)}, {firing} ativos",
            f"🚨 Alerts (all): {len(alerts)}, {firing} active",
        )
    sections = [Section(lines=tuple(lines))]
    if any(g.incident is not None for g in groups):
        sections.append(
            Section(
                lines=(
                    ctx.tr("#N: o incidente (`incidente N`)", "#N: the incident (`incident N`)"),
                )
            )
        )
    if note:
        sections.append(Section(lines=(note,)))
    return Reply(title=title, sections=tuple(sections))
