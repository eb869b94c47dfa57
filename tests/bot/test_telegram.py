"""The Telegram adapter, driven through the real python-telegram-bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette

from bot.telegram import TelegramAdapter, render_caption, render_html
from skills.core import Button, Image, Invocation, ProgressSink, Reply, Section
from skills.registry import SKILLS
from tests.fakes.telegram_api import FakeTelegram, parse_html, utf16_len

OPERATOR = 7
STRANGER = 99
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
TRICKY = "a <b> & c_d *e* </pre> &amp;"


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opt in to PTB's future `retry_after: timedelta`; otherwise every 429 warns (an error here).
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


class Skills:
    """A stand-in for the dispatcher: allowed users, a refusal, and a few canned replies."""

    def __init__(self) -> None:
        self.seen: list[Invocation] = []
        self.allowed = {f"telegram:{OPERATOR}"}
        self.replies: dict[
            str, Callable[[Invocation, ProgressSink | None], Reply | Awaitable[Reply]]
        ] = {}

    async def handle(self, inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        self.seen.append(inv)
        if inv.actor not in self.allowed:
            return Reply(title=f"⛔ {inv.actor} não tem acesso.", outcome="refused")
        word = inv.text.split()[0] if inv.text.split() else ""
        if word in self.replies:
            result = self.replies[word](inv, progress)
            return result if isinstance(result, Reply) else await result
        if word == "status":
            return Reply(title="Status", sections=(Section("Feed", ("ok: 120 tx/min",)),))
        if word == "grafico":
            return Reply(
                title="Gráfico 6h", image=Image(PNG, "chart.png", "approved 6h: 0 anomalias")
            )
        return Reply(title=f"eco: {inv.text}")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def skills() -> Skills:
    return Skills()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def adapter(
    tg: FakeTelegram, skills: Skills, sleeps: list[float]
) -> AsyncIterator[TelegramAdapter]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    bot = TelegramAdapter(
        tg.token, tg.api_url, ["-100"], "polling", None, skills.handle, poll_timeout=1, sleep=sleep
    )
    await bot.start()
    yield bot
    await bot.stop()


async def test_operator_gets_status_by_long_polling_within_two_seconds(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    tg.send_user_message(OPERATOR, "/status")
    (answer,) = await tg.wait_for_messages(OPERATOR, within=2)
    assert loop.time() - started < 2
    assert answer.text == "Status\n\nFeed\nok: 120 tx/min"
    assert answer.parse_mode == "HTML"
    assert skills.seen == [Invocation("telegram", str(OPERATOR), "status", str(OPERATOR), "Ana")]
    assert adapter.state() == "on (polling)"


async def test_command_menu_is_set_at_start(tg: FakeTelegram, adapter: TelegramAdapter) -> None:
    names = [c["command"] for c in tg.commands]
    # The skill registry's commands, every one of them: no second, hand-kept list.
    assert names == [skill.name for skill in SKILLS]
    assert {"passagem", "ack", "confirmar", "cancelar", "incidentes", "falso"} <= set(names)


async def test_stranger_gets_a_refusal(tg: FakeTelegram, adapter: TelegramAdapter) -> None:
    tg.send_user_message(STRANGER, "/status")
    (answer,) = await tg.wait_for_messages(STRANGER)
    assert answer.text.startswith("⛔")
    assert "telegram:99" in answer.text


async def test_grafico_sends_a_photo_with_a_caption(
    tg: FakeTelegram, adapter: TelegramAdapter
) -> None:
    tg.send_user_message(OPERATOR, "/grafico 6h")
    (photo,) = await tg.wait_for_messages(OPERATOR)
    assert photo.photo == PNG
    assert photo.text == "Gráfico 6h\napproved 6h: 0 anomalias"
    assert tg.calls_to("sendPhoto")


def long_lines(count: int) -> tuple[str, ...]:
    return tuple(f"linha {i:04d} " + "x" * 60 for i in range(count))


async def test_long_reply_arrives_whole_and_in_order(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    lines = long_lines(160)  # about 11 500 characters: three messages
    skills.replies["longo"] = lambda inv, p: Reply(
        title="Longo",
        sections=(Section("Parte A", lines[:80]), Section("Parte B", lines[80:], True)),
        buttons=(Button("Mais", "longo"),),
    )
    tg.send_user_message(OPERATOR, "longo")
    messages = await tg.wait_for_messages(OPERATOR, count=3)
    assert all(utf16_len(m.text) <= 4096 for m in messages)
    shown = "\n".join(m.text for m in messages)
    positions = [shown.index(line) for line in lines]
    assert positions == sorted(positions)
    assert [bool(m.buttons) for m in messages] == [False, False, True]


async def test_very_long_reply_becomes_summary_and_file(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    lines = long_lines(1000)
    skills.replies["longo"] = lambda inv, p: Reply(title="Longo", sections=(Section("", lines),))
    tg.send_user_message(OPERATOR, "longo")
    summary, document = await tg.wait_for_messages(OPERATOR, count=2)
    assert summary.text.startswith("Longo\n\nlinha 0000")
    assert document.document is not None
    full = document.document.decode()
    assert [full.index(line) for line in lines] == sorted(full.index(line) for line in lines)


async def test_labels_show_literally(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    skills.replies["eco"] = lambda inv, p: Reply(
        title=TRICKY,
        sections=(Section(TRICKY, (TRICKY,)), Section("", (TRICKY,), monospace=True)),
        buttons=(Button(TRICKY, "status"),),
    )
    tg.send_user_message(OPERATOR, "eco")
    (answer,) = await tg.wait_for_messages(OPERATOR)
    assert answer.text.count(TRICKY) == 4
    assert answer.buttons[0]["text"] == TRICKY


async def test_button_press_runs_its_action_as_the_presser(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    long_action = "silenciar " + "f" * 80
    skills.replies["alerta"] = lambda inv, p: Reply(
        title="Alerta", buttons=(Button("Status", "status"), Button("Silenciar 2h", long_action))
    )
    tg.send_user_message(OPERATOR, "alerta")
    (alert,) = await tg.wait_for_messages(OPERATOR)
    assert all(len(b["callback_data"].encode()) <= 64 for b in alert.buttons)
    tg.press_button(OPERATOR, alert, alert.buttons[1]["callback_data"])
    await tg.wait_for_messages(OPERATOR, count=2)
    assert skills.seen[-1].text == long_action
    assert skills.seen[-1].user_id == str(OPERATOR)
    assert len(tg.answered_callbacks) == 1


async def test_groups_answer_only_when_addressed(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    group = -1001
    tg.send_user_message(OPERATOR, "status", chat_id=group, chat_type="supergroup")
    tg.send_user_message(OPERATOR, "/status@other_bot", chat_id=group, chat_type="supergroup")
    tg.send_user_message(
        OPERATOR, "@nightshift_test_bot status", chat_id=group, chat_type="supergroup"
    )
    tg.send_user_message(
        OPERATOR, "/ajuda@nightshift_test_bot", chat_id=group, chat_type="supergroup"
    )
    await tg.wait_for_messages(group, count=2)
    await asyncio.sleep(0.2)
    assert [inv.text for inv in skills.seen] == ["status", "ajuda"]


async def test_rate_limit_is_waited_out(
    tg: FakeTelegram, adapter: TelegramAdapter, sleeps: list[float]
) -> None:
    tg.fail("sendMessage", status=429, retry_after=3)
    tg.fail("sendMessage", status=502)
    tg.send_user_message(OPERATOR, "/status")
    (answer,) = await tg.wait_for_messages(OPERATOR)
    assert answer.text.startswith("Status")
    assert sleeps[0] == 3
    assert len(tg.calls_to("sendMessage")) == 3


async def test_progress_edits_one_message(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    async def runbook(inv: Invocation, progress: ProgressSink | None) -> Reply:
        assert progress is not None
        await progress.update(Reply(title="runbook: passo 1/2"))
        await progress.update(Reply(title="runbook: passo 1/2"))  # unchanged: not an error
        await progress.update(Reply(title="runbook: passo 2/2"))
        return Reply(title="runbook: ok ✅")

    skills.replies["runbook"] = runbook
    tg.send_user_message(OPERATOR, "runbook x")
    await tg.wait_for("editMessageText", count=3)
    (message,) = tg.sent(OPERATOR)
    assert message.text == "runbook: ok ✅"


def test_render_html_is_valid_and_fits() -> None:
    reply = Reply(
        title="T" * 5000,
        sections=(Section("h", ("😀" * 3000, "<&>" * 2000), monospace=True),),
    )
    messages = render_html(reply)
    texts = [parse_html(m)[0] for m in messages]
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert "".join(texts).replace("\n", "").count("😀") == 3000
    assert render_caption(Reply(title="x" * 2000, image=Image(PNG, "c.png", "y" * 2000)))


async def test_webhook_mode_checks_the_secret_token(tg: FakeTelegram, skills: Skills) -> None:
    adapter = TelegramAdapter(
        tg.token,
        tg.api_url,
        [],
        "webhook",
        "s3cret",
        skills.handle,
        webhook_url="https://bot.example/telegram/webhook",
    )
    await adapter.start()
    try:
        assert tg.webhook == {
            "url": "https://bot.example/telegram/webhook",
            "secret_token": "s3cret",
        }
        app = Starlette(routes=adapter.routes())
        update = tg.send_user_message(OPERATOR, "/status")  # not delivered: that URL is not ours
        body = json.dumps(update)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://t"
        ) as http:
            wrong = await http.post(
                "/telegram/webhook",
                content=body,
                headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
            )
            missing = await http.post("/telegram/webhook", content=body)
            assert (wrong.status_code, missing.status_code) == (401, 401)
            assert skills.seen == []
            right = await http.post(
                "/telegram/webhook",
                content=body,
                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
            )
            assert right.status_code == 200
        (answer,) = await tg.wait_for_messages(OPERATOR)
        assert answer.text.startswith("Status")
    finally:
        await adapter.stop()


async def test_a_polling_error_is_reported_then_cleared(
    tg: FakeTelegram, adapter: TelegramAdapter
) -> None:
    polls = len(tg.calls_to("getUpdates"))  # the last one is still waiting for updates
    tg.fail("getUpdates", status=502)
    await tg.wait_for("getUpdates", count=polls + 2)  # the failed poll, then the next one
    assert adapter.state() == "degraded (NetworkError)"
    tg.send_user_message(OPERATOR, "/status")
    await tg.wait_for_messages(OPERATOR, within=5)
    assert adapter.state() == "on (polling)"


async def test_a_long_progress_message_is_replaced_whole(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    lines = long_lines(120)  # about 8 600 characters: three messages

    async def runbook(inv: Invocation, progress: ProgressSink | None) -> Reply:
        assert progress is not None
        await progress.update(Reply(title="passo 1", sections=(Section("log", lines),)))
        await progress.update(Reply(title="passo 2", sections=(Section("log", lines),)))
        return Reply(title="runbook: ok ✅")

    skills.replies["runbook"] = runbook
    tg.send_user_message(OPERATOR, "runbook x")
    await tg.wait_for("deleteMessage", count=2)
    (message,) = tg.sent(OPERATOR)
    assert message.text == "runbook: ok ✅"
    assert len(tg.calls_to("sendMessage")) == 3  # the first progress; later ones edited it
    assert [m.message_id for m in tg.deleted] == [message.message_id + 1, message.message_id + 2]


async def test_a_command_is_answered_while_another_still_runs(
    tg: FakeTelegram, adapter: TelegramAdapter, skills: Skills
) -> None:
    cancelled = asyncio.Event()

    async def runbook(inv: Invocation, progress: ProgressSink | None) -> Reply:
        await asyncio.wait_for(cancelled.wait(), 5)
        return Reply(title="runbook: cancelado")

    def cancel(inv: Invocation, progress: ProgressSink | None) -> Reply:
        cancelled.set()
        return Reply(title="cancelando")

    skills.replies["runbook"] = runbook
    skills.replies["cancelar"] = cancel
    tg.send_user_message(OPERATOR, "runbook lento")
    await asyncio.sleep(0.1)
    tg.send_user_message(OPERATOR, "cancelar")
    first, second = await tg.wait_for_messages(OPERATOR, count=2)
    assert (first.text, second.text) == ("cancelando", "runbook: cancelado")
