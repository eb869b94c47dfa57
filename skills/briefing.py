"""`briefing`/`resumo` and `passagem`/`handoff`: the shift briefing and the end-of-shift handoff."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

import pandas as pd

from skills.baseline import DAYS, Reference, reference
from skills.core import Invocation, Reply, Section, Silence, SkillContext
from skills.formatting import clock, duration, number, percent, severity_icon
from skills.incident import impact_of
from skills.notices import incident_line, title_of
from storage.records import AlertRecord, AnomalyRecord, AuditEntry, IncidentRecord, IncidentView
from storage.store import Store

DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
FOCUS = timedelta(hours=8)  # the night: the briefing looks ahead and back this far
NIGHTS = 7  # the handoff compares the night with this many previous ones
SHOWN = 6  # lines per list before "… and N more"
MERCHANT_MIN_EVENTS = 20  # a merchant needs this many events to rank by failure rate
FAILURES = ("denied", "failed")
Kind = Literal["briefing", "handoff"]


# -- what the reports read (blocking: run in a thread) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Traffic:
    """Totals per status of a window, beside the same window on previous days."""

    totals: dict[str, int]
    normal: Reference

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def approval(self) -> float | None:
        return self.totals.get("approved", 0) / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class MerchantRate:
    merchant_id: str
    failures: int
    total: int

    @property
    def rate(self) -> float:
        return self.failures / self.total


@dataclass(frozen=True, slots=True)
class BriefingData:
    now: datetime
    day: Traffic
    night: Traffic
    anomalies: list[AnomalyRecord]  # overlapping the last 24 h, newest first
    alert_counts: dict[str, int]  # "firing"/"resolved" transitions in the last 24 h
    active_alerts: list[AlertRecord]
    incidents: list[IncidentRecord]  # opened or closed in the last 24 h, or still open
    merchants: list[MerchantRate]  # in the last 8 h, worst failure rate first
    expected: list[tuple[datetime, float | None]]  # next hours (local start, median volume)


def _traffic(store: Store, start: datetime, end: datetime) -> Traffic:
    return Traffic(store.totals_by_status(start, end), reference(store, start, end))


def worst_merchants(frame: pd.DataFrame, limit: int = 3) -> list[MerchantRate]:
    """Merchants with at least MERCHANT_MIN_EVENTS events, by share of denied/failed ones."""
    if frame.empty:
        return []
    frame = frame.assign(failed=frame["count"].where(frame["status"].isin(FAILURES), 0))
    per = frame.groupby("merchant_id")[["failed", "count"]].sum()
    per = per[per["count"] >= MERCHANT_MIN_EVENTS]
    per = per.assign(rate=per["failed"] / per["count"])
    per = per[per["failed"] > 0].sort_values(["rate", "count"], ascending=[False, False])
    top = per.head(limit)
    return [
        MerchantRate(str(merchant), int(failed), int(count))
        for merchant, failed, count in zip(top.index, top["failed"], top["count"], strict=True)
    ]


Hourly = dict[datetime, dict[str, int]]  # UTC start of an hour → transactions per status


def hourly_totals(store: Store, start: datetime, end: datetime) -> Hourly:
    """Totals per status of each whole hour from `start` (UTC keys), up to `end`."""
    return store.hourly_totals(start, end)


def normal_of(
    hours: Hourly, windows: Sequence[datetime], tz: tzinfo, days: int = DAYS
) -> Reference:
    """The normal of consecutive hours: per hour, the median over the previous `days` days that
    had traffic in that hour (as `skills.baseline.reference`), summed over the hours.

    Hour by hour, a day with data for only part of the period (a store's first day, a feed
    outage) does not drag the whole period's normal down. Previous days are found on the wall
    clock: 00:00 stays 00:00 across a DST change.
    """
    totals: dict[str, float] = {}
    seen = 0
    for window in windows:
        local = window.astimezone(tz)
        per_day = [
            day
            for back in range(1, days + 1)
            if sum((day := hours.get((local - timedelta(days=back)).astimezone(UTC), {})).values())
        ]
        seen = max(seen, len(per_day))
        for status in {s for day in per_day for s in day}:
            median = statistics.median(day.get(status, 0) for day in per_day)
            totals[status] = totals.get(status, 0.0) + float(median)
    return Reference(totals=totals, days=seen)


def read_briefing(store: Store, now: datetime, tz: tzinfo) -> BriefingData:
    """Everything the briefing shows at `now`; previous days are found on the shift clock `tz`."""
    now = now.astimezone(UTC).replace(second=0, microsecond=0)
    ahead = int(FOCUS / HOUR)
    # The same hours on each previous day: the last 24 and the next 8, in one read.
    hours = hourly_totals(store, now - timedelta(days=DAYS + 1), now - DAY + FOCUS)
    past = [now - (k + 1) * HOUR for k in range(24)]
    future = [now + n * HOUR for n in range(ahead)]
    expected: list[tuple[datetime, float | None]] = []
    for window in future:
        normal = normal_of(hours, [window], tz)
        expected.append((window.astimezone(tz), normal.total if normal.days else None))
    day_start, night_start = now - DAY, now - FOCUS
    return BriefingData(
        now=now,
        day=Traffic(store.totals_by_status(day_start, now), normal_of(hours, past, tz)),
        night=Traffic(store.totals_by_status(night_start, now), normal_of(hours, past[:ahead], tz)),
        anomalies=store.anomalies(day_start, now),
        alert_counts=store.alert_counts_since(day_start),
        active_alerts=store.alerts(active_only=True),
        incidents=store.incidents(since=day_start, limit=200),
        merchants=worst_merchants(store.merchants_frame(night_start, now)),
        expected=expected,
    )


@dataclass(frozen=True, slots=True)
class Episode:
    """Something that needed a human: an alert or a detector anomaly, with its timings."""

    what: str
    severity: str
    start: datetime
    acked_at: datetime | None
    acked_by: str | None
    resolved_at: datetime | None
    is_alert: bool

    @property
    def tta(self) -> timedelta | None:
        return None if self.acked_at is None else max(self.acked_at - self.start, timedelta(0))

    @property
    def ttr(self) -> timedelta | None:
        if self.resolved_at is None:
            return None
        return max(self.resolved_at - self.start, timedelta(0))


def episodes(
    alerts: Sequence[AlertRecord], anomalies: Sequence[AnomalyRecord], lang: str
) -> list[Episode]:
    """Alerts and anomalies as episodes (the alert table keeps each alert's latest episode)."""
    out = [
        Episode(
            what=a.alertname + (f" — {a.summary}" if a.summary else ""),
            severity=a.severity,
            start=a.starts_at or a.first_received,
            acked_at=a.acked_at,
            acked_by=a.acked_by,
            resolved_at=(a.ends_at or a.changed_at) if a.status == "resolved" else None,
            is_alert=True,
        )
        for a in alerts
    ]
    out += [
        Episode(
            what=n.explanation_pt if lang == "pt" else n.explanation_en,
            severity=n.severity,
            start=n.start,
            acked_at=None,
            acked_by=None,
            resolved_at=(n.end or n.updated_at) if n.resolved else None,
            is_alert=False,
        )
        for n in anomalies
    ]
    out.sort(key=lambda e: e.start)
    return out


def mean(spans: Sequence[timedelta]) -> timedelta | None:
    """The average of the spans, or None when there are none."""
    if not spans:
        return None
    return timedelta(seconds=statistics.fmean(s.total_seconds() for s in spans))


@dataclass(frozen=True, slots=True)
class Timings:
    """MTTA and MTTR of a set of episodes, with how many each is over."""

    mtta: timedelta | None
    acked: int
    mttr: timedelta | None
    resolved: int


def timings(items: Sequence[Episode]) -> Timings:
    ttas = [t for t in (e.tta for e in items if e.is_alert) if t is not None]
    ttrs = [t for t in (e.ttr for e in items) if t is not None]
    return Timings(mean(ttas), len(ttas), mean(ttrs), len(ttrs))


@dataclass(frozen=True, slots=True)
class HandoffData:
    start: datetime
    end: datetime
    night: list[Episode]  # started in [start, end)
    previous: list[Episode]  # started in the same window on the NIGHTS previous days
    runbooks: list[AuditEntry]  # results in [start, end), oldest first
    incidents: list[IncidentRecord]  # opened or closed in the night, or still open
    worst: list[IncidentView]  # the night's incidents, costliest first
    escalations: list[tuple[int, datetime]]  # (incident, when) in the night
    judged: tuple[int, int]  # detector incidents of the night, and how many judged false
    judged_month: tuple[int, int]  # the same over the last 30 days
    active_alerts: list[AlertRecord]
    open_anomalies: list[AnomalyRecord]
    traffic: Traffic


def costliest(views: Sequence[IncidentView]) -> list[IncidentView]:
    """Incidents by what they cost (approvals lost), then severity, then how long they lasted."""

    def lasted(view: IncidentView) -> float:
        i = view.incident
        return ((i.closed_at or i.last_activity or i.opened_at) - i.opened_at).total_seconds()

    return sorted(
        views,
        key=lambda v: (-v.approvals_lost, v.incident.severity != "critical", -lasted(v)),
    )


def read_handoff(store: Store, start: datetime, end: datetime, lang: str) -> HandoffData:
    """What happened in [start, end) and the same window on the previous nights."""
    earliest = start - timedelta(days=NIGHTS)
    all_episodes = episodes(
        [
            a
            for a in store.alerts(active_only=False, limit=1000)
            if (a.starts_at or a.first_received) >= earliest
        ],
        store.anomalies(earliest, end),
        lang,
    )
    windows = [(start - timedelta(days=k), end - timedelta(days=k)) for k in range(1, NIGHTS + 1)]
    runs = [e for e in store.audit_entries("runbook.result", limit=500) if start <= e.at < end]
    incidents = [
        i
        for i in store.incidents(since=start, limit=500)
        if i.is_open or start <= i.opened_at < end or (i.closed_at and start <= i.closed_at < end)
    ]
    night_incidents = [i for i in incidents if start <= i.opened_at < end or i.is_open]
    return HandoffData(
        start=start,
        end=end,
        night=[e for e in all_episodes if start <= e.start < end],
        previous=[e for e in all_episodes if any(a <= e.start < b for a, b in windows)],
        runbooks=sorted(runs, key=lambda e: e.at),
        incidents=incidents,
        worst=costliest(store.incident_views(night_incidents)),
        escalations=[e for e in store.incident_events_since("escalated", start) if e[1] < end],
        judged=store.judged(start),
        judged_month=store.judged(end - timedelta(days=30)),
        active_alerts=store.alerts(active_only=True),
        open_anomalies=store.open_anomalies(),
        traffic=_traffic(store, start, end),
    )


# -- how the reports read ----------------------------------------------------------------------


def _more(ctx: SkillContext, lines: list[str], total: int) -> list[str]:
    if total > len(lines):
        lines.append(
            ctx.tr(f"   … e mais {total - len(lines)}", f"   … and {total - len(lines)} more")
        )
    return lines


def _versus(ctx: SkillContext, value: int, normal: Reference) -> str:
    text = number(value, ctx.lang)
    if not normal.days:
        return text + ctx.tr(" (sem histórico)", " (no history)")
    usual = normal.total
    change = f", {'+' if value >= usual else '−'}{percent(abs(value / usual - 1), ctx.lang, 0)}"
    return text + f" (normal {number(usual, ctx.lang)}{change if usual else ''})"


def _approval(ctx: SkillContext, traffic: Traffic) -> str:
    rate = traffic.approval
    if rate is None:
        return "—"
    normal = traffic.normal.share("approved")
    suffix = f" (normal {percent(normal, ctx.lang)})" if normal is not None else ""
    return percent(rate, ctx.lang) + suffix


def traffic_lines(ctx: SkillContext, windows: Sequence[tuple[str, Traffic]]) -> list[str]:
    """Volume and approval rate of each (label, traffic) window, against its normal."""
    volume = ctx.tr("💳 Transações", "💳 Transactions")
    approval = ctx.tr("✅ Aprovação", "✅ Approval rate")
    lines = [f"{volume} {label}: {_versus(ctx, t.total, t.normal)}" for label, t in windows]
    lines += [f"{approval} {label}: {_approval(ctx, t)}" for label, t in windows]
    return lines


def _anomaly_line(ctx: SkillContext, anomaly: AnomalyRecord, now: datetime) -> str:
    text = anomaly.explanation_pt if ctx.lang == "pt" else anomaly.explanation_en
    start = clock(ctx, anomaly.start, now)
    if anomaly.resolved:
        end = anomaly.end or anomaly.updated_at
        same_day = ctx.local(end).date() == ctx.local(anomaly.start).date()
        until = ctx.local(end).strftime("%H:%M") if same_day else clock(ctx, end, now)
        span = f"{start}–{until} ({duration(end - anomaly.start, ctx.lang)})"
        state = ctx.tr("✅ resolvida", "✅ resolved")
    else:
        span = ctx.tr("desde ", "since ") + f"{start} ({duration(now - anomaly.start, ctx.lang)})"
        state = ctx.tr("🔴 aberta", "🔴 open")
    return f"   {severity_icon(anomaly.severity)} {span} · {text} · {state}"


def anomaly_lines(
    ctx: SkillContext, anomalies: Sequence[AnomalyRecord], now: datetime
) -> list[str]:
    night = [a for a in anomalies if not a.resolved or (a.end or a.updated_at) >= now - FOCUS]
    open_count = sum(1 for a in anomalies if not a.resolved)
    head = ctx.tr(
        f"📈 Anomalias 24h: {len(anomalies)} ({open_count} abertas); nas últimas 8h:",
        f"📈 Anomalies 24h: {len(anomalies)} ({open_count} open); in the last 8h:",
    )
    if not anomalies:
        return [ctx.tr("📈 Anomalias 24h: nenhuma", "📈 Anomalies 24h: none")]
    if not night:
        return [head + ctx.tr(" nenhuma", " none")]
    lines = [_anomaly_line(ctx, a, now) for a in night[:SHOWN]]
    return [head, *_more(ctx, lines, len(night))]


def alert_line(ctx: SkillContext, counts: dict[str, int], active: Sequence[AlertRecord]) -> str:
    fired, resolved = counts.get("firing", 0), counts.get("resolved", 0)
    return ctx.tr(
        f"🚨 Alertas 24h: {fired} disparados, {resolved} resolvidos; {len(active)} ativos agora",
        f"🚨 Alerts 24h: {fired} fired, {resolved} resolved; {len(active)} active now",
    )


def incident_lines(
    ctx: SkillContext, incidents: Sequence[IncidentRecord], now: datetime
) -> list[str]:
    if not incidents:
        return [ctx.tr("📋 Incidentes: nenhum", "📋 Incidents: none")]
    lines = [ctx.tr("📋 Incidentes:", "📋 Incidents:")]
    for i in incidents[:SHOWN]:
        opened = clock(ctx, i.opened_at, now)
        if i.closed_at is None:
            state = ctx.tr(
                f"aberto às {opened} por {i.opened_by}", f"opened {opened} by {i.opened_by}"
            )
        else:
            closed = clock(ctx, i.closed_at, now)
            state = ctx.tr(
                f"{opened}–{closed}, encerrado por {i.closed_by}",
                f"{opened}–{closed}, closed by {i.closed_by}",
            )
        lines.append(f"   #{i.id} {title_of(i, ctx.lang)} · {state}")
    return [lines[0], *_more(ctx, lines[1:], len(incidents))]


def expiring_silences(silences: Sequence[Silence], now: datetime, until: datetime) -> list[Silence]:
    """Active silences ending in [now, until), soonest first."""
    chosen = [s for s in silences if s.state == "active" and now <= s.ends_at < until]
    return sorted(chosen, key=lambda s: s.ends_at)


async def silence_lines(ctx: SkillContext, now: datetime) -> list[str]:
    if ctx.alertmanager is None:
        return []
    try:
        silences = await ctx.alertmanager.silence_list()
    except Exception as error:  # the briefing goes out without them rather than not at all
        return [
            ctx.tr(
                f"🔇 Silêncios: Alertmanager não respondeu ({type(error).__name__})",
                f"🔇 Silences: Alertmanager did not answer ({type(error).__name__})",
            )
        ]
    expiring = expiring_silences(silences, now, now + FOCUS)
    if not expiring:
        return [ctx.tr("🔇 Nenhum silêncio expira esta noite", "🔇 No silence expires tonight")]
    lines = [ctx.tr("🔇 Silêncios que expiram esta noite:", "🔇 Silences expiring tonight:")]
    for silence in expiring[:SHOWN]:
        creator = silence.created_by
        by = ctx.tr(f" (por {creator})", f" (by {creator})") if creator else ""
        lines.append(f"   {clock(ctx, silence.ends_at, now)} · {silence.matchers}{by}")
    return lines


def merchant_lines(ctx: SkillContext, merchants: Sequence[MerchantRate]) -> list[str]:
    if not merchants:
        return []
    head = ctx.tr("🏪 Lojistas com mais falhas (8h):", "🏪 Merchants failing most (8h):")
    of = ctx.tr("de", "of")
    return [
        head,
        *(
            f"   {m.merchant_id}: {percent(m.rate, ctx.lang)} {of} {number(m.total, ctx.lang)}"
            for m in merchants
        ),
    ]


def expected_lines(
    ctx: SkillContext, expected: Sequence[tuple[datetime, float | None]]
) -> list[str]:
    return [
        f"{start.strftime('%H:%M')}  "
        + (
            number(volume, ctx.lang).rjust(8)
            if volume is not None
            else ctx.tr("sem histórico", "no history")
        )
        for start, volume in expected
    ]


def pending_lines(
    ctx: SkillContext,
    incidents: Sequence[IncidentRecord],
    alerts: Sequence[AlertRecord],
    now: datetime,
) -> list[str]:
    open_incidents = [i for i in incidents if i.closed_at is None]
    unacked = [a for a in alerts if a.status == "firing" and not a.acked_by]
    lines = [
        ctx.tr(
            f"• Incidente #{i.id} aberto: {title_of(i, ctx.lang)} "
            f"(desde {clock(ctx, i.opened_at, now)})",
            f"• Incident #{i.id} open: {title_of(i, ctx.lang)} "
            f"(since {clock(ctx, i.opened_at, now)})",
        )
        for i in open_incidents[:SHOWN]
    ]
    lines += [
        ctx.tr(
            f"• Alerta sem ack: {severity_icon(a.severity)} {a.alertname} "
            f"(desde {clock(ctx, a.starts_at or a.first_received, now)}, id {a.fingerprint[:8]})",
            f"• Unacknowledged alert: {severity_icon(a.severity)} {a.alertname} "
            f"(since {clock(ctx, a.starts_at or a.first_received, now)}, id {a.fingerprint[:8]})",
        )
        for a in unacked[:SHOWN]
    ]
    hidden = max(0, len(open_incidents) - SHOWN) + max(0, len(unacked) - SHOWN)
    if hidden:
        lines.append(ctx.tr(f"… e mais {hidden}", f"… and {hidden} more"))
    return lines or [ctx.tr("Nada pendente.", "Nothing pending.")]


def _late_line(ctx: SkillContext, scheduled: datetime | None, now: datetime) -> list[str]:
    if scheduled is None:
        return []
    due, sent = clock(ctx, scheduled, now), clock(ctx, now, now)
    return [
        ctx.tr(
            f"⏰ ATRASADO: deveria ter saído às {due}, enviado às {sent} (o bot estava fora do ar)",
            f"⏰ LATE: due at {due}, sent at {sent} (the bot was down)",
        )
    ]


async def briefing_reply(
    ctx: SkillContext, now: datetime | None = None, *, late_for: datetime | None = None
) -> Reply:
    """The shift briefing at `now` (default the clock's); `late_for` marks it late for that time."""
    now = now or ctx.clock.now()
    data = await ctx.read(read_briefing, ctx.store, now, ctx.tz)
    when = ctx.local(now).strftime("%d/%m %H:%M" if ctx.lang == "pt" else "%m-%d %H:%M")
    sections = [
        Section(lines=tuple(_late_line(ctx, late_for, now))),
        Section(
            heading=ctx.tr(
                "📊 Últimas 24h (foco nas últimas 8h)", "📊 Last 24h (last 8h in focus)"
            ),
            lines=tuple(
                traffic_lines(ctx, [("24h", data.day), ("8h", data.night)])
                + anomaly_lines(ctx, data.anomalies, now)
                + [alert_line(ctx, data.alert_counts, data.active_alerts)]
                + incident_lines(ctx, data.incidents, now)
                + await silence_lines(ctx, now)
                + merchant_lines(ctx, data.merchants)
            ),
        ),
        Section(
            heading=ctx.tr(
                "🔮 Volume esperado nas próximas 8h (mediana dos dias anteriores)",
                "🔮 Expected volume, next 8h (median of previous days)",
            ),
            lines=tuple(expected_lines(ctx, data.expected)),
            monospace=True,
        ),
        Section(
            heading=ctx.tr("📌 Pendências", "📌 Pending"),
            lines=tuple(pending_lines(ctx, data.incidents, data.active_alerts, now)),
        ),
    ]
    return Reply(
        title=ctx.tr(f"🌙 Briefing do turno · {when}", f"🌙 Shift briefing · {when}"),
        sections=tuple(s for s in sections if s.lines),
    )


def _timing(ctx: SkillContext, span: timedelta | None, n: int) -> str:
    if span is None:
        return "—"
    return f"{duration(span, ctx.lang)} (n={n})"


def timing_lines(ctx: SkillContext, night: Timings, previous: Timings) -> list[str]:
    before = ctx.tr(f"{NIGHTS} noites anteriores", f"previous {NIGHTS} nights")
    return [
        f"MTTA: {_timing(ctx, night.mtta, night.acked)} · {before}: "
        f"{_timing(ctx, previous.mtta, previous.acked)}",
        f"MTTR: {_timing(ctx, night.mttr, night.resolved)} · {before}: "
        f"{_timing(ctx, previous.mttr, previous.resolved)}",
    ]


def _episode_line(ctx: SkillContext, e: Episode, now: datetime) -> str:
    parts = [f"{severity_icon(e.severity)} {clock(ctx, e.start, now)} {e.what}"]
    if e.acked_by:
        tta = duration(e.tta or timedelta(0), ctx.lang)
        parts.append(ctx.tr(f"ack {e.acked_by} em {tta}", f"acked by {e.acked_by} in {tta}"))
    elif e.is_alert:
        parts.append(ctx.tr("sem ack", "not acked"))
    if e.ttr is not None:
        ttr = duration(e.ttr, ctx.lang)
        parts.append(ctx.tr(f"resolvido em {ttr}", f"resolved in {ttr}"))
    else:
        parts.append(ctx.tr("🔴 aberto", "🔴 open"))
    return "   " + " · ".join(parts)


def runbook_lines(ctx: SkillContext, runs: Sequence[AuditEntry], now: datetime) -> list[str]:
    if not runs:
        return [ctx.tr("🛠️ Runbooks: nenhum executado", "🛠️ Runbooks: none run")]
    lines = []
    for entry in runs[:SHOWN]:
        detail = entry.detail
        params = detail.get("params")
        shown = (
            " " + " ".join(f"{k}={v}" for k, v in params.items())
            if isinstance(params, dict) and params
            else ""
        )
        status = str(detail.get("status", entry.outcome))
        lines.append(
            f"   {clock(ctx, entry.at, now)} {detail.get('runbook', '?')}{shown} · "
            f"{entry.actor} · {status}"
        )
    return [ctx.tr("🛠️ Runbooks executados:", "🛠️ Runbooks run:"), *_more(ctx, lines, len(runs))]


def escalation_lines(
    ctx: SkillContext, escalations: Sequence[tuple[int, datetime]], now: datetime
) -> list[str]:
    if not escalations:
        return [ctx.tr("📣 Escalonamentos: nenhum", "📣 Escalations: none")]
    shown = ", ".join(f"#{i} {clock(ctx, at, now)}" for i, at in escalations[:SHOWN])
    more = len(escalations) - SHOWN
    tail = ctx.tr(f" e mais {more}", f" and {more} more") if more > 0 else ""
    return [
        ctx.tr(
            f"📣 Escalonamentos: {len(escalations)} ({shown}{tail})",
            f"📣 Escalations: {len(escalations)} ({shown}{tail})",
        )
    ]


def judgement_lines(ctx: SkillContext, night: tuple[int, int], month: tuple[int, int]) -> list[str]:
    """How many detector incidents the operators judged false: the precision they saw."""
    total, false = night
    month_total, month_false = month
    if not month_total:
        return []
    precision = percent(1 - month_false / month_total, ctx.lang, 0)
    tonight = percent(1 - false / total, ctx.lang, 0) if total else "—"
    return [
        ctx.tr(
            f"⚪ Falsos alarmes: {false} de {total} incidentes do detector (precisão {tonight}; "
            f"30 dias: {precision}, {month_false} de {month_total})",
            f"⚪ False alarms: {false} of {total} detector incidents (precision {tonight}; "
            f"30 days: {precision}, {month_false} of {month_total})",
        )
    ]


async def handoff_reply(
    ctx: SkillContext,
    now: datetime | None = None,
    *,
    since: datetime | None = None,
    late_for: datetime | None = None,
) -> Reply:
    """The end-of-shift handoff for [since, now) (default the last 8 hours)."""
    now = now or ctx.clock.now()
    start = since or now - FOCUS
    data = await ctx.read(read_handoff, ctx.store, start, now, ctx.lang)
    alerts = [e for e in data.night if e.is_alert]
    anomalies = [e for e in data.night if not e.is_alert]
    span = f"{clock(ctx, start, now)}–{clock(ctx, now, now)}"

    def listing(items: list[Episode], head_pt: str, head_en: str) -> list[str]:
        head = ctx.tr(f"{head_pt}: {len(items)}", f"{head_en}: {len(items)}")
        lines = [_episode_line(ctx, e, now) for e in items[:SHOWN]]
        return [head, *_more(ctx, lines, len(items))]

    still_open = [
        ctx.tr(
            f"🚨 {len(data.active_alerts)} alertas ativos, "
            f"{sum(1 for a in data.active_alerts if not a.acked_by)} sem ack",
            f"🚨 {len(data.active_alerts)} active alerts, "
            f"{sum(1 for a in data.active_alerts if not a.acked_by)} not acked",
        ),
        ctx.tr(
            f"📈 {len(data.open_anomalies)} anomalias abertas",
            f"📈 {len(data.open_anomalies)} open anomalies",
        ),
        *pending_lines(ctx, data.incidents, data.active_alerts, now),
    ]
    impact = await ctx.read(impact_of, ctx)
    worst = [incident_line(v, ctx.lang, ctx.tz, now, impact) for v in data.worst[:3]]
    sections = [
        Section(lines=tuple(_late_line(ctx, late_for, now))),
        Section(
            heading=ctx.tr("🔥 Os piores incidentes da noite", "🔥 The night's worst incidents"),
            lines=tuple(f"   {line}" for line in worst)
            or (ctx.tr("   Nenhum incidente.", "   No incidents."),),
        ),
        Section(
            heading=ctx.tr(f"🌒 A noite ({span})", f"🌒 The night ({span})"),
            lines=tuple(
                traffic_lines(ctx, [(span, data.traffic)])
                + listing(alerts, "🚨 Alertas", "🚨 Alerts")
                + listing(anomalies, "📈 Anomalias", "📈 Anomalies")
                + runbook_lines(ctx, data.runbooks, now)
                + incident_lines(ctx, data.incidents, now)
                + escalation_lines(ctx, data.escalations, now)
                + judgement_lines(ctx, data.judged, data.judged_month)
            ),
        ),
        Section(
            heading=ctx.tr("⏱️ Tempos de resposta", "⏱️ Response times"),
            lines=tuple(timing_lines(ctx, timings(data.night), timings(data.previous))),
        ),
        Section(heading=ctx.tr("📌 Ainda aberto", "📌 Still open"), lines=tuple(still_open)),
    ]
    when = ctx.local(now).strftime("%d/%m %H:%M" if ctx.lang == "pt" else "%m-%d %H:%M")
    return Reply(
        title=ctx.tr(f"🌅 Passagem de turno · {when}", f"🌅 Shift handoff · {when}"),
        sections=tuple(s for s in sections if s.lines),
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`briefing` / `resumo`: the shift briefing now."""
    return await briefing_reply(ctx)


async def run_handoff(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`passagem` / `handoff`: the handoff for the last 8 hours."""
    return await handoff_reply(ctx)
