"""`status`: is the business healthy right now, in one screen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from skills.baseline import Window, recent
from skills.core import Invocation, Reply, Section, SkillContext
from skills.formatting import ago, criticos, duration, number, percent, severity_icon
from skills.incident import worst_first
from skills.notices import headline, title_of
from storage.records import AlertRecord, AnomalyRecord, IncidentRecord, IncidentView
from storage.store import Store

LATE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: datetime
    store_ok: bool
    last_minute: datetime | None
    window: Window
    open_incidents: list[IncidentView]  # worst first
    incidents_last_hour: int
    alerts: list[AlertRecord]
    last_incident: IncidentRecord | None
    missed_briefing: str | None
    broken_slices: list[AnomalyRecord]  # open findings on one slice of the feed


def take_snapshot(store: Store, now: datetime) -> Snapshot:
    """Everything `status` shows, read in one go (blocking: run it in a thread)."""
    last = store.last_minute(before=now)
    hour = store.incidents(since=now - timedelta(hours=1), limit=500)
    open_ones = [i for i in hour if i.is_open]  # `since` includes every open incident
    return Snapshot(
        now=now,
        store_ok=store.ping(),
        last_minute=last,
        window=recent(store, now),
        open_incidents=worst_first(store.incident_views(open_ones)),
        incidents_last_hour=sum(1 for i in hour if i.opened_at >= now - timedelta(hours=1)),
        alerts=store.alerts(active_only=True),
        last_incident=next(iter(store.incidents(limit=1)), None),
        missed_briefing=store.get_state("briefing_missed"),
        broken_slices=[
            a for a in store.anomalies(now - timedelta(hours=6), now, open_only=True) if a.slice
        ],
    )


def _feed_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    if snap.last_minute is None:
        return [
            ctx.tr("⚪ Feed: nenhuma transação recebida ainda", "⚪ Feed: no transactions yet"),
            ctx.tr(
                "   Próximo passo: envie o feed a POST /transactions (ou `nightshift ingest "
                "ARQUIVO`), ou veja o bot em ação com `nightshift demo`; conecte um chat e o "
                "Alertmanager (README).",
                "   Next: post the feed to POST /transactions (or `nightshift ingest FILE`), or "
                "see the bot at work with `nightshift demo`; connect a chat and Alertmanager "
                "(README).",
            ),
        ]
    late = snap.now - (snap.last_minute + timedelta(minutes=1))
    icon = "🟢" if late <= LATE_AFTER else "🔴"
    lines = [
        ctx.tr(
            f"{icon} Feed: último minuto {ago(ctx, snap.last_minute)}",
            f"{icon} Feed: last minute {ago(ctx, snap.last_minute)}",
        )
    ]
    if late > LATE_AFTER:
        lines.append(
            ctx.tr(
                f"   atrasado {duration(late, ctx.lang)}: o feed parou?",
                f"   {duration(late, ctx.lang)} late: has the feed stopped?",
            )
        )
    return lines


def _traffic_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    minutes, total = snap.window.minutes, snap.window.total
    lang = ctx.lang
    rate = number(total / minutes, lang, 1)
    normal = snap.window.normal
    if normal.days:
        normal_rate = number(normal.total / minutes, lang, 1)
        days_pt = "1 dia" if normal.days == 1 else f"{normal.days} dias"
        days_en = "1 day" if normal.days == 1 else f"{normal.days} days"
        versus = ctx.tr(
            f" (normal neste horário: {normal_rate}/min, {days_pt})",
            f" (normal at this hour: {normal_rate}/min, {days_en})",
        )
    else:
        versus = ctx.tr(" (sem histórico para comparar)", " (no history to compare yet)")
    lines = [ctx.tr(f"💳 Transações: {rate}/min", f"💳 Transactions: {rate}/min") + versus]
    approved = snap.window.totals.get("approved", 0)
    if total:
        rate_now = percent(approved / total, lang)
        normal_share = normal.share("approved")
        versus = (
            ctx.tr(
                f" (normal {percent(normal_share, lang)})",
                f" (normal {percent(normal_share, lang)})",
            )
            if normal_share is not None
            else ""
        )
        lines.append(ctx.tr(f"✅ Aprovação: {rate_now}", f"✅ Approval rate: {rate_now}") + versus)
    return lines


def _alert_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    if not snap.alerts:
        return [ctx.tr("🔕 Alertas ativos: nenhum", "🔕 Active alerts: none")]
    by_severity: dict[str, int] = {}
    for alert in snap.alerts:
        by_severity[alert.severity] = by_severity.get(alert.severity, 0) + 1
    parts = ", ".join(f"{severity_icon(s)} {n} {s}" for s, n in sorted(by_severity.items()))
    return [
        ctx.tr(
            f"🚨 Alertas ativos: {len(snap.alerts)} ({parts})",
            f"🚨 Active alerts: {len(snap.alerts)} ({parts})",
        )
    ]


def _slice_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    """A slice that broke, named even when the total looks normal."""
    return [
        "🧩 " + (a.explanation_pt if ctx.lang == "pt" else a.explanation_en)
        for a in snap.broken_slices[:3]
    ]


def _incident_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    """Incidents, not findings: one fire with several symptoms counts once."""
    open_ones = snap.open_incidents
    critical = sum(1 for v in open_ones if v.incident.severity == "critical")
    lines = [
        ctx.tr(
            f"🔥 Incidentes abertos: {len(open_ones)} ({criticos(critical)}); "
            f"{snap.incidents_last_hour} na última hora",
            f"🔥 Open incidents: {len(open_ones)} ({critical} critical); "
            f"{snap.incidents_last_hour} in the last hour",
        )
    ]
    for view in open_ones[:3]:
        i = view.incident
        care = (
            ctx.tr(f"👀 {i.acked_by}", f"👀 {i.acked_by}")
            if i.acked_by
            else ctx.tr("sem ack", "not acked")
        )
        lines.append(
            f"   #{i.id} {severity_icon(i.severity)} {headline(view, ctx.lang)} · "
            f"{ago(ctx, i.opened_at)} · {care}"
        )
    if len(open_ones) > 3:
        lines.append(ctx.tr("   … veja `incidentes`", "   … see `incidents`"))
    incident = snap.last_incident
    if incident is not None and not incident.is_open:
        state = ctx.tr("encerrado", "closed")
        title, since = title_of(incident, ctx.lang), ago(ctx, incident.opened_at)
        detail = f"#{incident.id} {title} ({state}, {since})"
        lines.append(ctx.tr(f"📋 Último incidente: {detail}", f"📋 Last incident: {detail}"))
    return lines


def _system_lines(ctx: SkillContext, snap: Snapshot) -> list[str]:
    store = ctx.tr("ok", "ok") if snap.store_ok else ctx.tr("INDISPONÍVEL", "UNREACHABLE")
    lines = [
        ctx.tr(f"🗄️ Store: {ctx.store.dialect} {store}", f"🗄️ Store: {ctx.store.dialect} {store}")
    ]
    adapters = ctx.adapters()
    if adapters:
        lines.append("💬 Chat: " + ", ".join(f"{name} {state}" for name, state in adapters))
    if snap.missed_briefing:
        lines.append(
            ctx.tr(
                f"⚠️ Briefing não enviado: {snap.missed_briefing}",
                f"⚠️ Briefing not sent: {snap.missed_briefing}",
            )
        )
    return lines


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    snap = await ctx.read(take_snapshot, ctx.store, ctx.clock.now())
    local_now = ctx.local(snap.now).strftime("%H:%M")
    troubled = (
        not snap.store_ok
        or any(v.incident.severity == "critical" or v.findings for v in snap.open_incidents)
        or any(a.severity == "critical" for a in snap.alerts)
    )
    if snap.last_minute is None and not troubled:
        # A fresh install: nothing is wrong, there is nothing yet (red is for a feed that stops).
        icon, head = "⚪", ctx.tr("Aguardando dados", "Waiting for data")
    elif (
        troubled
        or snap.last_minute is None
        or snap.now - snap.last_minute > LATE_AFTER + (timedelta(minutes=1))
    ):
        icon, head = "🔴", ctx.tr("Atenção", "Attention")
    else:
        icon, head = "🟢", ctx.tr("Tudo normal", "All normal")
    return Reply(
        title=f"{icon} nightshift · {head} · {local_now}",
        sections=(
            Section(
                lines=tuple(
                    _feed_lines(ctx, snap) + _traffic_lines(ctx, snap) + _slice_lines(ctx, snap)
                )
            ),
            Section(lines=tuple(_incident_lines(ctx, snap) + _alert_lines(ctx, snap))),
            Section(lines=tuple(_system_lines(ctx, snap))),
        ),
    )
