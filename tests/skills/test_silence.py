"""`silenciar` and `ack`: alerts through a real Alertmanager, finding kinds in the store,
expired buttons refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alertmanager import AlertmanagerClient
from bot.app import Core
from skills.core import Invocation
from skills.router import Dispatcher
from storage.correlation import Correlation
from storage.records import AlertGroup, AlertIn
from tests.fakes.clock import FixedClock
from tests.realservers import AlertmanagerFactory


def _fire(
    core: Core, name: str = "PixDown", fingerprint: str = "abcdef0123456789", instance: str = "a"
) -> None:
    alert = AlertIn(
        fingerprint,
        "firing",
        {"alertname": name, "severity": "critical", "service": "pix", "instance": instance},
        {},
        core.clock.now(),
        None,
    )
    core.store.apply_alert_group(
        AlertGroup("nightshift", "firing", "g", (alert,)), core.clock.now()
    )


def _correlate(core: Core) -> None:
    core.store.correlate(core.clock.now(), Correlation(), lambda labels: ("console",))


async def ask(core: Core, text: str, user: str = "100") -> str:
    reply = await core.handle(Invocation("telegram", user, text))
    return f"{reply.outcome}: {reply.plain_text()}"


async def test_ack_records_who_and_is_audited(core: Core) -> None:
    _fire(core)
    assert (await ask(core, "ack abcdef")).startswith(
        "ok: 👀 PixDown: reconhecido por telegram:100"
    )
    assert core.store.alerts()[0].acked_by == "telegram:100"
    assert [e.action for e in core.store.audit_entries("alert.")] == ["alert.ack"]


async def test_unknown_target_and_missing_alertmanager_are_polite(core: Core) -> None:
    assert "Nenhum alerta com id ou nome `nope`" in await ask(core, "silenciar nope 1h")
    _fire(core)
    assert "ALERTMANAGER_URL não está configurado" in await ask(core, "silenciar PixDown 1h")
    assert "Uso:" in await ask(core, "silenciar PixDown")
    assert "Silêncio máximo" in await ask(core, "silenciar PixDown 30d")


async def test_expired_button_does_nothing(core: Core, clock: FixedClock) -> None:
    _fire(core)
    past = int((clock.now() - timedelta(minutes=1)).timestamp())
    answer = await ask(core, f"ack abcdef @{past}")
    assert answer.startswith("error: ⚠️ Este botão expirou")
    assert core.store.alerts()[0].acked_by is None
    future = int((clock.now() + timedelta(hours=1)).timestamp())
    assert (await ask(core, f"ack abcdef @{future}")).startswith("ok:")


async def test_a_finding_kind_is_muted_for_the_duration(core: Core, clock: FixedClock) -> None:
    answer = await ask(core, "silenciar surge:failed 2h")
    assert answer.startswith("ok: 🔇 Anomalias `surge:failed` silenciadas até 14:00")
    now = clock.now()
    assert core.store.muted_until("surge", "failed", now) == now + timedelta(hours=2)
    assert core.store.muted_until("surge", "denied", now) is None
    assert core.store.muted_until("surge", "failed", now + timedelta(hours=3)) is None


@pytest.fixture
async def with_alertmanager(
    core: Core, alertmanager: AlertmanagerFactory
) -> AsyncIterator[tuple[Core, AlertmanagerClient]]:
    am = alertmanager("http://127.0.0.1:9/unused")
    client = AlertmanagerClient(am.url)
    context = replace(core.dispatcher.context, alertmanager=client)
    core.dispatcher = Dispatcher(core.dispatcher.router.skills, context, core.dispatcher._access)
    yield core, client
    await client.aclose()


async def test_silence_reaches_the_real_alertmanager(
    with_alertmanager: tuple[Core, AlertmanagerClient], clock: FixedClock
) -> None:
    core, client = with_alertmanager
    clock.set(datetime.now(UTC))  # Alertmanager refuses silences that end in the past
    _fire(core)
    answer = await ask(core, "silenciar PixDown 4h deploy do pix")
    assert answer.startswith("ok: 🔇 PixDown silenciado até")
    [silence] = [s for s in await client.silences() if s.get("createdBy") == "telegram:100"]
    assert silence["comment"] == "deploy do pix"
    assert silence["matchers"] == [
        {"name": "alertname", "value": "PixDown", "isRegex": False, "isEqual": True}
    ]
    assert [e.action for e in core.store.audit_entries("silence.")] == ["silence.create"]


async def test_silencing_an_incident_silences_what_its_alerts_share_and_stops_escalation(
    with_alertmanager: tuple[Core, AlertmanagerClient], clock: FixedClock
) -> None:
    core, client = with_alertmanager
    clock.set(datetime.now(UTC))
    _fire(core, fingerprint="aaaa000000000001", instance="pay-1")
    _fire(core, fingerprint="aaaa000000000002", instance="pay-2")
    _correlate(core)
    answer = await ask(core, "silenciar #1 1h")
    assert answer.startswith("ok: 🔇 Incidente #1 silenciado até")
    [silence] = [s for s in await client.silences() if s.get("createdBy") == "telegram:100"]
    matchers = silence["matchers"]
    assert isinstance(matchers, list)
    assert {m["name"]: m["value"] for m in matchers} == {
        "alertname": "PixDown",
        "severity": "critical",
        "service": "pix",
    }  # what both alerts share: one silence for the whole incident, not one per alert
    incident = core.store.incident(1)
    assert incident is not None and incident.silenced_by == "telegram:100"
    assert incident.escalate_at is None


async def test_ack_by_incident_number_or_by_one_of_its_alerts(core: Core) -> None:
    _fire(core, fingerprint="bbbb000000000001", instance="pay-1")
    _fire(core, fingerprint="bbbb000000000002", instance="pay-2")
    _correlate(core)
    answer = await ask(core, "ack bbbb000000000002")
    assert answer.startswith("ok: 👀 Incidente #1 (PixDown): reconhecido por telegram:100")
    assert [a.acked_by for a in core.store.alerts()] == ["telegram:100", "telegram:100"]
    assert "já reconhecido por telegram:100" in await ask(core, "ack #1")
    assert "Incidente #7 não existe" in await ask(core, "ack #7")
