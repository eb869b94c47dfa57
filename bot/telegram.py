"""The Telegram adapter: Bot API updates to Invocations, Replies to Telegram HTML messages."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from bot.answer import Answer
from bot.render import pack, split_long, utf16_len
from skills.core import Button, Invocation, ProgressSink, Reply
from skills.registry import menu

log = logging.getLogger(__name__)

Handle = Callable[[Invocation, ProgressSink | None], Awaitable[Reply]]
Sleep = Callable[[float], Awaitable[None]]
Mode = Literal["polling", "webhook"]
T = TypeVar("T")

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ("message", "callback_query")

# ---- rendering --------------------------------------------------------------------------------

Style = Literal["bold", "plain", "pre"]


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    style: Style


def _lines(reply: Reply, piece: int) -> list[_Line]:
    out: list[_Line] = []

    def add(text: str, style: Style) -> None:
        for line in text.split("\n"):
            out.extend(_Line(p, style) for p in split_long(line, piece, utf16_len))

    if reply.title:
        add(reply.title, "bold")
    for section in reply.sections:
        if out:
            out.append(_Line("", "plain"))
        if section.heading:
            add(section.heading, "bold")
        for line in section.lines:
            add(line, "pre" if section.monospace else "plain")
    return out


def _html(lines: Sequence[_Line]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.style == "pre":
            j = i
            while j < len(lines) and lines[j].style == "pre":
                j += 1
            body = "\n".join(html.escape(x.text, quote=False) for x in lines[i:j])
            parts.append(f"<pre>{body}</pre>")
            i = j
            continue
        text = html.escape(line.text, quote=False)
        parts.append(f"<b>{text}</b>" if line.style == "bold" and text.strip() else text)
        i += 1
    return "\n".join(parts)


def render_html(reply: Reply, limit: int = TEXT_LIMIT) -> list[str]:
    """The reply as Telegram HTML messages, in order, each at most `limit` characters once
    Telegram has parsed the entities. Every title, heading and line is escaped."""
    lines = _lines(reply, max(1, limit - 8))
    runs = pack(lines, limit, lambda line: utf16_len(line.text), gap=1)
    messages: list[str] = []
    for run in runs:
        while run and not run[0].text.strip():
            run = run[1:]
        while run and not run[-1].text.strip():
            run = run[:-1]
        if run:
            messages.append(_html(run))
    messages = messages or ["…"]
    mentions = _mentions(reply)
    if mentions:
        if utf16_len(messages[0]) + 2 + utf16_len(mentions) <= limit:
            messages[0] = f"{messages[0]}\n\n{mentions}"
        else:
            messages.insert(0, mentions)
    return messages


def _mentions(reply: Reply) -> str:
    """Inline mentions of the Telegram users a reply names (`tg://user?id=`), or ""."""
    users = [u for u in reply.mentioned("telegram") if u.isdigit()]
    if not users:
        return ""
    return "📣 " + " ".join(f'<a href="tg://user?id={u}">@{u}</a>' for u in users)


def _clip(text: str, limit: int) -> str:
    if utf16_len(text) <= limit:
        return text
    return split_long(text, max(1, limit - 1), utf16_len)[0].rstrip() + "…"


def render_caption(reply: Reply, limit: int = CAPTION_LIMIT) -> str:
    """A photo caption: the title in bold and the image caption, escaped, within `limit`."""
    title = _clip(reply.title, limit // 2) if reply.title else ""
    room = limit - utf16_len(title) - (1 if title else 0)
    caption = _clip(reply.image.caption, room) if reply.image and reply.image.caption else ""
    parts = [f"<b>{html.escape(title, quote=False)}</b>"] if title.strip() else []
    if caption:
        parts.append(html.escape(caption, quote=False))
    return "\n".join(parts)


def _is_not_modified(exc: BadRequest) -> bool:
    return "not modified" in exc.message.lower()


class _PollingRequest(HTTPXRequest):
    """getUpdates' HTTP client, telling the adapter each time Telegram answers a poll: the
    updater reports errors but not recoveries, and `status` should show both."""

    def __init__(self, answered: Callable[[], None], read_timeout: float) -> None:
        super().__init__(connection_pool_size=1, read_timeout=read_timeout)
        self._answered = answered

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        if code == 200:
            self._answered()
        return code, payload


# ---- the adapter ------------------------------------------------------------------------------


class TelegramAdapter:
    """Telegram through python-telegram-bot: long polling (default) or webhook updates in,
    HTML messages, photos and inline keyboards out. It only translates: `handle` decides."""

    def __init__(
        self,
        token: str,
        api_url: str | None,
        chat_ids: Sequence[str],
        mode: Mode,
        webhook_secret: str | None,
        handle: Handle,
        *,
        webhook_url: str | None = None,
        commands: Sequence[tuple[str, str]] | None = None,
        poll_timeout: float = 10.0,
        max_messages: int = 5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if mode == "webhook" and not webhook_secret:
            raise ValueError("NIGHTSHIFT_TELEGRAM_WEBHOOK_SECRET is required in webhook mode")
        self.chat_ids = tuple(chat_ids)
        self.mode: Mode = mode
        self._secret = webhook_secret or ""
        self._handle = handle
        self._webhook_url = webhook_url
        # The command menu (setMyCommands) is the skill registry's, never a second list.
        self._commands = tuple(menu("pt") if commands is None else commands)
        self._poll_timeout = poll_timeout
        self._max_messages = max(1, max_messages)
        self._sleep = sleep
        self._actions: dict[str, str] = {}  # callback_data token → action, for long actions
        self._state = "off"
        builder = (
            Application.builder()
            .token(token)
            .job_queue(None)
            # each update in its own task: `cancelar` is read while a runbook still runs
            .concurrent_updates(True)
            .get_updates_request(_PollingRequest(self._polled, read_timeout=poll_timeout + 10))
        )
        if api_url:
            builder = builder.base_url(api_url).base_file_url(_file_url(api_url))
        if mode == "webhook":
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, self._on_message)
        )
        self.application.add_handler(CallbackQueryHandler(self._on_callback))
        self.application.add_error_handler(self._on_error)

    # ---- lifecycle ---------------------------------------------------------------------------

    def state(self) -> str:
        return self._state

    def routes(self) -> list[Route]:
        if self.mode != "webhook":
            return []
        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"])]

    async def start(self, *, poll: bool = True) -> None:
        """Checks the token (getMe), sets the command menu, then polls or awaits the webhook.

        `poll=False` leaves polling to `start_polling()`: with several replicas only the
        leader may poll (Telegram allows one `getUpdates` per bot).
        """
        app = self.application
        try:
            await app.initialize()
        except InvalidToken:
            self._state = "error: token refused"
            raise
        try:
            await app.bot.set_my_commands([BotCommand(n, d) for n, d in self._commands])
        except NetworkError as exc:  # the menu is a nicety: answer commands anyway
            log.warning("telegram: setMyCommands failed: %s", exc)
        if self.mode == "webhook":
            if self._webhook_url:
                await app.bot.set_webhook(
                    self._webhook_url,
                    secret_token=self._secret,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            await app.start()
        else:
            await app.start()
            if poll:
                await self.start_polling()
                return
        self._state = f"on ({self.mode})" if self.mode == "webhook" else "on (sending only)"
        log.info("telegram: bot @%s on, %s", app.bot.username, self._state)

    async def start_polling(self) -> None:
        """Long-poll for updates (the leader's job when replicas share a bot)."""
        app = self.application
        if self.mode != "polling" or (app.updater is not None and app.updater.running):
            return
        if app.updater is None:
            raise RuntimeError("polling needs python-telegram-bot's Updater")
        await app.updater.start_polling(
            timeout=timedelta(seconds=self._poll_timeout),
            allowed_updates=list(ALLOWED_UPDATES),
            error_callback=self._on_polling_error,
        )
        self._state = "on (polling)"
        log.info("telegram: bot @%s on, polling", app.bot.username)

    async def stop_polling(self) -> None:
        """Stop long polling; sending still works."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
            self._state = "on (sending only)"

    async def stop(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        self._state = "off"

    def _on_polling_error(self, exc: Exception) -> None:
        self._state = f"degraded ({type(exc).__name__})"
        log.warning("telegram: polling error: %s", exc)

    def _polled(self) -> None:
        if self._state.startswith("degraded"):
            self._state = f"on ({self.mode})"
            log.info("telegram: polling works again")

    async def _webhook(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return Response("bad secret token", status_code=401)
        if not self.application.running:
            return Response("not running", status_code=503)
        try:
            data = await request.json()
        except ValueError:
            return Response("invalid JSON", status_code=400)
        if not isinstance(data, dict):
            return Response("an Update object is expected", status_code=400)
        update = Update.de_json(data, self.application.bot)
        await self.application.update_queue.put(update)
        return Response(status_code=200)

    # ---- incoming ----------------------------------------------------------------------------

    def _addressed(self, message: Message) -> str | None:
        """The command text if the message is for this bot, else None."""
        text = (message.text or "").strip()
        username = (self.application.bot.username or "").lower()
        if text.startswith("/"):
            head, _, rest = text.partition(" ")
            command, _, target = head[1:].partition("@")
            if target and target.lower() != username:
                return None  # a command for another bot in the group
            return f"{command} {rest}".strip()
        if message.chat.type == ChatType.PRIVATE:
            return text
        mention = f"@{username}"
        if username and text.lower().startswith(mention):
            return text[len(mention) :].lstrip(" ,:").strip()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None:
            return text if replied.from_user.id == self.application.bot.id else None
        return None

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        text = self._addressed(message)
        if text is None:
            return
        inv = Invocation(
            platform="telegram",
            user_id=str(user.id),
            text=text or "ajuda",
            chat_id=str(message.chat_id),
            user_name=user.username or user.full_name,
        )
        await self._run(inv)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not query.data:
            return
        try:
            await query.answer()  # stops the spinner on the button at once
        except BadRequest as exc:
            log.info("telegram: late callback answer: %s", exc)
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        inv = Invocation(
            platform="telegram",
            user_id=str(query.from_user.id),
            text=self._actions.get(query.data, query.data),
            chat_id=str(chat_id),
            user_name=query.from_user.username or query.from_user.full_name,
        )
        await self._run(inv)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: update failed", exc_info=context.error)

    async def _run(self, inv: Invocation) -> None:
        answer = Answer(self, inv.chat_id)
        try:
            await answer.give(await self._handle(inv, answer.sink))
        except (NetworkError, Forbidden) as exc:
            log.warning("telegram: could not answer %s: %s", inv.actor, exc)

    # ---- outgoing ----------------------------------------------------------------------------

    async def _call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call, retried after a 429 (as long as Telegram asks, up to 60 s) or a
        5xx / network failure (twice, with a short pause)."""
        failures = 0
        while True:
            try:
                return await attempt()
            except RetryAfter as exc:
                failures += 1
                wait = _seconds(exc)
                if failures > 3 or wait > 60:
                    raise
                log.info("telegram: rate limited, retrying in %.0f s", wait)
                await self._sleep(wait)
            except BadRequest:
                raise
            except NetworkError:
                failures += 1
                if failures > 2:
                    raise
                await self._sleep(0.5 * failures)

    def _callback_data(self, action: str) -> str:
        if len(action.encode()) <= CALLBACK_DATA_LIMIT:
            return action
        token = "a:" + hashlib.sha256(action.encode()).hexdigest()[:32]
        self._actions[token] = action
        return token

    def _keyboard(self, buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        rows: list[list[InlineKeyboardButton]] = []
        for i in range(0, len(buttons), 2):
            rows.append(
                [
                    InlineKeyboardButton(
                        b.label[:64] or "…", callback_data=self._callback_data(b.action)
                    )
                    for b in buttons[i : i + 2]
                ]
            )
        return InlineKeyboardMarkup(rows)

    def _texts(self, reply: Reply) -> tuple[list[str], bool]:
        """HTML messages for the reply's text, and whether the full text goes as a file."""
        messages = render_html(replace(reply, buttons=(), image=None))
        if len(messages) <= self._max_messages:
            return messages, False
        return messages[:1], True

    async def send(self, chat_id: str, reply: Reply) -> list[str]:
        """Sends the reply to a chat; returns the message ids, in order."""
        bot = self.application.bot
        keyboard = self._keyboard(reply.buttons)
        ids: list[str] = []
        body = reply
        if reply.image is not None:
            image = reply.image
            alone = not reply.sections
            photo = await self._call(
                lambda: bot.send_photo(
                    chat_id,
                    image.data,
                    caption=render_caption(reply) or None,
                    parse_mode=ParseMode.HTML,
                    filename=image.filename,
                    reply_markup=keyboard if alone else None,
                )
            )
            ids.append(str(photo.message_id))
            if alone:
                return ids
            body = replace(reply, title="", image=None)
        messages, as_file = self._texts(body)
        for i, text in enumerate(messages):
            last = i == len(messages) - 1 and not as_file
            ids.extend(await self._send_text(chat_id, text, keyboard if last else None))
        if as_file:
            ids.append(await self._send_file(chat_id, body, keyboard))
        return ids

    async def edit(self, chat_id: str, message_ids: str | Sequence[str], reply: Reply) -> list[str]:
        """Replaces the text of the message(s) holding an earlier reply (progress) with `reply`:
        each message is edited in place, extra parts are sent after them, messages no longer
        needed are deleted. Returns the ids now holding the reply, in order."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        if reply.image is not None or not ids:
            return await self.send(chat_id, reply)
        messages, as_file = self._texts(reply)
        keyboard = self._keyboard(reply.buttons)
        kept: list[str] = []
        for i, text in enumerate(messages):
            last = i == len(messages) - 1 and not as_file
            if i < len(ids):
                await self._edit_one(chat_id, ids[i], text, keyboard if last else None)
                kept.append(ids[i])
            else:
                kept.extend(await self._send_text(chat_id, text, keyboard if last else None))
        for stale in ids[len(messages) :]:
            await self._delete(chat_id, stale)
        if as_file:
            kept.append(await self._send_file(chat_id, reply, keyboard))
        return kept

    async def _send_text(
        self, chat_id: str, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> list[str]:
        bot = self.application.bot
        sent = await self._call(
            lambda: bot.send_message(
                chat_id, text, parse_mode=ParseMode.HTML, reply_markup=keyboard
            )
        )
        return [str(sent.message_id)]

    async def _send_file(
        self, chat_id: str, reply: Reply, keyboard: InlineKeyboardMarkup | None
    ) -> str:
        """The whole reply as a text document, for replies too long to read as messages."""
        bot = self.application.bot
        document = reply.plain_text().encode()
        sent = await self._call(
            lambda: bot.send_document(
                chat_id,
                document,
                filename="nightshift-reply.txt",
                caption="📎 resposta completa / full reply",
                reply_markup=keyboard,
            )
        )
        return str(sent.message_id)

    async def _delete(self, chat_id: str, message_id: str) -> None:
        bot = self.application.bot
        try:
            await self._call(lambda: bot.delete_message(chat_id, int(message_id)))
        except BadRequest as exc:  # already gone, or too old to delete: leave it
            log.info("telegram: could not delete message %s: %s", message_id, exc)

    async def _edit_one(
        self, chat_id: str, message_id: str, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> None:
        bot = self.application.bot
        try:
            await self._call(
                lambda: bot.edit_message_text(
                    text,
                    chat_id=chat_id,
                    message_id=int(message_id),
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard,
                )
            )
        except BadRequest as exc:
            if not _is_not_modified(exc):
                raise

    async def broadcast(self, reply: Reply) -> dict[str, list[str]]:
        """Sends the reply to every configured chat (pushed alerts, briefings)."""
        sent: dict[str, list[str]] = {}
        for chat_id in self.chat_ids:
            sent[chat_id] = await self.send(chat_id, reply)
        return sent


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the int form will become a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _file_url(api_url: str) -> str:
    """`http://host/bot` → `http://host/file/bot`, the Bot API layout for file downloads."""
    base, _, last = api_url.rstrip("/").rpartition("/")
    return f"{base}/file/{last}" if base else api_url
