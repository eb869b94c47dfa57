"""The first skills against a store holding the real CloudWalk data, at a fixed time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import Core
from skills.core import Invocation
from storage.correlation import Correlation
from storage.parsing import load_file
from storage.records import AlertGroup, AlertIn, AnomalyRecord
from tests.conftest import DATA
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")


@pytest.fixture
def loaded(core: Core, clock: FixedClock) -> Core:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    core.store.ingest(batch)
    return core


async def ask(core: Core, text: str) -> str:
    reply = await core.handle(Invocation("console", "op", text))
    assert reply.outcome == "ok", reply.plain_text()
    return reply.plain_text()


def fire(core: Core, fingerprint: str, since: datetime, summary: str = "") -> None:
    """A critical PixDown alert arrives by webhook at the clock's now."""
    alert = AlertIn(
        fingerprint,
        "firing",
        {"alertname": "PixDown", "severity": "critical"},
        {"summary": summary} if summary else {},
        since,
        None,
    )
    core.store.apply_alert_group(
        AlertGroup("nightshift", "firing", "g", (alert,)), core.clock.now()
    )


def finding(
    core: Core, key: str, kind: str, status: str, start: datetime, end: datetime | None, text: str
) -> None:
    """A detector episode stored as `serve` would store it."""
    now = core.clock.now()
    core.store.save_anomaly(
        AnomalyRecord(
            key,
            kind,
            status,
            (status,),
            start,
            end,
            start,
            now,
            "critical",
            0.9,
            7.0,
            42.0,
            text,
            text,
            end is not None,
        )
    )


async def test_status_on_a_normal_afternoon(loaded: Core, clock: FixedClock) -> None:
    # 2025-07-14 12:00 in São Paulo: a normal hour with two previous days of history.
    clock.set(datetime(2025, 7, 14, 15, 0, tzinfo=UTC))
    text = await ask(loaded, "status")
    assert "Tudo normal" in text
    assert "último minuto 11:59 (há 1 min)" in text
    # 11:45-12:00 on 07-14 is the start of a labelled denied burst: approval is below normal.
    assert "Transações: 98,1/min (normal neste horário: 127,1/min, 1 dia)" in text
    assert "Aprovação: 79,9% (normal 83,4%)" in text


async def test_status_says_when_the_feed_is_late(loaded: Core, clock: FixedClock) -> None:
    clock.set(datetime(2025, 7, 15, 17, 0, tzinfo=UTC))  # the file ends at 16:44 UTC
    text = await ask(loaded, "status")
    assert "Atenção" in text
    assert "o feed parou?" in text


async def test_status_shows_alerts_anomalies_incident(loaded: Core, clock: FixedClock) -> None:
    now = clock.now()
    fire(loaded, "f00d", now)
    finding(
        loaded, "k1", "surge", "denied", now - timedelta(minutes=10), None, "denied 6× o normal"
    )
    loaded.store.open_incident("Pix fora", "telegram:1", now)
    loaded.store.correlate(now, Correlation(), lambda labels: ("console",))
    text = await ask(loaded, "status")
    assert "Alertas ativos: 1 (🔴 1 critical)" in text
    # Three fires, counted as incidents: worst first, then the one opened by hand.
    assert "Incidentes abertos: 3 (2 críticos); 3 na última hora" in text
    lines = [line.strip() for line in text.splitlines()]
    assert [line.split(" · ")[0] for line in lines if line.startswith("#")] == [
        "#3 🔴 pico de denied",
        "#2 🔴 PixDown",
        "#1 🟠 Pix fora",
    ]


async def test_alerts_lists_severity_and_since(loaded: Core, clock: FixedClock) -> None:
    fire(loaded, "f00dbeef00", clock.now() - timedelta(minutes=7), "Pix <down> & out")
    text = await ask(loaded, "alertas")
    assert "critical · PixDown — Pix <down> & out · desde 11:53 (há 7 min) · id f00dbeef" in text


async def test_anomalies_in_a_period(loaded: Core, clock: FixedClock) -> None:
    now = clock.now()
    start = now - timedelta(hours=3)
    finding(
        loaded, "k2", "outage", "approved", start, now - timedelta(hours=2), "aprovações zeradas"
    )
    assert "Nenhuma anomalia (última hora)" in await ask(loaded, "anomalias")
    text = await ask(loaded, "anomalias últimas 4 horas")
    assert "aprovações zeradas" in text and "resolvida às 10:00" in text


async def test_metrics_compare_with_previous_days(loaded: Core, clock: FixedClock) -> None:
    text = await ask(loaded, "metricas")
    assert "Transações/min:" in text and "normal" in text
    approval = await ask(loaded, "taxa de aprovação")
    assert approval.splitlines()[-1] == "Aprovação: 79,9% (1.176) (normal 83,4%, 1,0×)"
    reply = await loaded.handle(Invocation("console", "op", "metricas bananas"))
    assert reply.outcome == "error" and "denied" in reply.title


async def test_incident_open_list_close(loaded: Core) -> None:
    opened = await ask(loaded, "incidente Aprovações caindo")
    assert "#1 aberto" in opened
    assert "#1 🟠 Aprovações caindo · 👀 console:op" in await ask(loaded, "incidente")
    shown = await ask(loaded, "incidente 1")
    assert "Linha do tempo" in shown and "aberto · console:op" in shown
    assert "encerrado" in await ask(loaded, "incidente fechar 1")
    assert "Nenhum incidente aberto" in await ask(loaded, "incidents")
    assert [e.action for e in loaded.store.audit_entries("incident.")] == [
        "incident.close",
        "incident.open",
    ]
