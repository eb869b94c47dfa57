"""The shift briefing and the handoff, against a store holding the real CloudWalk data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import Core, build_core
from bot.settings import Settings
from skills.briefing import briefing_reply, handoff_reply
from skills.core import Silence, SkillContext
from storage.parsing import EventRow, FeedBatch, load_file
from storage.records import AlertGroup, AlertIn, AnomalyRecord
from storage.store import Store
from tests.conftest import DATA
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")
MIDNIGHT = datetime(2025, 7, 15, 0, 0, tzinfo=SP)


def load(core: Core) -> Core:
    core.store.ingest(load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP))
    return core


@pytest.fixture
def loaded(settings: Settings, sqlite_store: Store, clock: FixedClock) -> Core:
    clock.set(MIDNIGHT)
    return load(build_core(settings, clock=clock, store=sqlite_store))


def context(core: Core, lang: str = "pt") -> SkillContext:
    return replace(core.dispatcher.context, lang="en" if lang == "en" else "pt")


def alert(core: Core, fingerprint: str, name: str, at: datetime, status: str = "firing") -> None:
    """An alert's webhook arriving at `at` (firing since `at`, or resolved at `at`)."""
    one = AlertIn(
        fingerprint,
        status,
        {"alertname": name, "severity": "critical"},
        {},
        at if status == "firing" else None,
        at if status == "resolved" else None,
    )
    core.store.apply_alert_group(AlertGroup("nightshift", status, "g", (one,)), at)


def episode(core: Core, key: str, start: datetime, end: datetime | None, text: str) -> None:
    core.store.save_anomaly(
        AnomalyRecord(
            key,
            "surge",
            "denied",
            ("denied",),
            start,
            end,
            start,
            end or start,
            "critical",
            0.9,
            7.0,
            42.0,
            text,
            text,
            end is not None,
        )
    )


async def test_briefing_at_midnight_on_the_real_data(core: Core, clock: FixedClock) -> None:
    clock.set(MIDNIGHT)
    load(core)
    alert(core, "aa11", "PixDown", MIDNIGHT - timedelta(hours=3))
    alert(core, "bb22", "CardLatency", MIDNIGHT - timedelta(hours=20))
    alert(core, "bb22", "CardLatency", MIDNIGHT - timedelta(hours=19), "resolved")
    core.store.ack_alert("aa11", "telegram:1", MIDNIGHT - timedelta(hours=2, minutes=50))
    alert(core, "cc33", "FeedLag", MIDNIGHT - timedelta(minutes=30))
    episode(core, "k1", MIDNIGHT - timedelta(hours=5), MIDNIGHT - timedelta(hours=4), "negadas 6×")
    episode(core, "k2", MIDNIGHT - timedelta(minutes=20), None, "falhas 3×")
    core.store.open_incident("Pix instável", "telegram:1", MIDNIGHT - timedelta(hours=2))
    reply = await briefing_reply(context(core))
    text = reply.plain_text()
    assert reply.title == "🌙 Briefing do turno · 15/07 00:00"
    lines = text.splitlines()
    # 07-14 against the median of 07-13 and 07-12, hour by hour (07-12 starts at 13:45).
    assert "💳 Transações 24h: 180.298 (normal 178.837, +1%)" in lines
    assert "💳 Transações 8h: 60.547 (normal 60.096, +1%)" in lines
    assert "✅ Aprovação 24h: 93,0% (normal 92,3%)" in lines
    assert "📈 Anomalias 24h: 2 (1 abertas); nas últimas 8h:" in lines
    assert "   🔴 desde 14/07 23:40 (20 min) · falhas 3× · 🔴 aberta" in lines
    assert "   🔴 14/07 19:00–20:00 (1h00m) · negadas 6× · ✅ resolvida" in lines
    assert "🚨 Alertas 24h: 3 disparados, 1 resolvidos; 2 ativos agora" in lines
    assert "   #1 Pix instável · aberto às 14/07 22:00 por telegram:1" in lines
    # The next 8 hours from the same hours on 07-14 and 07-13.
    assert lines[lines.index("00:00     7.628") + 7] == "07:00     7.691"
    pending = text.split("📌 Pendências")[1]
    assert "• Incidente #1 aberto: Pix instável (desde 14/07 22:00)" in pending
    assert "• Alerta sem ack: 🔴 FeedLag (desde 14/07 23:30, id cc33)" in pending
    assert "PixDown" not in pending  # acknowledged
    assert reply.outcome == "ok"


async def test_briefing_in_english(loaded: Core) -> None:
    text = (await briefing_reply(context(loaded, "en"))).plain_text()
    assert text.startswith("🌙 Shift briefing · 07-15 00:00")
    assert "💳 Transactions 24h: 180,298 (normal 178,837, +1%)" in text
    assert "✅ Approval rate 8h: 93.3% (normal 92.3%)" in text
    assert "📈 Anomalies 24h: none" in text
    assert "🔮 Expected volume, next 8h (median of previous days)" in text
    assert "Nothing pending." in text


async def test_briefing_on_an_empty_store_says_there_is_no_history(
    settings: Settings, sqlite_store: Store, clock: FixedClock
) -> None:
    clock.set(MIDNIGHT)
    core = build_core(settings, clock=clock, store=sqlite_store)
    text = (await briefing_reply(context(core))).plain_text()
    assert "💳 Transações 24h: 0 (sem histórico)" in text
    assert "✅ Aprovação 24h: —" in text
    assert "00:00  sem histórico" in text
    assert "Nada pendente." in text


async def test_late_briefing_says_so(loaded: Core, clock: FixedClock) -> None:
    clock.set(MIDNIGHT + timedelta(minutes=40))
    text = (await briefing_reply(context(loaded), late_for=MIDNIGHT)).plain_text()
    assert "⏰ ATRASADO: deveria ter saído às 00:00, enviado às 00:40" in text


async def test_briefing_ranks_merchants_by_failure_rate(loaded: Core) -> None:
    minute = int((MIDNIGHT - timedelta(hours=1)).timestamp())
    events = [
        EventRow(f"m1-{i}", minute, "failed" if i < 12 else "approved", 10.0, "loja-1")
        for i in range(30)
    ]
    events += [
        EventRow(f"m2-{i}", minute, "denied" if i < 1 else "approved", 10.0, "loja-2")
        for i in range(25)
    ]
    events += [EventRow(f"m3-{i}", minute, "failed", 10.0, "loja-3") for i in range(5)]
    loaded.store.ingest(FeedBatch(events=tuple(events)))
    lines = (await briefing_reply(context(loaded))).plain_text().splitlines()
    at = lines.index("🏪 Lojistas com mais falhas (8h):")
    assert lines[at + 1 : at + 3] == ["   loja-1: 40,0% de 30", "   loja-2: 4,0% de 25"]
    assert not any("loja-3" in line for line in lines)  # too few events to rank


class Silences:
    def __init__(self, silences: Sequence[Silence] | None) -> None:
        self._silences = silences

    async def alert_states(self) -> Mapping[str, str]:
        return {}

    async def create_silence(
        self,
        matchers: Sequence[dict[str, object]],
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        raise NotImplementedError

    async def silence_list(self) -> Sequence[Silence]:
        if self._silences is None:
            raise ConnectionError("down")
        return self._silences


def silence(state: str, ends: datetime, name: str) -> Silence:
    return Silence(name, state, ends, f"alertname={name}", "ana")


async def test_briefing_lists_silences_expiring_tonight(loaded: Core) -> None:
    source = Silences(
        [
            silence("active", MIDNIGHT + timedelta(hours=3), "PixDown"),
            silence("active", MIDNIGHT + timedelta(hours=10), "Tomorrow"),
            silence("expired", MIDNIGHT - timedelta(hours=1), "Gone"),
        ]
    )
    ctx = replace(context(loaded), alertmanager=source)
    text = (await briefing_reply(ctx)).plain_text()
    assert "🔇 Silêncios que expiram esta noite:\n   03:00 · alertname=PixDown (por ana)" in text
    assert "Tomorrow" not in text and "Gone" not in text
    down = replace(context(loaded), alertmanager=Silences(None))
    text = (await briefing_reply(down)).plain_text()
    assert "🔇 Silêncios: Alertmanager não respondeu (ConnectionError)" in text
    assert "💳 Transações 24h" in text  # the briefing still goes out


async def test_handoff_tells_the_night_with_mtta_and_mttr_beside_previous_nights(
    loaded: Core, clock: FixedClock
) -> None:
    eight = MIDNIGHT + timedelta(hours=8)
    store = loaded.store
    # Tonight: PixDown at 01:00, acked 10 min later, resolved at 01:40; FeedLag still firing.
    alert(loaded, "aa11", "PixDown", MIDNIGHT + timedelta(hours=1))
    store.ack_alert("aa11", "telegram:1", MIDNIGHT + timedelta(hours=1, minutes=10))
    alert(loaded, "aa11", "PixDown", MIDNIGHT + timedelta(hours=1, minutes=40), "resolved")
    alert(loaded, "bb22", "FeedLag", MIDNIGHT + timedelta(hours=6))
    episode(
        loaded,
        "k1",
        MIDNIGHT + timedelta(hours=3),
        MIDNIGHT + timedelta(hours=3, minutes=20),
        "negadas 6×",
    )
    # Previous nights: two alerts acked after 20 and 40 min, resolved after 1 h and 3 h.
    for n, (ack, fixed) in enumerate(((20, 60), (40, 180)), start=1):
        start = MIDNIGHT - timedelta(days=n) + timedelta(hours=2)
        alert(loaded, f"old{n}", "Old", start)
        store.ack_alert(f"old{n}", "slack:U1", start + timedelta(minutes=ack))
        alert(loaded, f"old{n}", "Old", start + timedelta(minutes=fixed), "resolved")
    store.record_audit(
        "telegram:1",
        "runbook.result",
        {"runbook": "restart_pix", "params": {"region": "sp"}, "status": "ok"},
        "ok",
        MIDNIGHT + timedelta(hours=1, minutes=20),
    )
    opened = store.open_incident("Pix fora", "telegram:1", MIDNIGHT + timedelta(hours=1))
    store.close_incident(opened.id, "telegram:1", MIDNIGHT + timedelta(hours=2))
    store.open_incident("Lentidão cartões", "slack:U1", MIDNIGHT + timedelta(hours=7))
    clock.set(eight)
    reply = await handoff_reply(context(loaded), since=MIDNIGHT)
    lines = reply.plain_text().splitlines()
    assert reply.title == "🌅 Passagem de turno · 15/07 08:00"
    assert "🌒 A noite (00:00–08:00)" in lines
    assert "🚨 Alertas: 2" in lines
    assert "   🔴 01:00 PixDown · ack telegram:1 em 10 min · resolvido em 40 min" in lines
    assert "   🔴 06:00 FeedLag · sem ack · 🔴 aberto" in lines
    assert "   🔴 03:00 negadas 6× · resolvido em 20 min" in lines
    assert "   01:20 restart_pix region=sp · telegram:1 · ok" in lines
    assert "   #1 Pix fora · 01:00–02:00, encerrado por telegram:1" in lines
    assert "   #2 Lentidão cartões · aberto às 07:00 por slack:U1" in lines
    assert "MTTA: 10 min (n=1) · 7 noites anteriores: 30 min (n=2)" in lines
    # MTTR: tonight PixDown 40 min and the anomaly 20 min; before, 1 h and 3 h.
    assert "MTTR: 30 min (n=2) · 7 noites anteriores: 2h00m (n=2)" in lines
    assert "🚨 1 alertas ativos, 1 sem ack" in lines
    assert "• Incidente #2 aberto: Lentidão cartões (desde 07:00)" in lines
