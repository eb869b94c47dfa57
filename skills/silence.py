"""`silenciar ALVO DURAÇÃO [comentário]` and `ack ALVO`: quiet an alert or a finding kind, or
say someone is on it. The buttons under pushed alerts run these same commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from skills.core import Invocation, Reply, Section, SkillContext, SkillError
from skills.formatting import clock
from skills.periods import parse_period
from storage.records import AlertRecord
from storage.store import Store

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


def muted_until(store: Store, kind: str, metric: str, now: datetime) -> datetime | None:
    """Until when a finding kind is silenced (None: it is not)."""
    for key in (f"mute:{kind}:{metric}", f"mute:{kind}:*"):
        value = store.get_state(key)
        if value and datetime.fromisoformat(value) > now:
            return datetime.fromisoformat(value)
    return None


async def _mute_finding(ctx: SkillContext, inv: Invocation, target: str, until: datetime) -> Reply:
    kind, _, metric = target.partition(":")
    await ctx.call(
        ctx.store.set_state, f"mute:{kind}:{metric or '*'}", until.isoformat(), ctx.clock.now()
    )
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
    matchers = [
        {"name": k, "value": v, "isRegex": False, "isEqual": True}
        for k, v in sorted(labels.items())
    ]
    comment = words[2] if len(words) > 2 else f"nightshift: {inv.actor}"
    try:
        silence_id = await ctx.alertmanager.create_silence(matchers, now, until, inv.actor, comment)
    except Exception as error:
        raise SkillError(
            ctx.tr(
                f"O Alertmanager recusou o silêncio: {error}",
                f"Alertmanager refused the silence: {error}",
            )
        ) from error
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
    target = _expiry(ctx, args).split(maxsplit=1)[0] if args.strip() else ""
    if not target:
        raise SkillError(
            ctx.tr(
                "Uso: `ack ALVO` (id ou nome do alerta).", "Usage: `ack TARGET` (alert id or name)."
            )
        )
    alert = _one_alert(ctx, await ctx.call(ctx.store.find_alerts, target), target)
    now = ctx.clock.now()
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
