"""The fake Telegram Bot API answers the real python-telegram-bot client as the Bot API does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter

from tests.fakes.telegram_api import FakeTelegram, parse_html


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opt in to PTB's future `retry_after: timedelta`; otherwise every 429 warns (an error here).
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.api_url) as client:
        yield client


async def test_get_me_and_unknown_token(tg: FakeTelegram, bot: Bot) -> None:
    assert bot.username == "nightshift_test_bot"
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=tg.api_url):
            pass


async def test_send_message_html_is_parsed_like_telegram(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(42, "<b>a &lt;b&gt; &amp; c</b>_*", parse_mode="HTML")
    assert sent.text == "a <b> & c_*"
    assert sent.entities[0].type == "bold"
    assert tg.sent(42)[0].text == "a <b> & c_*"


@pytest.mark.parametrize("bad", ["<b>x", "a < b", "<foo>x</foo>", "<b><i>x</b></i>"])
async def test_invalid_html_is_refused(bot: Bot, bad: str) -> None:
    with pytest.raises(BadRequest, match="parse entities"):
        await bot.send_message(42, bad, parse_mode="HTML")


async def test_limits(bot: Bot) -> None:
    await bot.send_message(1, "x" * 4096)
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(1, "x" * 4097)
    # 4096 after entity parsing: tags do not count
    await bot.send_message(1, "<b>" + "&amp;" * 4096 + "</b>", parse_mode="HTML")
    long_data = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(1, "hi", reply_markup=long_data)


async def test_429_and_5xx_on_demand(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(1, "hi")
    assert info.value.retry_after == timedelta(seconds=7)
    tg.fail("sendMessage", status=502)
    with pytest.raises(NetworkError):
        await bot.send_message(1, "hi")
    assert (await bot.send_message(1, "hi")).text == "hi"
    assert [c.method for c in tg.calls].count("sendMessage") == 3


async def test_long_polling_returns_injected_update_and_offset_confirms(
    tg: FakeTelegram, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    tg.send_user_message(7, "/status")
    updates = await asyncio.wait_for(poll, 2)
    assert updates[0].message is not None
    assert updates[0].message.text == "/status"
    assert updates[0].message.entities[0].type == "bot_command"
    assert len(await bot.get_updates(timeout=0)) == 1
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


async def test_photo_edit_and_callback(tg: FakeTelegram, bot: Bot) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    sent = await bot.send_photo(5, png, caption="<i>chart</i>", parse_mode="HTML", filename="c.png")
    assert tg.sent(5)[0].photo == png
    assert sent.caption == "chart"
    msg = await bot.send_message(
        5,
        "one",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="x")]]),
    )
    await bot.edit_message_text("two", chat_id=5, message_id=msg.message_id)
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("two", chat_id=5, message_id=msg.message_id)
    update = tg.press_button(5, tg.sent(5)[1], "x") if tg.sent(5)[1].buttons else None
    assert update is None  # the edit without markup removed the keyboard, as Telegram does
    await bot.set_my_commands([("status", "Saúde do sistema")])
    assert tg.commands == [{"command": "status", "description": "Saúde do sistema"}]
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad-Name", "x")])


def test_parse_html_counts_utf16() -> None:
    text, entities = parse_html("😀<b>x</b>")
    assert text == "😀x"
    assert entities == [{"type": "bold", "offset": 2, "length": 1}]
