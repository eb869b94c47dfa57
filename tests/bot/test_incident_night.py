"""A night as a new user would have it, with every real part: a real Alertmanager, `nightshift
serve` as a process (killed with -9 in the middle), and the fake Telegram and Slack servers
failing on purpose. What the chats recorded is what is checked: a 300-alert storm is one
incident (a card, then one edit and one thread reply when it resolves); every new incident is a
new message, exactly once, whatever fails."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.alertmanager import AlertmanagerClient
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.realservers import AlertmanagerFactory

TOKEN = "night-token"
CHAT = 777
CHANNEL = "C0NIGHT"
STORM = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(check: Callable[[], bool], within: float = 30.0) -> float:
    """Seconds it took until `check()` held (fails the test after `within`)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > within:
            raise AssertionError(f"not reached within {within:.0f} s")
        await asyncio.sleep(0.05)
    return loop.time() - started


@dataclass
class Night:
    tg: FakeTelegram
    slack: FakeSlack
    am: AlertmanagerClient
    start_serve: Callable[[], Awaitable[subprocess.Popen[bytes]]]

    def telegram_cards(self) -> list[str]:
        """First lines of the Telegram messages that rang (posts, not thread replies)."""
        return [m.first_text.split("\n")[0] for m in self.tg.posts(CHAT)]

    def slack_cards(self) -> list[str]:
        return [m.text.split("\n")[0] for m in self.slack.posted(CHANNEL) if m.thread_ts is None]


def _alert(name: str, service: str, instance: str, *, ended: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {
            "alertname": name,
            "severity": "critical",
            "service": service,
            "instance": instance,
        },
        "annotations": {"summary": f"{name} on {instance}"},
        "startsAt": now - timedelta(minutes=2),
    }
    if ended:
        alert["endsAt"] = now - timedelta(seconds=1)
    return alert


@pytest.fixture
async def night(
    alertmanager: AlertmanagerFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Night]:
    port = _free_port()
    server = alertmanager(
        f"http://127.0.0.1:{port}/webhooks/alertmanager", TOKEN, group_interval="2s"
    )
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegram() as tg, FakeSlack() as slack:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHIFT_")},
            "NIGHTSHIFT_DATABASE_URL": database_url,
            "NIGHTSHIFT_PORT": str(port),
            "NIGHTSHIFT_WEBHOOK_TOKEN": TOKEN,
            "NIGHTSHIFT_CONFIG": str(tmp_path / "none.toml"),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "NIGHTSHIFT_TELEGRAM_API_URL": tg.api_url,
            "NIGHTSHIFT_TELEGRAM_CHAT_IDS": str(CHAT),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "night-signing",
            "NIGHTSHIFT_SLACK_API_URL": slack.api_url,
            "NIGHTSHIFT_SLACK_CHANNEL": CHANNEL,
            "ALERTMANAGER_URL": server.url,
            "PTB_TIMEDELTA": "1",
        }
        log = (tmp_path / "serve.log").open("ab")

        async def start_serve() -> subprocess.Popen[bytes]:
            # Popen returns at once; every wait on the process is made off the loop.
            process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "bot", "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            processes.append(process)

            def healthy() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
                except httpx.HTTPError:
                    return False

            await _until(lambda: process.poll() is None and healthy(), within=60)
            return process

        am = AlertmanagerClient(server.url)
        try:
            yield Night(tg, slack, am, start_serve)
        finally:
            await am.aclose()
            for process in processes:
                if process.poll() is None:
                    # Waited for off the loop: the fakes it hosts answer serve's last calls.
                    process.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(process.wait, 30)
            log.close()


async def test_storm_new_criticals_outages_and_a_kill_9(night: Night) -> None:
    tg, slack, am = night.tg, night.slack, night.am
    serve = await night.start_serve()

    storm = [_alert("BarsStorm", "bars", f"pay-{i}") for i in range(STORM)]
    await am.post_alerts(storm)
    await _until(lambda: any("BarsStorm" in c for c in night.telegram_cards()))
    [card] = [m for m in tg.posts(CHAT) if "BarsStorm" in m.first_text]
    await _until(lambda: f"BarsStorm: {STORM} alertas em pay-0…pay-{STORM - 1}" in card.text)

    # A different critical alert in its own group: a new message, not an edit of the storm's.
    await asyncio.sleep(2)
    await am.post_alerts([_alert("NewCritical", "ledger", "db-1")])
    took = await _until(lambda: any("NewCritical" in c for c in night.telegram_cards()))
    assert took < 10
    await _until(lambda: any("NewCritical" in c for c in night.slack_cards()))

    # The chat APIs fail (Telegram 6 × 5xx, Slack 2 × 429) and serve is killed in the middle.
    tg.fail("sendMessage", status=502, times=6)
    slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
    await am.post_alerts([_alert("FailCritical", "cards", "api-1")])
    await _until(lambda: len(tg.calls_to("sendMessage")) >= 3 + 2)  # it is trying
    os.kill(serve.pid, signal.SIGKILL)
    await asyncio.to_thread(serve.wait, 10)
    # While serve is down the storm resolves and one more critical fires; Alertmanager keeps
    # trying its webhooks until serve is back.
    await am.post_alerts([{**a, "endsAt": datetime.now(UTC) - timedelta(seconds=1)} for a in storm])
    await am.post_alerts([_alert("BarsDeliveryE", "delivery", "q-1")])
    await asyncio.sleep(3)
    await night.start_serve()

    for name in ("FailCritical", "BarsDeliveryE"):
        await _until(lambda n=name: any(n in c for c in night.telegram_cards()), within=120)  # type: ignore[misc]
        await _until(lambda n=name: any(n in c for c in night.slack_cards()), within=120)  # type: ignore[misc]
    await _until(lambda: card.text.startswith("✅ RESOLVIDO · INCIDENTE"), within=60)
    await _until(lambda: any(m.reply_to == card.message_id for m in tg.sent(CHAT)), within=30)
    await asyncio.sleep(4)  # time for anything sent twice to show

    for cards in (night.telegram_cards(), night.slack_cards()):
        incidents = Counter(c.split(" · ")[0] for c in cards if "INCIDENTE #" in c)
        names = [c.split(" · ")[-1] for c in cards if "INCIDENTE #" in c]
        assert sorted(names) == ["BarsDeliveryE", "BarsStorm", "FailCritical", "NewCritical"]
        assert set(incidents.values()) == {1}, incidents  # every incident told exactly once
    storm_messages = [m for m in tg.sent(CHAT) if "BarsStorm" in m.text]
    assert len(storm_messages) == 2  # the card (edited to resolved) and its one thread reply
    assert [m.text.count("\n") > 0 for m in storm_messages] == [True, False]
