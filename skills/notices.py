"""Pushed messages as platform-blind Replies with buttons: cards, roll-ups, escalations, notes.

An incident's card, a flood's roll-up, an escalation, a new symptom, a resolution note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from skills.core import Button, Reply, Section
from skills.formatting import duration, hhmm, number, severity_icon
from storage.records import IncidentRecord, IncidentView, MemberGroup

SILENCES = ("1h", "4h")
CARD_GROUPS = 8  # member groups a card lists; the rest are counted
ROLLUP_LINES = 20
_CURRENCY = {"BRL": "R$", "USD": "US$", "EUR": "€", "GBP": "£"}
_FINDINGS = {
    "outage": ("sem transações {m}", "no {m} transactions"),
    "volume_drop": ("queda de {m}", "{m} drop"),
    "surge": ("pico de {m}", "{m} surge"),
    "rate": ("taxa anormal de {m}", "unusual {m} rate"),
    "mix": ("mistura de status incomum", "unusual status mix"),
    "feed_silence": ("feed silencioso", "feed silent"),
}


def _tr(lang: str, pt: str, en: str) -> str:
    return pt if lang == "pt" else en


def expiring(action: str, expires: datetime | None) -> str:
    """A button's command with its expiry (`@<epoch>`), checked when pressed."""
    return action if expires is None else f"{action} @{int(expires.timestamp())}"


@dataclass(frozen=True, slots=True)
class Impact:
    """How approvals lost become money at risk: the average ticket (when known) and currency."""

    avg_ticket: float | None = None
    currency: str = "BRL"

    def money(self, approvals: float, lang: str) -> str | None:
        if self.avg_ticket is None or approvals <= 0:
            return None
        symbol = _CURRENCY.get(self.currency, self.currency)
        return f"{symbol} {number(approvals * self.avg_ticket, lang)}"

    def line(self, view: IncidentView, lang: str) -> str | None:
        """`💸 1.234 aprovações perdidas (~R$ 98.720 em risco)`, for incidents seen on the feed."""
        if not view.findings or view.approvals_lost < 0.5:
            return None
        lost = number(view.approvals_lost, lang)
        money = self.money(view.approvals_lost, lang)
        risk = _tr(lang, f" (~{money} em risco)", f" (~{money} at risk)") if money else ""
        return _tr(lang, f"💸 {lost} aprovações perdidas", f"💸 {lost} approvals lost") + risk


def finding_title(name: str, lang: str) -> str:
    """`surge:denied_rate` → `pico de denied` / `denied surge`."""
    kind, _, metric = name.partition(":")
    pt, en = _FINDINGS.get(kind, ("{m}", "{m}"))
    shown = metric.removesuffix("_rate")
    return _tr(lang, pt, en).format(m=shown)


def member_name(name: str, lang: str) -> str:
    """A member's name as read: a finding's `kind:metric` in words, an alert's name as it is."""
    kind, _, metric = name.partition(":")
    return finding_title(name, lang) if kind in _FINDINGS and metric else name


def group_line(group: MemberGroup, lang: str) -> str:
    """One line per alert name or finding: `🚨 BarsLong: 80 alertas em pay-0…pay-79`."""
    if group.kind == "finding":
        text = group.summary if lang == "pt" else group.summary_en
        state = _tr(lang, " (resolvida)", " (resolved)") if not group.firing else ""
        title = finding_title(group.name, lang)
        if text.lower().startswith(title.lower()):  # "feed silencioso: …" says it already
            return f"📈 {text}{state}"
        return f"📈 {title}{state}: {text}"
    count = ""
    if group.total > 1:
        count = _tr(lang, f": {group.total} alertas", f": {group.total} alerts")
    where = ""
    if group.spread is not None:
        first, last = group.spread
        where = _tr(lang, " em ", " on ") + (first if first == last else f"{first}…{last}")
    resolved = ""
    if group.resolved and group.firing:
        resolved = _tr(lang, f" ({group.resolved} resolvidos)", f" ({group.resolved} resolved)")
    elif not group.firing:
        resolved = _tr(lang, " (resolvido)", " (resolved)")
    summary = f" — {group.summary}" if group.summary else ""
    return f"{severity_icon(group.severity)} {group.name}{count}{where}{resolved}{summary}"


def _head(view: IncidentView, lang: str) -> str:
    i = view.incident
    word = _tr(lang, "INCIDENTE", "INCIDENT")
    if i.is_open:
        return f"{severity_icon(i.severity)} {word} #{i.id} · {headline(view, lang)}"
    if i.resolution == "false":
        false = _tr(lang, "FALSO ALARME", "FALSE ALARM")
        return f"⚪ {false} · {word} #{i.id} · {headline(view, lang)}"
    done = (
        _tr(lang, "ENCERRADO", "CLOSED")
        if i.resolution == "closed"
        else _tr(lang, "RESOLVIDO", "RESOLVED")
    )
    return f"✅ {done} · {word} #{i.id} · {headline(view, lang)}"


def title_of(incident: IncidentRecord, lang: str) -> str:
    """An incident's title as an operator reads it (the detector's are `kind:metric`)."""
    return finding_title(incident.title, lang) if incident.source == "feed" else incident.title


def headline(view: IncidentView, lang: str) -> str:
    """What the incident is, in a few words that do not change while it lasts: what opened it
    (its title), and how many other kinds of symptom joined it."""
    title = title_of(view.incident, lang).split(" — ")[0]
    others = len(view.members) - 1
    return title + (f" +{others}" if others > 0 else "")


def state_line(view: IncidentView, lang: str, tz: tzinfo, now: datetime) -> str:
    i = view.incident
    opened = hhmm(i.opened_at, tz)
    if i.is_open:
        return _tr(
            lang,
            f"aberto às {opened} (há {duration(now - i.opened_at, lang)}) · {i.severity}",
            f"opened at {opened} ({duration(now - i.opened_at, lang)} ago) · {i.severity}",
        )
    end = i.closed_at or i.last_activity or now
    span = f"{opened}–{hhmm(end, tz)} ({duration(end - i.opened_at, lang)})"
    if i.resolution in ("false", "closed") and i.closed_by:
        who = (
            _tr(lang, "julgado falso por", "judged false by")
            if i.resolution == "false"
            else _tr(lang, "encerrado por", "closed by")
        )
        return f"{span} · {who} {i.closed_by}"
    return span


def care_lines(view: IncidentView, lang: str, tz: tzinfo, now: datetime) -> list[str]:
    """Who is on it, until when it is silenced, how often it was escalated."""
    i = view.incident
    lines = []
    if i.acked_by and i.acked_at is not None:
        lines.append(
            _tr(
                lang,
                f"👀 reconhecido por {i.acked_by} às {hhmm(i.acked_at, tz)}",
                f"👀 acknowledged by {i.acked_by} at {hhmm(i.acked_at, tz)}",
            )
        )
    if i.silenced_until is not None and i.silenced_until > now:
        who = f" ({i.silenced_by})" if i.silenced_by else ""
        lines.append(
            _tr(
                lang,
                f"🔇 silenciado até {hhmm(i.silenced_until, tz)}{who}",
                f"🔇 silenced until {hhmm(i.silenced_until, tz)}{who}",
            )
        )
    if i.escalations:
        lines.append(_tr(lang, f"📣 escalado {i.escalations}×", f"📣 escalated {i.escalations}×"))
    return lines


def incident_buttons(
    view: IncidentView, until: datetime | None, *, can_silence: bool
) -> tuple[Button, ...]:
    """Ack, silence (when Alertmanager is reachable or there are findings to mute), false
    alarm (for what the detector found) and the runbook an alert names."""
    i = view.incident
    if not i.is_open:
        return ()
    target = f"#{i.id}"
    buttons: list[Button] = []
    if not i.acked_by:
        buttons.append(Button("👀 Ack", expiring(f"ack {target}", until), "primary"))
    if can_silence or view.findings:
        buttons += [Button(f"🔇 {d}", expiring(f"silenciar {target} {d}", until)) for d in SILENCES]
    if view.findings:
        buttons.append(Button("❌ Falso alarme / False alarm", expiring(f"falso {target}", until)))
    runbook = next((g.runbook for g in view.members if g.runbook), "")
    if runbook and runbook.replace("-", "").isalnum() and len(runbook) <= 32:
        buttons.append(Button(f"▶️ {runbook}", expiring(f"runbook {runbook}", until), "danger"))
    return tuple(buttons)


def incident_card(
    view: IncidentView,
    lang: str,
    tz: tzinfo,
    now: datetime,
    *,
    impact: Impact | None = None,
    buttons_until: datetime | None = None,
    can_silence: bool = True,
) -> Reply:
    """The one message about an incident, as it stands now."""
    lines = [state_line(view, lang, tz, now)]
    lines += [group_line(g, lang) for g in view.members[:CARD_GROUPS]]
    hidden = view.members[CARD_GROUPS:]
    if hidden:
        lines.append(
            _tr(
                lang,
                f"… e mais {sum(g.total for g in hidden)} em {len(hidden)} grupos",
                f"… and {sum(g.total for g in hidden)} more in {len(hidden)} groups",
            )
        )
    money = (impact or Impact()).line(view, lang)
    if money:
        lines.append(money)
    lines += care_lines(view, lang, tz, now)
    lines.append(_tr(lang, f"Detalhes: `incidente {view.id}`", f"Details: `incident {view.id}`"))
    return Reply(
        title=_head(view, lang),
        sections=(Section(lines=tuple(lines)),),
        buttons=incident_buttons(view, buttons_until, can_silence=can_silence),
    )


def incident_line(view: IncidentView, lang: str, tz: tzinfo, now: datetime, impact: Impact) -> str:
    """One line for lists (`incidentes`, the handoff): `#12 🔴 BarsLong +1 · 80 alertas · …`."""
    i = view.incident
    parts = [f"#{i.id} {severity_icon(i.severity)} {headline(view, lang)}"]
    alerts = sum(g.total for g in view.members if g.kind == "alert")
    if alerts:
        parts.append(
            _tr(lang, f"{alerts} alertas", f"{alerts} alerts")
            if alerts > 1
            else _tr(lang, "1 alerta", "1 alert")
        )
    findings = sum(1 for g in view.members if g.kind == "finding")
    if findings:
        parts.append(
            _tr(lang, f"{findings} anomalias", f"{findings} findings")
            if findings > 1
            else _tr(lang, "1 anomalia", "1 finding")
        )
    money = impact.line(view, lang)
    if money:
        parts.append(money)
    if i.acked_by:
        parts.append(f"👀 {i.acked_by}")
    elif i.is_open:
        parts.append(_tr(lang, "sem ack", "not acked"))
    if i.is_open:
        parts.append(
            _tr(
                lang,
                f"há {duration(now - i.opened_at, lang)}",
                f"{duration(now - i.opened_at, lang)} old",
            )
        )
    else:
        parts.append(state_line(view, lang, tz, now))
    return " · ".join(parts)


def rollup_card(
    views: Sequence[IncidentView], lang: str, tz: tzinfo, now: datetime, since: datetime
) -> Reply:
    """Many new incidents at once: one message listing them, edited as they change."""
    lines = []
    for view in views[:ROLLUP_LINES]:
        i = view.incident
        state = "" if i.is_open else _tr(lang, " · ✅ resolvido", " · ✅ resolved")
        icon, opened = severity_icon(i.severity), hhmm(i.opened_at, tz)
        lines.append(f"#{i.id} {icon} {headline(view, lang)} · {opened}{state}")
    if len(views) > ROLLUP_LINES:
        more = len(views) - ROLLUP_LINES
        lines.append(_tr(lang, f"… e mais {more}", f"… and {more} more"))
    still = sum(1 for v in views if v.incident.is_open)
    return Reply(
        title=_tr(
            lang,
            f"🌩️ Mais {len(views)} incidentes desde {hhmm(since, tz)} ({still} abertos)",
            f"🌩️ {len(views)} more incidents since {hhmm(since, tz)} ({still} open)",
        ),
        sections=(
            Section(lines=tuple(lines)),
            Section(lines=(_tr(lang, "Todos: `incidentes`", "All of them: `incidents`"),)),
        ),
    )


def escalation_notice(
    view: IncidentView,
    n: int,
    of: int,
    lang: str,
    tz: tzinfo,
    now: datetime,
    *,
    oncall: Sequence[str] = (),
    impact: Impact | None = None,
    buttons_until: datetime | None = None,
    can_silence: bool = True,
) -> Reply:
    """An unacknowledged critical incident, told again as a new message that rings."""
    card = incident_card(
        view, lang, tz, now, impact=impact, buttons_until=buttons_until, can_silence=can_silence
    )
    waited = duration(now - view.incident.opened_at, lang)
    title = _tr(
        lang,
        f"📣 ESCALONAMENTO {n}/{of} · sem ack há {waited} · {card.title}",
        f"📣 ESCALATION {n}/{of} · not acknowledged for {waited} · {card.title}",
    )
    return Reply(title=title, sections=card.sections, buttons=card.buttons, mentions=tuple(oncall))


def symptom_notice(view: IncidentView, name: str, kind: str, lang: str) -> Reply:
    """A new critical symptom joined an incident already told: it rings, pointing at the card."""
    shown = finding_title(name, lang) if kind == "finding" else name
    group = next((g for g in view.members if g.name == name), None)
    lines = [group_line(group, lang)] if group is not None else []
    lines.append(_tr(lang, f"Detalhes: `incidente {view.id}`", f"Details: `incident {view.id}`"))
    return Reply(
        title=_tr(
            lang,
            f"🔴 NOVO SINTOMA · {shown} no incidente #{view.id} ({headline(view, lang)})",
            f"🔴 NEW SYMPTOM · {shown} in incident #{view.id} ({headline(view, lang)})",
        ),
        sections=(Section(lines=tuple(lines)),),
    )


def resolution_note(view: IncidentView, lang: str, tz: tzinfo) -> Reply:
    """The short reply under the card when its incident resolves."""
    i = view.incident
    end = i.closed_at or i.last_activity or i.opened_at
    span = duration(end - i.opened_at, lang)
    if i.resolution == "false":
        return Reply(
            title=_tr(
                lang,
                f"⚪ Incidente #{i.id} julgado falso alarme por {i.closed_by} às {hhmm(end, tz)}",
                f"⚪ Incident #{i.id} judged a false alarm by {i.closed_by} at {hhmm(end, tz)}",
            )
        )
    return Reply(
        title=_tr(
            lang,
            f"✅ Incidente #{i.id} ({headline(view, lang)}) resolvido às {hhmm(end, tz)} ({span})",
            f"✅ Incident #{i.id} ({headline(view, lang)}) resolved at {hhmm(end, tz)} ({span})",
        )
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


__all__ = [
    "Impact",
    "body_from_reply",
    "escalation_notice",
    "expiring",
    "finding_title",
    "incident_card",
    "incident_line",
    "member_name",
    "reply_from_body",
    "resolution_note",
    "rollup_card",
    "symptom_notice",
]
