"""Alert delivery through the outbox to the fake Telegram and Slack servers, via the real SDKs:
exactly once per destination, through outages, 429s, crashes and storms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.delivery import DIGEST_GAP, DeliveryWorker, Routes
from bot.metrics import Metrics
from bot.notifiers import SlackNotifier, TelegramNotifier
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
    routes: Routes
    sleeps: list[float]

    def fire(self, *fingerprints: str, status: str = "firing", severity: str = "critical") -> None:
        now = self.clock.now()
        alerts = tuple(
            AlertIn(
                fingerprint=f,
                status=status,
                labels={"alertname": f"Alert{f}", "severity": severity, "service": "pix"},
                annotations={"summary": f"{f} <is> down & out"},
                starts_at=now - timedelta(minutes=3),
                ends_at=None if status == "firing" else now,
            )
            for f in fingerprints
        )
        self.store.apply_alert_group(
            AlertGroup("nightshift", status, "g", alerts), now, self.routes
        )

    def telegram_messages(self) -> list[str]:
        return [m.text for m in self.tg.sent(CHAT)]


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
        routes = Routes.default(CHANNEL, [str(CHAT)], console=False)
        worker = DeliveryWorker(
            store=store,
            clock=clock,
            notifiers={
                "telegram": TelegramNotifier(telegram),
                "slack": SlackNotifier(slack_adapter),
            },
            lang="pt",
            tz=SP,
            metrics=Metrics(),
            can_silence=True,
            interval=lambda _d: 0.0,
            sleep=sleep,
        )
        yield Rig(store, clock, tg, slack, worker, routes, sleeps)
        await telegram.stop()
        await slack_adapter.stop()


async def drain(rig: Rig, rounds: int = 8) -> None:
    """Run the worker, letting simulated time pass so every retry comes due."""
    for _ in range(rounds):
        await rig.worker.run_once()
        rig.clock.advance(minutes=6)


async def test_firing_once_resolved_edits_and_replies_in_thread(rig: Rig) -> None:
    rig.fire("f1")
    rig.fire("f1")  # Alertmanager's repeat_interval re-sends the group: nothing new
    await drain(rig)
    [message] = rig.tg.sent(CHAT)
    assert message.text.startswith("🔴 CRITICAL · Alertf1")
    assert "f1 <is> down & out" in message.text  # escaped on the wire, literal on screen
    assert [b["text"] for b in message.buttons] == ["🔇 1h", "🔇 4h", "🔇 24h", "👀 Ack"]
    [posted] = rig.slack.posted(CHANNEL)

    rig.fire("f1", status="resolved")
    await drain(rig)
    edited = rig.tg.find(CHAT, message.message_id)
    assert edited.text.startswith("✅ RESOLVIDO · Alertf1") and edited.edits == 1
    assert edited.buttons == []
    replies = [c for c in rig.tg.calls_to("sendMessage") if "reply_parameters" in c.params]
    assert len(replies) == 1 and "resolvido às" in replies[0].params["text"]
    assert len(rig.tg.sent(CHAT)) == 2  # the first message and its threaded reply
    assert len(rig.slack.calls_to("chat.update")) == 1
    [thread] = [m for m in rig.slack.posted(CHANNEL) if m.thread_ts == posted.ts]
    assert "resolvido" in thread.text
    assert rig.store.outbox_counts() == {"sent": 4}


async def test_warning_goes_to_slack_only(rig: Rig) -> None:
    rig.fire("w1", severity="warning")
    await drain(rig)
    assert rig.tg.sent(CHAT) == []
    assert len(rig.slack.posted(CHANNEL)) == 1


async def test_a_minute_of_5xx_then_recovery_delivers_everything_once(rig: Rig) -> None:
    rig.tg.fail("sendMessage", status=502, times=10)
    rig.slack.fail("chat.postMessage", status=503, times=10)
    rig.fire("a", "b")
    for _ in range(12):  # a minute of failures in 5 s steps, then the APIs are back
        await rig.worker.run_once()
        rig.clock.advance(seconds=5)
    await drain(rig, rounds=12)
    assert sorted(t.split("\n")[0] for t in rig.telegram_messages()) == [
        "🔴 CRITICAL · Alerta",
        "🔴 CRITICAL · Alertb",
    ]
    assert len(rig.slack.posted(CHANNEL)) == 2
    assert rig.store.outbox_counts() == {"sent": 4}


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


async def test_a_worker_killed_after_claiming_is_replaced_and_sends_once(rig: Rig) -> None:
    rig.fire("k1")
    claimed = rig.store.claim_deliveries(rig.clock.now(), timedelta(minutes=2))
    assert len(claimed) == 2  # ... and the process dies before sending
    await rig.worker.run_once()
    assert rig.tg.sent(CHAT) == []  # the lease still holds
    rig.clock.advance(minutes=3)
    await drain(rig)
    assert len(rig.tg.sent(CHAT)) == 1
    assert len(rig.slack.posted(CHANNEL)) == 1


async def test_500_alerts_at_once_are_at_most_3_messages_per_destination(rig: Rig) -> None:
    rig.fire(*(f"s{i:03d}" for i in range(500)))
    await drain(rig)
    assert 1 <= len(rig.tg.sent(CHAT)) <= 3
    assert 1 <= len(rig.slack.posted(CHANNEL)) <= 3
    digest = rig.tg.sent(CHAT)[-1].text
    assert "Tempestade de alertas" in digest and "500 disparando" in digest
    assert rig.store.outbox_counts().get("pending", 0) == 0


async def test_a_growing_storm_edits_its_digest_at_most_once_a_second(rig: Rig) -> None:
    rig.fire(*(f"g{i:03d}" for i in range(5)))
    await rig.worker.run_once()
    [digest] = rig.tg.sent(CHAT)
    rig.sleeps.clear()
    rig.fire(*(f"h{i:03d}" for i in range(5)))
    await rig.worker.run_once()
    # The platforms' pace is 0 in this rig: what waited is the digest's own gap.
    assert rig.sleeps and all(0.9 < s <= DIGEST_GAP for s in rig.sleeps)
    assert "10 disparando" in rig.tg.find(CHAT, digest.message_id).text
    assert len(rig.tg.sent(CHAT)) == 1


async def test_ack_edits_the_message_on_every_platform(rig: Rig) -> None:
    rig.fire("ack1")
    await drain(rig)
    assert rig.store.ack_alert("ack1", "telegram:42", rig.clock.now())
    await drain(rig)
    [message] = rig.tg.sent(CHAT)
    assert "reconhecido por telegram:42" in rig.tg.find(CHAT, message.message_id).text
    assert "👀 Ack" not in [b["text"] for b in rig.tg.find(CHAT, message.message_id).buttons]
    assert len(rig.slack.calls_to("chat.update")) == 1
