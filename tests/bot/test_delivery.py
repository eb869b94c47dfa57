"""Incident delivery to the fake Telegram and Slack servers, through the real SDKs: one message
per incident per chat, a new incident always a new message, edits coalesced, through outages,
429s, crashes, storms and floods."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.delivery import EDIT_GAP, NEW_PER_MINUTE, DeliveryWorker, Renderer
from bot.metrics import Metrics
from bot.notifiers import SlackNotifier, TelegramNotifier
from bot.routing import Routes
from bot.slack import SlackAdapter
from bot.telegram import TelegramAdapter
from skills.core import Invocation, ProgressSink, Reply
from storage.records import AlertGroup, AlertIn
from storage.store import Store
from tests.fakes.clock import FixedClock
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

CHAT = -1001
CHANNEL = "C0ALERTS"
SP = ZoneInfo("America/Sao_Paulo")


async def _nobody(inv: Invocation, progress: ProgressSink | None) -> Reply:
    raise AssertionError("no chat command expected in these tests")


@dataclass
class Rig:
    store: Store
    clock: FixedClock
    tg: FakeTelegram
    slack: FakeSlack
    worker: DeliveryWorker
    sleeps: list[float]

    def fire(
        self,
        *fingerprints: str,
        status: str = "firing",
        severity: str = "critical",
        name: str | None = None,
        group: str | None = None,
        **labels: str,
    ) -> None:
        """One webhook: these alerts, of one name (default `Alert<fingerprint>` each) in one
        Alertmanager group (default: one per name)."""
        now = self.clock.now()
        alerts = tuple(
            AlertIn(
                fingerprint=f,
                status=status,
                labels={
                    "alertname": name or f"Alert{f}",
                    "severity": severity,
                    "instance": f"pay-{i}",
                    **labels,
                },
                annotations={"summary": f"{name or f} <is> down & out"},
                starts_at=now - timedelta(minutes=3),
                ends_at=None if status == "firing" else now,
            )
            for i, f in enumerate(fingerprints)
        )
        key = group or f'{{}}:{{alertname="{name or fingerprints[0]}"}}'
        self.store.apply_alert_group(AlertGroup("nightshift", status, key, alerts), now)

    def telegram_texts(self) -> list[str]:
        return [m.text for m in self.tg.sent(CHAT)]

    def telegram_posts(self) -> list[str]:
        """What the chat showed as new messages (not edits, not thread replies)."""
        return [m.first_text for m in self.tg.posts(CHAT)]


async def drain(rig: Rig, rounds: int = 8) -> None:
    """Run the worker, letting simulated time pass so every retry and edit comes due."""
    for _ in range(rounds):
        await rig.worker.run_once()
        rig.clock.advance(minutes=6)


@pytest.fixture
async def rig(store: Store, clock: FixedClock) -> AsyncIterator[Rig]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with FakeTelegram() as tg, FakeSlack() as slack:
        telegram = TelegramAdapter(
            tg.token,
            tg.api_url,
            [str(CHAT)],
            "polling",
            None,
            _nobody,
            poll_timeout=1,
            sleep=sleep,
        )
        slack_adapter = SlackAdapter(
            slack.bot_token, "secret", None, slack.api_url, CHANNEL, _nobody, rate_limit_retries=0
        )
        await telegram.start()
        await slack_adapter.start()
        worker = DeliveryWorker(
            store=store,
            clock=clock,
            notifiers={
                "telegram": TelegramNotifier(telegram),
                "slack": SlackNotifier(slack_adapter),
            },
            render=Renderer(
                store, "pt", SP, can_silence=True, oncall=("telegram:42", "slack:U0ONCALL")
            ),
            metrics=Metrics(),
            routes=Routes.default(CHANNEL, [str(CHAT)], console=False),
            interval=lambda _d: 0.0,
            sleep=sleep,
        )
        yield Rig(store, clock, tg, slack, worker, sleeps)
        await telegram.stop()
        await slack_adapter.stop()


async def test_one_message_per_incident_then_an_edit_and_a_thread_reply_when_it_resolves(
    rig: Rig,
) -> None:
    rig.fire("f1")
    rig.fire("f1")  # Alertmanager's repeat_interval re-sends the group: nothing new
    await drain(rig)
    [message] = rig.tg.sent(CHAT)
    assert message.text.startswith("🔴 INCIDENTE #1 · Alertf1")
    assert "f1 <is> down & out" in message.text  # escaped on the wire, literal on screen
    assert [b["text"] for b in message.buttons] == ["👀 Ack", "🔇 1h", "🔇 4h"]
    [posted] = rig.slack.posted(CHANNEL)

    rig.fire("f1", status="resolved")
    await drain(rig)
    edited = rig.tg.find(CHAT, message.message_id)
    assert edited.text.startswith("✅ RESOLVIDO · INCIDENTE #1") and edited.edits == 1
    assert edited.buttons == []
    replies = [c for c in rig.tg.calls_to("sendMessage") if "reply_parameters" in c.params]
    assert len(replies) == 1 and "resolvido às" in replies[0].params["text"]
    assert len(rig.tg.sent(CHAT)) == 2  # the card and its threaded reply
    assert len(rig.slack.calls_to("chat.update")) == 1
    [thread] = [m for m in rig.slack.posted(CHANNEL) if m.thread_ts == posted.ts]
    assert "resolvido" in thread.text


async def test_warning_goes_to_slack_only(rig: Rig) -> None:
    rig.fire("w1", severity="warning")
    await drain(rig)
    assert rig.tg.sent(CHAT) == []
    assert len(rig.slack.posted(CHANNEL)) == 1


async def test_a_storm_is_one_incident_and_a_new_critical_20s_later_is_a_new_message(
    rig: Rig,
) -> None:
    rig.fire(*(f"s{i:03d}" for i in range(300)), name="BarsStorm", service="bars")
    await rig.worker.run_once()
    [card] = rig.tg.sent(CHAT)
    assert "BarsStorm: 300 alertas em pay-0…pay-299" in card.text
    rig.clock.advance(seconds=20)
    rig.fire("new", name="NewCritical", service="ledger")
    await rig.worker.run_once()
    assert [t.split("\n")[0] for t in rig.telegram_posts()] == [
        "🔴 INCIDENTE #1 · BarsStorm",
        "🔴 INCIDENTE #2 · NewCritical",
    ]
    assert rig.tg.calls_to("editMessageText") == []
    assert len(rig.slack.calls_to("chat.postMessage")) == 2

    rig.clock.advance(minutes=5)
    rig.fire(
        *(f"s{i:03d}" for i in range(300)), name="BarsStorm", status="resolved", service="bars"
    )
    await drain(rig)
    storm = rig.tg.find(CHAT, card.message_id)
    assert storm.text.startswith("✅ RESOLVIDO · INCIDENTE #1") and storm.edits == 1
    replies = [c for c in rig.tg.calls_to("sendMessage") if "reply_parameters" in c.params]
    assert len(replies) == 1  # 300 resolutions: one edit and one reply in its thread
    storm_messages = [m for m in rig.tg.sent(CHAT) if "BarsStorm" in m.text]
    assert len(storm_messages) == 2  # the card and its reply: the whole storm


async def test_a_new_critical_symptom_of_an_open_incident_rings_and_a_storm_does_not(
    rig: Rig,
) -> None:
    rig.fire("a1", name="ApiDown", service="pix")
    await rig.worker.run_once()
    rig.fire(*(f"a{i}" for i in range(2, 40)), name="ApiDown", service="pix", group="other")
    await rig.worker.run_once()
    assert len(rig.telegram_posts()) == 1  # more of the same name: the card is edited
    rig.clock.advance(seconds=30)
    rig.fire("db", name="DatabaseDown", service="pix")  # same service: the same fire
    await drain(rig)
    posts = rig.telegram_posts()
    assert len(posts) == 2 and posts[1].startswith("🔴 NOVO SINTOMA · DatabaseDown no incidente #1")
    assert [i.id for i in rig.store.incidents()] == [1]
    [card] = [m for m in rig.tg.sent(CHAT) if m.text.startswith("🔴 INCIDENTE #1")]
    assert "ApiDown: 39 alertas" in card.text and "DatabaseDown" in card.text


async def test_edits_are_coalesced_and_spaced(rig: Rig) -> None:
    rig.fire("e0", name="Bars", service="bars")
    await rig.worker.run_once()
    for i in range(1, 6):  # five changes within a second
        rig.fire(f"e{i}", name="Bars", service="bars", group=f"g{i}")
    await rig.worker.run_once()
    assert rig.tg.calls_to("editMessageText") == []  # the first edit waits EDIT_GAP
    rig.clock.advance(seconds=EDIT_GAP)
    await rig.worker.run_once()
    await rig.worker.run_once()
    [edit] = rig.tg.calls_to("editMessageText")
    assert "Bars: 6 alertas" in edit.params["text"]


async def test_a_new_incident_is_posted_before_pending_edits(rig: Rig) -> None:
    rig.fire("old", name="Old", service="old")
    await rig.worker.run_once()
    rig.clock.advance(seconds=EDIT_GAP)
    rig.fire("old2", name="Old", service="old", group="g2")  # the old card is due an edit
    rig.fire("fresh", name="Fresh", service="fresh")
    await rig.worker.run_once()
    methods = [c.method for c in rig.tg.calls if c.method in ("sendMessage", "editMessageText")]
    assert methods == ["sendMessage", "sendMessage", "editMessageText"]
    assert "Fresh" in str(rig.tg.calls_to("sendMessage")[1].params["text"])


async def test_a_flood_of_new_incidents_is_capped_and_rolled_into_one_new_message(
    rig: Rig,
) -> None:
    for i in range(12):  # twelve names in twelve groups: twelve incidents at once
        rig.fire(f"n{i}")
    await rig.worker.run_once()
    posts = rig.tg.posts(CHAT)
    assert len(posts) == NEW_PER_MINUTE + 1
    rollup = posts[-1]
    assert rollup.text.startswith(f"🌩️ Mais {12 - NEW_PER_MINUTE} incidentes")
    assert "#12 🔴 Alertn11" in rollup.text
    rig.clock.advance(seconds=30)  # within the flood's minute
    rig.fire("n20")
    await rig.worker.run_once()  # rolled in: the roll-up is due an edit
    await rig.worker.run_once()
    assert len(rig.tg.posts(CHAT)) == NEW_PER_MINUTE + 1
    assert rig.tg.find(CHAT, rollup.message_id).text.startswith(
        f"🌩️ Mais {13 - NEW_PER_MINUTE} incidentes"
    )
    rig.clock.advance(minutes=2)  # the flood is over: a new incident rings on its own again
    rig.fire("n30")
    await rig.worker.run_once()
    assert rig.tg.posts(CHAT)[-1].text.startswith("🔴 INCIDENTE #14")
    assert len(rig.store.incidents(limit=100)) == 14


async def test_a_minute_of_5xx_then_recovery_tells_every_incident_once(rig: Rig) -> None:
    rig.tg.fail("sendMessage", status=502, times=6)
    rig.slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
    rig.fire("a")
    rig.fire("b")
    for _ in range(12):
        await rig.worker.run_once()
        rig.clock.advance(seconds=5)
    await drain(rig, rounds=12)
    assert sorted(t.split("\n")[0] for t in rig.telegram_posts()) == [
        "🔴 INCIDENTE #1 · Alerta",
        "🔴 INCIDENTE #2 · Alertb",
    ]
    assert len(rig.slack.posted(CHANNEL)) == 2


async def test_one_chat_failing_does_not_delay_the_other(rig: Rig) -> None:
    rig.tg.fail("sendMessage", status=502, times=50)
    rig.fire("x1")
    await rig.worker.run_once()
    assert len(rig.slack.posted(CHANNEL)) == 1  # in the same pass Telegram failed
    assert rig.tg.sent(CHAT) == []


async def test_429_waits_as_told_and_sends_once(rig: Rig) -> None:
    rig.tg.fail("sendMessage", status=429, retry_after=7, times=1)
    rig.fire("r1")
    await drain(rig)
    assert 7 in rig.sleeps  # python-telegram-bot's RetryAfter honoured
    assert len(rig.tg.sent(CHAT)) == 1


async def test_slack_429_comes_back_after_retry_after(rig: Rig) -> None:
    rig.slack.fail("chat.postMessage", status=429, retry_after=30, times=1)
    rig.fire("s1")
    await rig.worker.run_once()
    assert rig.slack.posted(CHANNEL) == []
    rig.clock.advance(seconds=20)
    await rig.worker.run_once()
    assert rig.slack.posted(CHANNEL) == []  # not before Retry-After
    rig.clock.advance(seconds=11)
    await rig.worker.run_once()
    assert len(rig.slack.posted(CHANNEL)) == 1


async def test_a_courier_killed_after_claiming_is_replaced_and_posts_once(rig: Rig) -> None:
    rig.fire("k1")
    await rig.worker.correlate()
    claimed = rig.store.claim_cards(f"telegram:{CHAT}", rig.clock.now(), timedelta(minutes=2))
    assert len(claimed) == 1  # ... and the process dies before sending
    await rig.worker.run_once()
    assert rig.tg.sent(CHAT) == []  # the lease still holds
    rig.clock.advance(minutes=3)
    await drain(rig)
    assert len(rig.tg.sent(CHAT)) == 1
    assert len(rig.slack.posted(CHANNEL)) == 1


async def test_a_message_deleted_in_the_chat_is_posted_anew(rig: Rig) -> None:
    rig.fire("d1", name="Deleted", service="del")
    await drain(rig)
    [card] = rig.tg.sent(CHAT)
    rig.tg.delete_by_user(CHAT, card.message_id)
    rig.fire("d2", name="Deleted", service="del")  # the same group, an hour later
    await drain(rig)
    posts = [t for t in rig.telegram_posts() if t.startswith("🔴 INCIDENTE #1")]
    assert len(posts) == 2 and "Deleted: 2 alertas" in posts[1]
    assert card.message_id != rig.tg.sent(CHAT)[-1].message_id


async def test_ack_edits_the_card_on_every_platform_and_drops_the_button(rig: Rig) -> None:
    rig.fire("ack1")
    await drain(rig)
    assert rig.store.ack_incident(1, "telegram:42", rig.clock.now())
    await drain(rig)
    [message] = rig.tg.sent(CHAT)
    shown = rig.tg.find(CHAT, message.message_id)
    assert "reconhecido por telegram:42" in shown.text
    assert "👀 Ack" not in [b["text"] for b in shown.buttons]
    assert len(rig.slack.calls_to("chat.update")) == 1
    assert rig.store.alert("ack1") is not None and rig.store.alert("ack1").acked_by == "telegram:42"  # type: ignore[union-attr]


def _escalations(rig: Rig) -> Sequence[str]:
    return [t for t in rig.telegram_posts() if t.startswith("📣 ESCALONAMENTO")]


async def test_an_unacknowledged_critical_incident_escalates_each_interval_up_to_3_times(
    rig: Rig,
) -> None:
    every = timedelta(minutes=10)
    rig.fire("esc")
    await rig.worker.run_once()
    rig.clock.advance(minutes=9)
    assert rig.store.escalate_due(rig.clock.now(), every, 3, None) == []
    rig.clock.advance(minutes=1)
    assert rig.store.escalate_due(rig.clock.now(), every, 3, None) == [1]
    await rig.worker.run_once()
    [first] = _escalations(rig)
    assert first.startswith("📣 ESCALONAMENTO 1/3 · sem ack há 10 min · 🔴 INCIDENTE #1")
    mention = rig.tg.calls_to("sendMessage")[-1].params["text"]
    assert 'href="tg://user?id=42"' in mention
    [slack_escalation] = [
        m for m in rig.slack.posted(CHANNEL) if "ESCALATION" in m.text or "ESCALONAMENTO" in m.text
    ]
    assert slack_escalation.text.startswith("<@U0ONCALL>")
    for _ in range(4):
        rig.clock.advance(minutes=10)
        rig.store.escalate_due(rig.clock.now(), every, 3, None)
        await rig.worker.run_once()
    assert [t.split(" · ")[0] for t in _escalations(rig)] == [
        "📣 ESCALONAMENTO 1/3",
        "📣 ESCALONAMENTO 2/3",
        "📣 ESCALONAMENTO 3/3",
    ]
    timeline = rig.store.incident_view(1, with_timeline=True)
    assert timeline is not None
    assert [e.event for e in timeline.timeline].count("escalated") == 3


async def test_no_escalation_after_ack_or_silence(rig: Rig) -> None:
    every = timedelta(minutes=10)
    rig.fire("acked")
    rig.fire("hushed")
    await rig.worker.run_once()
    rig.clock.advance(minutes=4)
    rig.store.ack_incident(1, "telegram:42", rig.clock.now())
    rig.store.silence_incident(2, "slack:U1", rig.clock.now() + timedelta(hours=1), rig.clock.now())
    for _ in range(4):
        rig.clock.advance(minutes=10)
        assert rig.store.escalate_due(rig.clock.now(), every, 3, None) == []
    await drain(rig)
    assert _escalations(rig) == []


async def test_escalations_go_to_the_escalation_destinations(rig: Rig) -> None:
    rig.fire("w", severity="critical")
    await rig.worker.run_once()
    rig.clock.advance(minutes=10)
    rig.store.escalate_due(rig.clock.now(), timedelta(minutes=10), 3, [f"slack:{CHANNEL}"])
    await rig.worker.run_once()
    assert _escalations(rig) == []
    assert any("ESCALONAMENTO" in m.text for m in rig.slack.posted(CHANNEL))
