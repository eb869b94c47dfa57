"""The whole path with real parts: a real Alertmanager fires, `serve` (on uvicorn) stores, joins
the alerts into incidents and pushes their cards to the fake Telegram and Slack, a Silence button
creates a real silence, a resolution edits the card."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bot.alertmanager import AlertmanagerClient
from bot.app import App, build_core
from bot.settings import Secret, Settings
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import BotMessage, FakeTelegram
from tests.realservers import AlertmanagerFactory

TOKEN = "flow-token"
OPERATOR = 4242
CHANNEL = "C0FLOW"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(check: Any, within: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@pytest.fixture
async def flow(
    alertmanager: AlertmanagerFactory, tmp_path: Path
) -> AsyncIterator[tuple[FakeTelegram, FakeSlack, AlertmanagerClient]]:
    port = _free_port()
    am = alertmanager(f"http://127.0.0.1:{port}/webhooks/alertmanager", TOKEN)
    async with FakeTelegram() as tg, FakeSlack() as slack:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'flow.db'}",
            port=port,
            webhook_token=Secret(TOKEN),
            telegram_bot_token=Secret(tg.token),
            telegram_api_url=tg.api_url,
            telegram_chat_ids=(str(OPERATOR),),
            slack_bot_token=Secret(slack.bot_token),
            slack_signing_secret=Secret("signing"),
            slack_channel=CHANNEL,
            slack_api_url=slack.api_url,
            alertmanager_url=am.url,
            operators=(f"telegram:{OPERATOR}",),
        )
        app = App(build_core(settings))
        server = uvicorn.Server(
            uvicorn.Config(app.asgi(), host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        await _until(lambda: asyncio.sleep(0, server.started))
        client = AlertmanagerClient(am.url)
        try:
            yield tg, slack, client
        finally:
            await client.aclose()
            server.should_exit = True
            await serving
            app.core.close()


def _alert(name: str, service: str, *, ends: datetime | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {"alertname": name, "severity": "critical", "service": service},
        "annotations": {"summary": f"{name} <failing> & burning"},
        "startsAt": now - timedelta(minutes=1),
    }
    if ends is not None:
        alert["endsAt"] = ends
    return alert


async def test_alertmanager_to_chat_silence_and_resolve(
    flow: tuple[FakeTelegram, FakeSlack, AlertmanagerClient],
) -> None:
    tg, slack, am = flow
    await am.post_alerts([_alert("PixDown", "pix"), _alert("CardsSlow", "cards")])

    def notices() -> list[BotMessage]:  # a late briefing may come too, depending on the hour
        return [m for m in tg.sent(OPERATOR) if "INCIDENTE #" in m.text.split("\n")[0]]

    messages = await _until(lambda: asyncio.sleep(0, len(notices()) >= 2 and notices()))
    by_name = {m.text.split("\n")[0].split(" · ")[-1]: m for m in messages}
    assert set(by_name) == {"PixDown", "CardsSlow"}
    assert "PixDown <failing> & burning" in by_name["PixDown"].text
    await _until(lambda: asyncio.sleep(0, sum("INCIDENTE" in m.text for m in slack.posted()) >= 2))

    pix = by_name["PixDown"]
    [one_hour] = [b for b in pix.buttons if b["text"] == "🔇 1h"]
    tg.press_button(OPERATOR, pix, one_hour["callback_data"])

    async def silenced() -> list[dict[str, object]]:
        return [s for s in await am.silences() if s.get("createdBy") == f"telegram:{OPERATOR}"]

    [silence] = await _until(silenced)
    matchers = {m["name"]: m["value"] for m in silence["matchers"]}
    assert matchers["alertname"] == "PixDown"

    pix_card = tg.find(OPERATOR, pix.message_id)
    await _until(lambda: asyncio.sleep(0, "🔇 silenciado até" in pix_card.text))

    ended = datetime.now(UTC) - timedelta(seconds=1)
    await am.post_alerts([_alert("CardsSlow", "cards", ends=ended)])
    cards = by_name["CardsSlow"]

    async def resolved() -> bool:
        return tg.find(OPERATOR, cards.message_id).text.startswith("✅ RESOLVIDO · INCIDENTE")

    await _until(resolved)
    assert len(notices()) == 2  # one message per incident, the resolution edited into its own
    await _until(
        lambda: asyncio.sleep(0, any(m.reply_to == cards.message_id for m in tg.sent(OPERATOR)))
    )
