"""Pushed messages: an alert, a finding, a storm digest, as platform-blind Replies with buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from skills.core import Button, Reply, Section
from skills.formatting import duration, severity_icon
from storage.records import AlertRecord, AnomalyRecord

SILENCES = ("1h", "4h", "24h")


def _tr(lang: str, pt: str, en: str) -> str:
    return pt if lang == "pt" else en


def _hhmm(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%H:%M")


def expiring(action: str, expires: datetime | None) -> str:
    """A button's command with its expiry (`@<epoch>`), checked when pressed."""
    return action if expires is None else f"{action} @{int(expires.timestamp())}"


def alert_notice(
    alert: AlertRecord,
    lang: str,
    tz: tzinfo,
    now: datetime,
    *,
    buttons_until: datetime | None = None,
    can_silence: bool = True,
) -> Reply:
    """The one message about an alert, as it stands now (firing, acknowledged or resolved)."""
    since = alert.starts_at or alert.first_received
    if alert.status == "resolved":
        end = alert.ends_at or alert.changed_at
        head = _tr(lang, "✅ RESOLVIDO", "✅ RESOLVED")
        state = _tr(
            lang,
            f"resolvido às {_hhmm(end, tz)}, após {duration(end - since, lang)}",
            f"resolved at {_hhmm(end, tz)}, after {duration(end - since, lang)}",
        )
    else:
        head = f"{severity_icon(alert.severity)} {alert.severity.upper()}"
        state = _tr(
            lang,
            f"disparando desde {_hhmm(since, tz)} (há {duration(now - since, lang)})",
            f"firing since {_hhmm(since, tz)} ({duration(now - since, lang)} ago)",
        )
    lines = [alert.summary] if alert.summary else []
    lines.append(state)
    if alert.acked_by and alert.acked_at is not None:
        lines.append(
            _tr(
                lang,
                f"👀 reconhecido por {alert.acked_by} às {_hhmm(alert.acked_at, tz)}",
                f"👀 acknowledged by {alert.acked_by} at {_hhmm(alert.acked_at, tz)}",
            )
        )
    shown = {k: v for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")}
    if shown:
        lines.append(" ".join(f"{k}={v}" for k, v in list(shown.items())[:6]))
    lines.append(f"id {alert.fingerprint[:12]}")
    buttons: list[Button] = []
    if alert.status == "firing":
        target = alert.fingerprint[:16]
        if can_silence:
            buttons += [
                Button(f"🔇 {d}", expiring(f"silenciar {target} {d}", buttons_until))
                for d in SILENCES
            ]
        if not alert.acked_by:
            buttons.append(Button("👀 Ack", expiring(f"ack {target}", buttons_until), "primary"))
        runbook = alert.annotations.get("runbook", "")
        if runbook and runbook.replace("-", "").isalnum() and len(runbook) <= 32:
            buttons.append(
                Button(f"▶️ {runbook}", expiring(f"runbook {runbook}", buttons_until), "danger")
            )
    return Reply(
        title=f"{head} · {alert.alertname}",
        sections=(Section(lines=tuple(lines)),),
        buttons=tuple(buttons),
    )


def resolution_note(alert: AlertRecord, lang: str, tz: tzinfo) -> Reply:
    """The short reply under the original message when an alert resolves."""
    end = alert.ends_at or alert.changed_at
    since = alert.starts_at or alert.first_received
    return Reply(
        title=_tr(
            lang,
            f"✅ {alert.alertname} resolvido às {_hhmm(end, tz)} ({duration(end - since, lang)})",
            f"✅ {alert.alertname} resolved at {_hhmm(end, tz)} ({duration(end - since, lang)})",
        )
    )


def finding_notice(
    finding: AnomalyRecord, lang: str, tz: tzinfo, *, buttons_until: datetime | None = None
) -> Reply:
    """A detector episode: what, since when, how sure, and a button to mute that kind."""
    text = finding.explanation_pt if lang == "pt" else finding.explanation_en
    if finding.resolved and finding.end is not None:
        head = _tr(lang, "✅ ANOMALIA RESOLVIDA", "✅ ANOMALY RESOLVED")
        state = _tr(
            lang,
            f"de {_hhmm(finding.start, tz)} a {_hhmm(finding.end, tz)}",
            f"from {_hhmm(finding.start, tz)} to {_hhmm(finding.end, tz)}",
        )
        buttons: tuple[Button, ...] = ()
    else:
        head = f"{severity_icon(finding.severity)} {_tr(lang, 'ANOMALIA', 'ANOMALY')}"
        state = _tr(
            lang,
            f"desde {_hhmm(finding.start, tz)} · score {finding.score:.2f}",
            f"since {_hhmm(finding.start, tz)} · score {finding.score:.2f}",
        )
        buttons = tuple(
            Button(
                f"🔇 {d}", expiring(f"silenciar {finding.kind}:{finding.metric} {d}", buttons_until)
            )
            for d in SILENCES[:2]
        )
    return Reply(
        title=f"{head} · {finding.kind} {finding.metric}",
        sections=(Section(lines=(text, state)),),
        buttons=buttons,
    )


def storm_digest(
    firing: int,
    worst: Sequence[AlertRecord],
    told: int,
    resolved: int,
    lang: str,
    tz: tzinfo,
    since: datetime,
) -> Reply:
    """Many alerts at once: one message, edited as the storm grows. `firing` counts the alerts
    firing now; `worst` are the ones to list (Store.worst_firing), the worst first."""
    lines = [
        f"{severity_icon(a.severity)} {a.alertname}" + (f" — {a.summary}" if a.summary else "")
        for a in worst
    ]
    if firing > len(worst):
        lines.append(
            _tr(
                lang,
                f"… e mais {firing - len(worst)} disparando",
                f"… and {firing - len(worst)} more firing",
            )
        )
    return Reply(
        title=_tr(
            lang,
            f"🌩️ Tempestade de alertas desde {_hhmm(since, tz)}: {told} mudanças, "
            f"{firing} disparando, {resolved} resolvidos",
            f"🌩️ Alert storm since {_hhmm(since, tz)}: {told} changes, "
            f"{firing} firing, {resolved} resolved",
        ),
        sections=(
            Section(lines=tuple(lines)),
            Section(lines=(_tr(lang, "Detalhes: `alertas`", "Details: `alerts`"),)),
        ),
    )


def reply_from_body(body: dict[str, object]) -> Reply:
    """A Reply stored in the outbox (a briefing, a notice) back into a value."""
    sections = body.get("sections", [])
    return Reply(
        title=str(body.get("title", "")),
        sections=tuple(
            Section(heading=str(s.get("heading", "")), lines=tuple(map(str, s.get("lines", []))))
            for s in (sections if isinstance(sections, list) else [])
            if isinstance(s, dict)
        ),
    )


def body_from_reply(reply: Reply) -> dict[str, object]:
    """A Reply as JSON for the outbox (text only: buttons and images are not queued)."""
    return {
        "title": reply.title,
        "sections": [{"heading": s.heading, "lines": list(s.lines)} for s in reply.sections],
    }
