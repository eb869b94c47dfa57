"""`serve` with every chat at once: the real App, through the real SDKs, against fake servers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.app import App, build_core
from bot.settings import Settings, load_settings
from storage.parsing import load_file
from storage.store import Store
from tests.conftest import DATA
from tests.fakes.clock import FixedClock
from tests.fakes.slack_api import FakeSlack, signed_headers
from tests.fakes.telegram_api import FakeTelegram

SP = ZoneInfo("America/Sao_Paulo")
NOON = datetime(2025, 7, 14, 15, 30, tzinfo=UTC)  # 12:30 in São Paulo, inside the data
OPERATOR, STRANGER = 7, 99
SLACK_OPERATOR, CHANNEL = "U0OPS", "C0OPS"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK_SECRET = "tg-webhook-s3cret"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def loaded(sqlite_store: Store, clock: FixedClock) -> Store:
    batch = load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP)
    sqlite_store.ingest(batch)
    clock.set(NOON)
    return sqlite_store


def settings_from_env(tmp_path: Path, env: dict[str, str]) -> Settings:
    """Settings as `serve` reads them: the variable names of SPEC.md, nothing else."""
    base = {
        "NIGHTSHIFT_OPERATORS": f"telegram:{OPERATOR},slack:{SLACK_OPERATOR}",
        "NIGHTSHIFT_TELEGRAM_CHAT_IDS": "-100",
        "NIGHTSHIFT_SLACK_CHANNEL": CHANNEL,
    }
    return load_settings({**base, **env}, toml_path=tmp_path / "absent.toml")


@pytest.fixture
def console_input(monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    """The terminal `serve` reads the console chat from: a pipe the test writes to."""
    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "r", encoding="utf-8")
    writer = os.fdopen(write_end, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", reader)
    yield writer
    writer.close()  # EOF: the console's reader thread ends
    reader.close()


async def printed(capsys: pytest.CaptureFixture[str], text: str, within: float = 5) -> str:
    """Everything the console printed, once `text` is among it."""
    seen = ""
    for _ in range(int(within / 0.05)):
        seen += capsys.readouterr().out
        if text in seen:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not printed; got {seen!r}")


async def test_console_telegram_and_slack_socket_mode_in_one_serve(
    tg: FakeTelegram,
    slack: FakeSlack,
    loaded: Store,
    clock: FixedClock,
    tmp_path: Path,
    console_input: TextIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_from_env(
        tmp_path,
        {
            "TELEGRAM_BOT_TOKEN": tg.token,
            "NIGHTSHIFT_TELEGRAM_API_URL": tg.api_url,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "NIGHTSHIFT_SLACK_API_URL": slack.api_url,
        },
    )
    app = App(build_core(settings, clock, loaded), console=True)
    await app.start()
    try:
        await slack.wait_for_socket()
        assert {c["command"] for c in tg.commands} >= {"status", "grafico", "ajuda"}

        # Telegram: an operator's /status, by long polling, answered within 2 seconds
        started = time.monotonic()
        tg.send_user_message(OPERATOR, "/status")
        (status,) = await tg.wait_for_messages(OPERATOR, within=2)
        assert time.monotonic() - started < 2
        assert status.text.startswith("🟢 nightshift · Tudo normal · 12:30")
        assert "💬 Chat: console on, telegram on (polling), slack on (socket)" in status.text

        # a stranger gets a refusal, and the attempt is audited
        tg.send_user_message(STRANGER, "/status")
        (refusal,) = await tg.wait_for_messages(STRANGER)
        assert refusal.text.startswith("⛔")
        assert f"telegram:{STRANGER}" in refusal.text
        audited = loaded.audit_entries("chat.refused")
        assert [e.actor for e in audited] == [f"telegram:{STRANGER}"]

        # /grafico 6h: a photo with its one-line summary
        tg.send_user_message(OPERATOR, "/grafico 6h")
        _, photo = await tg.wait_for_messages(OPERATOR, count=2, within=10)
        assert photo.photo is not None and photo.photo.startswith(b"\x89PNG")
        assert photo.filename == "nightshift-6h.png"
        assert "approved · últimas 6 horas: " in photo.text
        assert tg.calls_to("sendPhoto")

        # Slack: a slash command over Socket Mode, acked, then answered in the channel
        envelope = await slack.send_envelope(
            "slash_commands", slack.slash_command_form("status", user_id=SLACK_OPERATOR)
        )
        await slack.wait_for_ack(envelope)
        (answer,) = await slack.wait_for_messages(CHANNEL)
        assert answer.block_texts()[0].startswith("🟢 nightshift · Tudo normal · 12:30")

        # Slack: the same chart, uploaded with files_upload_v2
        envelope = await slack.send_envelope(
            "slash_commands", slack.slash_command_form("grafico 6h", user_id=SLACK_OPERATOR)
        )
        await slack.wait_for("files.completeUploadExternal", within=10)
        (upload,) = slack.uploads.values()
        assert upload["filename"] == "nightshift-6h.png"
        assert upload["data"].startswith(b"\x89PNG")

        # and the terminal answers too, in the same process
        console_input.write("status\n")
        console_input.flush()
        out = await printed(capsys, "Tudo normal")
        assert "💬 Chat: console on, telegram on (polling), slack on (socket)" in out
    finally:
        await app.stop()

    assert dict(app.core.states()) == {"console": "off", "telegram": "off", "slack": "off"}
    polls = len(tg.calls_to("getUpdates"))
    await asyncio.sleep(0.3)
    assert len(tg.calls_to("getUpdates")) == polls  # polling stopped
    assert slack.sockets_open == 0  # the Socket Mode connection is closed


@pytest.fixture
async def http_app(
    tg: FakeTelegram, slack: FakeSlack, loaded: Store, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """`serve` with Slack in HTTP events mode and Telegram in webhook mode, its routes reached
    through httpx.ASGITransport with the lifespan run as uvicorn would."""
    settings = settings_from_env(
        tmp_path,
        {
            "TELEGRAM_BOT_TOKEN": tg.token,
            "NIGHTSHIFT_TELEGRAM_API_URL": tg.api_url,
            "NIGHTSHIFT_TELEGRAM_MODE": "webhook",
            "NIGHTSHIFT_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "NIGHTSHIFT_SLACK_API_URL": slack.api_url,
        },
    )
    app = App(build_core(settings, clock, loaded))
    asgi = app.asgi()
    async with (
        app.lifespan(asgi),
        httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://bot") as http,
    ):
        yield app, http


async def slash(
    http: httpx.AsyncClient,
    slack: FakeSlack,
    text: str,
    *,
    secret: str = SIGNING_SECRET,
    age: float = 0,
) -> httpx.Response:
    body = urlencode(slack.slash_command_form(text, user_id=SLACK_OPERATOR, channel_id=CHANNEL))
    headers = signed_headers(body, secret, int(time.time() - age))
    return await http.post("/slack/events", content=body, headers=headers)


async def test_signed_slash_command_over_http_is_answered(
    http_app: tuple[App, httpx.AsyncClient], slack: FakeSlack
) -> None:
    app, http = http_app
    assert app.console is None  # a chat platform is configured: no console chat
    response = await slash(http, slack, "status")
    assert response.status_code == 200
    (answer,) = await slack.wait_for_messages(CHANNEL, within=2)
    assert answer.block_texts()[0].startswith("🟢 nightshift · Tudo normal · 12:30")
    health = (await http.get("/healthz")).json()
    assert health["adapters"] == {"telegram": "on (webhook)", "slack": "on (http)"}


@pytest.mark.parametrize(
    ("secret", "age"),
    [("wrong-secret", 0), (SIGNING_SECRET, 6 * 60)],
    ids=["wrong-signature", "six-minutes-old"],
)
async def test_bad_signature_or_old_timestamp_is_401_and_runs_nothing(
    http_app: tuple[App, httpx.AsyncClient], slack: FakeSlack, secret: str, age: float
) -> None:
    app, http = http_app
    response = await slash(http, slack, "incidente aberto por engano", secret=secret, age=age)
    assert response.status_code == 401
    await asyncio.sleep(0.3)
    assert slack.posted() == []
    assert app.core.store.incidents(limit=5) == []
    metrics = (await http.get("/metrics")).text
    assert 'skill="incidente"' not in metrics


async def test_telegram_webhook_checks_the_secret_token(
    http_app: tuple[App, httpx.AsyncClient], tg: FakeTelegram
) -> None:
    _, http = http_app
    update = json.dumps(tg.send_user_message(OPERATOR, "/status"))
    wrong = await http.post(
        "/telegram/webhook",
        content=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": "nope", "Content-Type": "application/json"},
    )
    assert wrong.status_code == 401
    await asyncio.sleep(0.2)
    assert tg.sent(OPERATOR) == []
    right = await http.post(
        "/telegram/webhook",
        content=update,
        headers={
            "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
            "Content-Type": "application/json",
        },
    )
    assert right.status_code == 200
    (answer,) = await tg.wait_for_messages(OPERATOR, within=2)
    assert answer.text.startswith("🟢 nightshift · Tudo normal")
