"""`incidentes`, `incidente N`, `falso N`, `alertas` grouped by incident, and the handoff's
worst incidents, escalations and false alarms, as an operator reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from bot.app import Core
from skills.core import Invocation
from storage.correlation import Correlation
from storage.records import AlertGroup, AlertIn, AnomalyRecord
from tests.fakes.clock import FixedClock


def route(labels: Mapping[str, str]) -> Sequence[str]:
    return ("console",)


async def ask(core: Core, text: str, user: str = "op") -> str:
    reply = await core.handle(Invocation("console", user, text))
    return f"{reply.outcome}: {reply.plain_text()}"


def fire(core: Core, fingerprints: Sequence[str], name: str, **labels: str) -> None:
    now = core.clock.now()
    alerts = tuple(
        AlertIn(
            f,
            "firing",
            {"alertname": name, "severity": "critical", "instance": f"pay-{i}", **labels},
            {"summary": f"{name} is slow"},
            now,
            None,
        )
        for i, f in enumerate(fingerprints)
    )
    core.store.apply_alert_group(AlertGroup("r", "firing", f"g-{name}", alerts), now)


def surge(core: Core, key: str = "k1", lost: float = 1234.0, *, resolved: bool = False) -> None:
    now = core.clock.now()
    core.store.save_anomaly(
        AnomalyRecord(
            key,
            "surge",
            "denied_rate",
            ("denied",),
            now - timedelta(minutes=5),
            None,
            now,
            now,
            "critical",
            0.9,
            4.0,
            31.0,
            "denied em 26% das transações vs 7% normal",
            "denied at 26% of transactions vs 7% normal",
            resolved,
            lost,
        )
    )


def correlate(core: Core) -> None:
    core.store.correlate(core.clock.now(), Correlation(), route)


async def test_incidents_worst_first_with_members_impact_ack_and_age(
    core: Core, clock: FixedClock
) -> None:
    fire(core, [f"b{i}" for i in range(80)], "BarsLong")
    surge(core)
    correlate(core)
    clock.advance(minutes=3)
    core.store.open_incident("Pix instável", "telegram:100", clock.now())
    core.store.ack_incident(1, "telegram:100", clock.now())
    text = await ask(core, "incidentes")
    lines = text.splitlines()
    assert lines[0] == "ok: 🔥 Incidentes abertos: 3 (2 críticos)"
    assert lines[2].startswith("#2 🔴 pico de denied · 1 anomalia · 💸 1.234 aprovações perdidas")
    assert lines[2].endswith("sem ack · há 3 min")
    assert lines[3] == "#1 🔴 BarsLong · 80 alertas · 👀 telegram:100 · há 3 min"
    assert lines[4].startswith("#3 🟠 Pix instável")
    assert (await ask(core, "incidents")).startswith("ok: 🔥 Incidentes abertos: 3")


async def test_money_at_risk_comes_from_the_average_ticket(core: Core) -> None:
    from dataclasses import replace

    from skills.router import Dispatcher

    context = replace(core.dispatcher.context, avg_ticket=80.0, currency="BRL")
    core.dispatcher = Dispatcher(core.dispatcher.router.skills, context, core.dispatcher._access)
    surge(core, lost=100.0)
    correlate(core)
    assert "💸 100 aprovações perdidas (~R$ 8.000 em risco)" in await ask(core, "incidentes")


async def test_one_incident_with_its_members_and_timeline(core: Core, clock: FixedClock) -> None:
    fire(core, ["a1", "a2"], "ApiDown", service="pix")
    correlate(core)
    clock.advance(minutes=2)
    fire(core, ["d1"], "DbDown", service="pix")
    correlate(core)
    clock.advance(minutes=1)
    await ask(core, "ack #1")
    text = await ask(core, "incidente 1")
    assert text.startswith("ok: 🔴 INCIDENTE #1 · ApiDown +1")
    assert "🔴 ApiDown: 2 alertas em pay-0…pay-1 — ApiDown is slow" in text
    assert "🔴 DbDown em pay-0 — DbDown is slow" in text
    timeline = text.split("Linha do tempo")[1]
    assert [line.split(" ", 1)[1] for line in timeline.strip().splitlines()[:4]] == [
        "aberto · alertmanager",
        "+2 ApiDown",
        "novo sintoma: DbDown",
        "reconhecido · console:op",
    ]
    assert "Incidente #9 não existe" in await ask(core, "incidente 9")


async def test_a_finding_on_the_timeline_is_named_in_words(core: Core, clock: FixedClock) -> None:
    fire(core, ["a1"], "PaymentsApiLatencyHigh", service="payments-api")
    correlate(core)
    clock.advance(minutes=2)
    surge(core)
    correlate(core)
    text = await ask(core, "incidente 1")
    assert "novo sintoma: pico de denied" in text.split("Linha do tempo")[1]
    assert "surge:denied_rate" not in text
    assert (await ask(core, "incidentes")).startswith("ok: 🔥 Incidentes abertos: 1 (1 crítico)")


async def test_false_alarm_by_command_and_by_button(core: Core, clock: FixedClock) -> None:
    surge(core)
    correlate(core)
    text = await ask(core, "falso 1")
    assert text.startswith("ok: ⚪ Incidente #1 (pico de denied) marcado como falso alarme.")
    assert "pico de denied (`surge:denied_rate`) silenciado por 1 h" in text
    assert "já está encerrado" in await ask(core, "falso 1")
    fire(core, ["x"], "NotFromTheDetector")
    correlate(core)
    assert "não veio do detector" in await ask(core, "falso #2")
    past = int((clock.now() - timedelta(minutes=1)).timestamp())
    assert "expirou" in await ask(core, f"ack #2 @{past}")
    assert [e.action for e in core.store.audit_entries("incident.")] == ["incident.false"]


async def test_alerts_are_grouped_by_incident_and_name(core: Core) -> None:
    fire(core, [f"bar{i:02d}" for i in range(80)], "BarsLong")
    fire(core, ["solo"], "PixDown", service="pix")
    correlate(core)
    text = await ask(core, "alertas")
    lines = text.splitlines()
    assert lines[0] == "ok: 🚨 Alertas ativos: 81"
    assert lines[2].startswith("#1 🔴 critical · BarsLong: 80 alertas em pay-0…pay-79 · desde")
    assert lines[3].startswith("#2 🔴 critical · PixDown em pay-0 — PixDown is slow · desde")
    assert len(lines) == 6  # 81 alerts on one screen


async def test_handoff_opens_with_the_worst_incidents_and_counts_escalations_and_false(
    core: Core, clock: FixedClock
) -> None:
    fire(core, ["a"], "ApiDown", service="pix")
    surge(core, "k-costly", lost=5000.0)
    surge(core, "k-cheap", lost=10.0)  # same fire: not 10 more lost
    correlate(core)
    clock.advance(minutes=10)
    core.store.escalate_due(clock.now(), timedelta(minutes=10), 3, None)
    clock.advance(minutes=1)
    surge(core, "k-costly", lost=5000.0, resolved=True)
    surge(core, "k-cheap", lost=10.0, resolved=True)
    correlate(core)
    surge(core, "k-false", lost=1.0)  # a new fire on the feed: a new incident (#3)
    correlate(core)
    await ask(core, "falso 3")
    text = await ask(core, "passagem")
    worst = text.split("🔥 Os piores incidentes da noite")[1].split("\n\n")[0]
    first = worst.strip().splitlines()[0]
    assert first.startswith("#2 🔴 pico de denied +1")
    assert "5.000 aprovações perdidas" in first
    assert "📣 Escalonamentos: 2 (#1 " in text
    assert "⚪ Falsos alarmes: 1 de 2 incidentes do detector (precisão 50%" in text
    assert "#2 pico de denied · 12:00–12:11, encerrado por nightshift" in text
