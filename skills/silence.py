"""`silenciar ALVO DURAÇÃO [comentário]` and `ack ALVO`: quiet an alert or a finding kind, or
say someone is on it. The buttons under pushed alerts run these same commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from skills.core import AlertSource, Invocation, Reply, Section, SkillContext, SkillError
from skills.formatting import clock
from skills.incident import incident_number
from skills.notices import title_of
from skills.periods import parse_period
from storage.records import AlertRecord

_EXPIRY = re.compile(r"\s@(\d{9,11})\s*$")
MAX_SILENCE = timedelta(days=7)


def _expiry(ctx: SkillContext, args: str) -> str:
    """Strip a button's `@<epoch>` and refuse it if it has expired."""
    match = _EXPIRY.search(" " + args)
    if match is None:
        return args.strip()
    if datetime.fromtimestamp(int(match.group(1)), UTC) < ctx.clock.now():
        raise SkillError(
            ctx.tr(
                "Este botão expirou. Use o comando (`alertas`, depois `silenciar ALVO 1h`).",
                "This button has expired. Use the command (`alerts`, then `silence TARGET 1h`).",
            )
        )
    return (" " + args)[: match.start()].strip()


def _one_alert(ctx: SkillContext, found: list[AlertRecord], target: str) -> AlertRecord:
    if not found:
        raise SkillError(
            ctx.tr(
                f"Nenhum alerta com id ou nome `{target}`. Veja `alertas`.",
                f"No alert with id or name `{target}`. See `alerts`.",
            )
        )
    return found[0]


async def _mute_finding(ctx: SkillContext, inv: Invocation, target: str, until: datetime) -> Reply:
    kind, _, metric = target.partition(":")
    await ctx.call(ctx.store.mute, kind, metric or "*", until, ctx.clock.now())
    await ctx.call(
        ctx.store.record_audit,
        inv.actor,
        "silence.finding",
        {"target": target, "until": until.isoformat()},
        "ok",
        ctx.clock.now(),
    )
    return Reply(
        title=ctx.tr(
            f"🔇 Anomalias `{target}` silenciadas até {clock(ctx, until)}.",
            f"🔇 `{target}` anomalies silenced until {clock(ctx, until)}.",
        )
    )


def common_labels(alerts: list[AlertRecord]) -> dict[str, str]:
    """The labels every one of the alerts has, with the same value."""
    shared = dict(alerts[0].labels)
    for alert in alerts[1:]:
        shared = {k: v for k, v in shared.items() if alert.labels.get(k) == v}
    return shared


async def _create_silence(
    ctx: SkillContext,
    alertmanager: AlertSource,
    labels: dict[str, str],
    now: datetime,
    until: datetime,
    actor: str,
    comment: str,
) -> str:
    """An Alertmanager silence matching `labels` exactly; its id, or a polite refusal."""
    matchers = [
        {"name": k, "value": v, "isRegex": False, "isEqual": True}
        for k, v in sorted(labels.items())
    ]
    try:
        return await alertmanager.create_silence(matchers, now, until, actor, comment)
    except Exception as error:
        raise SkillError(
            ctx.tr(
                f"O Alertmanager recusou o silêncio: {error}",
                f"Alertmanager refused the silence: {error}",
            )
        ) from error


async def _silence_incident(
    ctx: SkillContext, inv: Invocation, number: int, until: datetime, comment: str
) -> Reply:
    """Silence a whole incident: an Alertmanager silence per alert name (the labels its firing
    alerts share), its finding kinds muted, and its escalation stopped."""
    view = await ctx.read(ctx.store.incident_view, number)
    if view is None:
        raise SkillError(ctx.tr(f"Incidente #{number} não existe.", f"No incident #{number}."))
    alerts = await ctx.call(ctx.store.incident_alerts, number)
    if alerts and ctx.alertmanager is None and not view.findings:
        raise SkillError(
            ctx.tr(
                "ALERTMANAGER_URL não está configurado: não há onde silenciar os alertas.",
                "ALERTMANAGER_URL is not set: there is nowhere to silence the alerts.",
            )
        )
    now = ctx.clock.now()
    by_name: dict[str, list[AlertRecord]] = {}
    for alert in alerts:
        by_name.setdefault(alert.alertname, []).append(alert)
    made: list[str] = []
    if ctx.alertmanager is not None:
        for same in by_name.values():
            made.append(
                await _create_silence(
                    ctx, ctx.alertmanager, common_labels(same), now, until, inv.actor, comment
                )
            )
    kinds = await ctx.call(ctx.store.finding_kinds, number)
    for kind, metric in kinds:
        await ctx.call(ctx.store.mute, kind, metric, until, now)
    await ctx.call(ctx.store.silence_incident, number, inv.actor, until, now)
    await ctx.call(
        ctx.store.record_audit,
        inv.actor,
        "silence.incident",
        {"id": number, "until": until.isoformat(), "silences": made, "muted": kinds},
        "ok",
        now,
    )
    lines = [f"silence {s}" for s in made] + [f"{k}:{m}" for k, m in kinds]
    return Reply(
        title=ctx.tr(
            f"🔇 Incidente #{number} silenciado até {clock(ctx, until)}.",
            f"🔇 Incident #{number} silenced until {clock(ctx, until)}.",
        ),
        sections=(Section(lines=tuple(lines)),) if lines else (),
    )


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    words = _expiry(ctx, args).split(maxsplit=2)
    if len(words) < 2:
        raise SkillError(
            ctx.tr(
                "Uso: `silenciar ALVO DURAÇÃO [comentário]`, ex. `silenciar "
                "PaymentsApiDown 1h deploy`",
                "Usage: `silence TARGET DURATION [comment]`, e.g. `silence "
                "PaymentsApiDown 1h deploy`",
            )
        )
    target, span = words[0], parse_period(words[1])
    if span > MAX_SILENCE:
        raise SkillError(ctx.tr("Silêncio máximo: 7 dias.", "Longest silence: 7 days."))
    now = ctx.clock.now()
    until = now + span
    if ":" in target:
        return await _mute_finding(ctx, inv, target, until)
    number = incident_number(ctx, target)
    known = await ctx.call(ctx.store.incident, number) if number is not None else None
    if number is not None and (target.startswith("#") or known is not None):
        comment = words[2] if len(words) > 2 else f"nightshift: {inv.actor}"
        return await _silence_incident(ctx, inv, number, until, comment)
    alert = _one_alert(ctx, await ctx.call(ctx.store.find_alerts, target), target)
    if ctx.alertmanager is None:
        raise SkillError(
            ctx.tr(
                "ALERTMANAGER_URL não está configurado: não há onde silenciar.",
                "ALERTMANAGER_URL is not set: there is nowhere to silence.",
            )
        )
    by_name = target.lower() == alert.alertname.lower()
    labels = {"alertname": alert.alertname} if by_name else alert.labels
    comment = words[2] if len(words) > 2 else f"nightshift: {inv.actor}"
    silence_id = await _create_silence(
        ctx, ctx.alertmanager, labels, now, until, inv.actor, comment
    )
    await ctx.call(
        ctx.store.record_audit,
        inv.actor,
        "silence.create",
        {
            "target": target,
            "matchers": labels,
            "until": until.isoformat(),
            "silence_id": silence_id,
        },
        "ok",
        now,
    )
    return Reply(
        title=ctx.tr(
            f"🔇 {alert.alertname} silenciado até {clock(ctx, until)}.",
            f"🔇 {alert.alertname} silenced until {clock(ctx, until)}.",
        ),
        sections=(
            Section(
                lines=(
                    " ".join(f"{k}={v}" for k, v in sorted(labels.items())),
                    f"silence {silence_id}",
                )
            ),
        ),
    )


async def ack(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    """`ack ALVO`: an incident (`#12`), or the incident of an alert (id or name)."""
    target = _expiry(ctx, args).split(maxsplit=1)[0] if args.strip() else ""
    if not target:
        raise SkillError(
            ctx.tr(
                "Uso: `ack ALVO` (número do incidente, ou id ou nome do alerta).",
                "Usage: `ack TARGET` (incident number, or alert id or name).",
            )
        )
    now = ctx.clock.now()
    number = incident_number(ctx, target)
    incident = await ctx.call(ctx.store.incident, number) if number is not None else None
    alert: AlertRecord | None = None
    if incident is None:
        if target.startswith("#"):
            raise SkillError(ctx.tr(f"Incidente {target} não existe.", f"No incident {target}."))
        alert = _one_alert(ctx, await ctx.call(ctx.store.find_alerts, target), target)
        incident = await ctx.call(ctx.store.incident_of, "alert", alert.fingerprint)
    if incident is None or not incident.is_open:
        assert alert is not None  # noqa: S101 - an incident number always finds its incident
        await ctx.call(ctx.store.ack_alert, alert.fingerprint, inv.actor, now)
        await ctx.call(
            ctx.store.record_audit,
            inv.actor,
            "alert.ack",
            {"fingerprint": alert.fingerprint},
            "ok",
            now,
        )
        return Reply(
            title=ctx.tr(
                f"👀 {alert.alertname}: reconhecido por {inv.actor}.",
                f"👀 {alert.alertname}: acknowledged by {inv.actor}.",
            )
        )
    first = await ctx.call(ctx.store.ack_incident, incident.id, inv.actor, now)
    await ctx.call(
        ctx.store.record_audit, inv.actor, "incident.ack", {"id": incident.id}, "ok", now
    )
    if not first:
        return Reply(
            title=ctx.tr(
                f"👀 Incidente #{incident.id} já reconhecido por {incident.acked_by}.",
                f"👀 Incident #{incident.id} already acknowledged by {incident.acked_by}.",
            )
        )
    title = title_of(incident, ctx.lang)
    return Reply(
        title=ctx.tr(
            f"👀 Incidente #{incident.id} ({title}): reconhecido por {inv.actor}; "
            "escalonamento parado.",
            f"👀 Incident #{incident.id} ({title}): acknowledged by {inv.actor}; "
            "escalation stopped.",
        )
    )
