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
from skills.silence import muted_until
from storage.records import AlertGroup, AlertIn
from tests.fakes.clock import FixedClock
from tests.realservers import AlertmanagerFactory


def _fire(core: Core, name: str = "PixDown", fingerprint: str = "abcdef0123456789") -> None:
    alert = AlertIn(
        fingerprint,
        "firing",
        {"alertname": name, "severity": "critical", "service": "pix"},
        {},
        core.clock.now(),
        None,
    )
    core.store.apply_alert_group(
        AlertGroup("nightshift", "firing", "g", (alert,)), core.clock.now()
    )


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
    assert muted_until(core.store, "surge", "failed", now) == now + timedelta(hours=2)
    assert muted_until(core.store, "surge", "denied", now) is None
    assert muted_until(core.store, "surge", "failed", now + timedelta(hours=3)) is None


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
