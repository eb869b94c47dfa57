"""Each platform's outgoing side for the delivery worker, with its errors sorted into
`Transient` (retry) and `Permanent` (give up)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import aiohttp

from bot.answer import Chat
from bot.console import ConsoleChat
from bot.delivery import Permanent, Transient
from skills.core import Reply

if TYPE_CHECKING:
    from bot.slack import SlackAdapter
    from bot.telegram import TelegramAdapter

T = TypeVar("T")


class _AdapterNotifier(ABC):
    """Posts and edits through a chat adapter, its errors sorted by the platform's `_guard`."""

    def __init__(self, adapter: Chat) -> None:
        self._adapter = adapter

    @abstractmethod
    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T: ...

    async def post(self, target: str, reply: Reply) -> str:
        ids = await self._guard(lambda: self._adapter.send(target, reply))
        return ids[0]

    async def edit(self, target: str, ref: str, reply: Reply) -> None:
        await self._guard(lambda: self._adapter.edit(target, ref, reply))


class TelegramNotifier(_AdapterNotifier):
    """Posts with the adapter's rendering; resolutions reply under the first message."""

    _adapter: TelegramAdapter

    def __init__(self, adapter: TelegramAdapter) -> None:
        super().__init__(adapter)

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

        from bot.telegram import _seconds

        try:
            return await call()
        except RetryAfter as error:
            raise Transient(f"telegram 429: {error}", retry_after=_seconds(error)) from error
        except (Forbidden, InvalidToken, BadRequest) as error:
            raise Permanent(f"telegram refused: {error}") from error
        except NetworkError as error:  # includes TimedOut and 5xx answers
            raise Transient(f"telegram: {error}") from error

    async def thread(self, target: str, ref: str, reply: Reply) -> str:
        from telegram import ReplyParameters
        from telegram.constants import ParseMode

        from bot.telegram import render_html

        bot = self._adapter.application.bot
        sent = await self._guard(
            lambda: bot.send_message(
                target,
                render_html(reply)[0],
                parse_mode=ParseMode.HTML,
                reply_parameters=ReplyParameters(int(ref), allow_sending_without_reply=True),
            )
        )
        return str(sent.message_id)


class SlackNotifier(_AdapterNotifier):
    """Posts to a channel; resolutions go in the first message's thread."""

    _adapter: SlackAdapter

    def __init__(self, adapter: SlackAdapter) -> None:
        super().__init__(adapter)

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        from slack_sdk.errors import SlackApiError

        try:
            return await call()
        except SlackApiError as error:
            status = error.response.status_code
            if status == 429:
                after = error.response.headers.get("Retry-After", "1")
                seconds = float(after[0] if isinstance(after, list) else after)
                raise Transient("slack 429", retry_after=seconds) from error
            if status >= 500:
                raise Transient(f"slack {status}") from error
            raise Permanent(f"slack refused: {error.response.get('error')}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Transient(f"slack: {type(error).__name__}") from error

    async def thread(self, target: str, ref: str, reply: Reply) -> str:
        from bot.slack import render_blocks

        message = render_blocks(reply)[0]
        posted = await self._guard(
            lambda: self._adapter.client.chat_postMessage(
                channel=target, text=message.text, blocks=list(message.blocks), thread_ts=ref
            )
        )
        return str(posted["ts"])


class ConsoleNotifier:
    """The terminal: each message, edit and thread reply printed as it happens."""

    def __init__(self, console: ConsoleChat) -> None:
        self._console = console
        self._count = 0

    async def post(self, target: str, reply: Reply) -> str:
        self._count += 1
        await self._console.push(reply)
        return f"console-{self._count}"

    async def edit(self, target: str, ref: str, reply: Reply) -> None:
        # A terminal cannot change what it printed: an edit is one line, the card's new title.
        self._console.print(f"✏️  {reply.title}")

    async def thread(self, target: str, ref: str, reply: Reply) -> str:
        await self._console.push(reply)
        return ref
