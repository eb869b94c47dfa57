"""A fake Telegram Bot API server on 127.0.0.1, faithful to the Bot API documents.

It serves `/bot<token>/<method>` for the methods nightshift uses, accepts the four request
encodings the Bot API accepts (query string, urlencoded form, JSON, multipart with files), answers
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": ..., "description": ...}`, records
every call, lets a test inject updates (long-polled by getUpdates, or POSTed to the webhook with the
secret-token header once setWebhook is called) and makes methods fail on demand (429 with
`parameters.retry_after`, or 5xx). It enforces the limits that a bot can get wrong: message text
1..4096 characters after entity parsing, captions up to 1024, HTML parse_mode validity, callback
data 1..64 bytes, bot command names, and the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.loopback import serve

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

_JSON_PARAMS = {
    "reply_markup",
    "commands",
    "allowed_updates",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
    "scope",
}
_INT_PARAMS = {"offset", "limit", "timeout", "message_id", "max_connections", "cache_time"}
_BOOL_PARAMS = {"drop_pending_updates", "disable_notification", "show_alert", "protect_content"}

_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class BadRequestError(Exception):
    """An API error answered as `{"ok": false, ...}`."""

    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


def utf16_len(text: str) -> int:
    """Length as the Bot API counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: the plain text shown and its entities, or BadRequestError."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    pos = 0
    offset = 0  # UTF-16 offset in the plain text
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            match = _TAG_RE.match(text, pos)
            byte_offset = len(text[:pos].encode())
            if match is None:
                raise BadRequestError(
                    "Bad Request: can't parse entities: Unsupported start tag at byte offset "
                    f"{byte_offset}"
                )
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in _TAGS:
                kind = "end" if closing else "start"
                raise BadRequestError(
                    f'Bad Request: can\'t parse entities: Unsupported {kind} tag "{name}" at '
                    f"byte offset {byte_offset}"
                )
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'"</{stack[-1][0]}>"' if stack else "none"
                    raise BadRequestError(
                        "Bad Request: can't parse entities: Unmatched end tag at byte offset "
                        f'{byte_offset}, expected {expected}, found "</{name}>"'
                    )
                opened, start, attributes = stack.pop()
                if offset > start:
                    entity = {"type": _TAGS[opened], "offset": start, "length": offset - start}
                    entity.update(attributes)
                    entities.append(entity)
            else:
                extra: dict[str, Any] = {}
                if name == "a":
                    href = re.search(r"""href\s*=\s*["']([^"']*)["']""", attrs)
                    if href is None:
                        raise BadRequestError("Bad Request: can't parse entities: no href in <a>")
                    extra["url"] = href.group(1)
                if name == "span" and "tg-spoiler" not in attrs:
                    raise BadRequestError(
                        'Bad Request: can\'t parse entities: Tag "span" must have class '
                        f'"tg-spoiler" at byte offset {byte_offset}'
                    )
                stack.append((name, offset, extra))
            pos = match.end()
            continue
        if ch == "&":
            match = _ENTITY_RE.match(text, pos)
            if match is not None:
                ref = match.group(1)
                if ref.startswith("#x"):
                    decoded = chr(int(ref[2:], 16))
                elif ref.startswith("#"):
                    decoded = chr(int(ref[1:]))
                else:
                    decoded = _NAMED[ref]
                out.append(decoded)
                offset += utf16_len(decoded)
                pos = match.end()
                continue
        out.append(ch)
        offset += utf16_len(ch)
        pos += 1
    if stack:
        raise BadRequestError(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1][0]}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


@dataclass(frozen=True, slots=True)
class TelegramCall:
    """One request the bot made: method name and decoded parameters (files as bytes)."""

    method: str
    params: dict[str, Any]


@dataclass(slots=True)
class BotMessage:
    """A message the bot sent, as a user would see it (`text` is after entity parsing)."""

    chat_id: int
    message_id: int
    text: str = ""
    raw: str = ""
    parse_mode: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    photo: bytes | None = None
    document: bytes | None = None
    filename: str = ""
    edits: int = 0
    reply_to: int | None = None  # the message it replies to (reply_parameters), if any
    first_text: str = ""  # the text as first sent, before any edit
    deleted: bool = False  # removed by a user in the chat: no longer found, nor editable

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard buttons, row after row."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard", [])
        return [button for row in rows for button in row]


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after: int
    times: int


class FakeTelegram:
    """The fake Bot API server. Use as `async with FakeTelegram() as tg:`; `tg.api_url` is the
    base URL to give python-telegram-bot (`base_url`), the token is appended by the client."""

    def __init__(
        self,
        token: str = "123456:TEST-token",  # noqa: S107
        bot_username: str = "nightshift_test_bot",
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.bot_user = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "nightshift",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.host = host
        self.port = 0
        self.calls: list[TelegramCall] = []
        self.messages: list[BotMessage] = []  # what the chats show: deleted ones are gone
        self.deleted: list[BotMessage] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[int] = []  # HTTP statuses of webhook POSTs
        self.answered_callbacks: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []  # every update injected, delivered or not
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        self._changed = asyncio.Condition()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Base URL for the SDK: `http://127.0.0.1:PORT/bot` (the token is appended)."""
        return f"http://{self.host}:{self.port}/bot"

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner, self.port = await serve(app, self.host)

    async def stop(self) -> None:
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what a test does ------------------------------------------------------------------

    def fail(self, method: str, status: int = 429, retry_after: int = 1, times: int = 1) -> None:
        """Make the next `times` calls of `method` fail with `status` (429 or 5xx)."""
        self._failures.setdefault(method, []).append(_Failure(status, retry_after, times))

    def user(self, user_id: int, first_name: str = "Ana") -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "pt"}

    def chat(self, chat_id: int, chat_type: str = "private") -> dict[str, Any]:
        if chat_type == "private":
            return {"id": chat_id, "type": "private", "first_name": "Ana"}
        return {"id": chat_id, "type": chat_type, "title": "Plantão"}

    def send_user_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user writes `text` to the bot; returns the update (delivered by getUpdates or
        to the webhook)."""
        cid = user_id if chat_id is None else chat_id
        entities: list[dict[str, Any]] = []
        command = re.match(r"^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command[0])})
        for mention in re.finditer(r"@[A-Za-z0-9_]{5,32}", text):
            if command and mention.start() < command.end():
                continue
            entities.append(
                {
                    "type": "mention",
                    "offset": utf16_len(text[: mention.start()]),
                    "length": utf16_len(mention[0]),
                }
            )
        message: dict[str, Any] = {
            "message_id": next(self._ids_for(cid)),
            "from": self.user(user_id),
            "chat": self.chat(cid, chat_type),
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if reply_to_message_id is not None:
            original = self.find(cid, reply_to_message_id)
            message["reply_to_message"] = self._message_object(original)
        return self._push({"message": message})

    def press_button(
        self, user_id: int, message: BotMessage, data: str, chat_type: str = "private"
    ) -> dict[str, Any]:
        """A user presses an inline button whose callback_data is `data` under `message`."""
        if data not in {b.get("callback_data") for b in message.buttons}:
            raise AssertionError(f"no button with callback_data {data!r} under that message")
        query = {
            "id": str(next(self._callback_ids)),
            "from": self.user(user_id),
            "message": self._message_object(message, chat_type),
            "chat_instance": "-4242",
            "data": data,
        }
        return self._push({"callback_query": query})

    def sent(self, chat_id: int | None = None) -> list[BotMessage]:
        """Messages the bot sent (in order), optionally to one chat."""
        return [m for m in self.messages if chat_id is None or m.chat_id == chat_id]

    def find(self, chat_id: int, message_id: int) -> BotMessage:
        for message in self.messages:
            if message.chat_id == chat_id and message.message_id == message_id:
                if message.deleted:
                    break
                return message
        raise BadRequestError("Bad Request: message to edit not found")

    def delete_by_user(self, chat_id: int, message_id: int) -> None:
        """A person deletes one of the bot's messages in the chat."""
        self.find(chat_id, message_id).deleted = True

    def posts(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in a chat that are not replies to another (what rings)."""
        return [m for m in self.sent(chat_id) if m.reply_to is None]

    def calls_to(self, method: str) -> list[TelegramCall]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, method: str, count: int = 1, within: float = 5.0
    ) -> list[TelegramCall]:
        """Wait until `method` was called at least `count` times; return those calls."""

        async def reached() -> list[TelegramCall]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
            return self.calls_to(method)

        return await asyncio.wait_for(reached(), within)

    async def wait_for_messages(
        self, chat_id: int, count: int = 1, within: float = 5.0
    ) -> list[BotMessage]:
        """Wait until the bot has sent at least `count` messages to `chat_id`."""

        async def reached() -> list[BotMessage]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.sent(chat_id)) >= count)
            return self.sent(chat_id)

        return await asyncio.wait_for(reached(), within)

    # ---- internals -------------------------------------------------------------------------

    def _ids_for(self, chat_id: int) -> itertools.count[int]:
        return self._message_ids.setdefault(chat_id, itertools.count(1))

    def _message_object(self, message: BotMessage, chat_type: str = "private") -> dict[str, Any]:
        obj: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot_user,
            "chat": self.chat(message.chat_id, chat_type),
            "date": int(time.time()),
        }
        if message.photo is not None:
            obj["photo"] = [
                {
                    "file_id": f"photo{message.message_id}",
                    "file_unique_id": "u",
                    "width": 1200,
                    "height": 600,
                    "file_size": len(message.photo),
                }
            ]
            if message.text:
                obj["caption"] = message.text
        elif message.document is not None:
            obj["document"] = {
                "file_id": f"doc{message.message_id}",
                "file_unique_id": "d",
                "file_name": message.filename,
                "file_size": len(message.document),
            }
            if message.text:
                obj["caption"] = message.text
        else:
            obj["text"] = message.text
        if message.entities:
            key = "entities" if "text" in obj else "caption_entities"
            obj[key] = message.entities
        if message.reply_markup:
            obj["reply_markup"] = message.reply_markup
        return obj

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        if self.webhook is not None:
            task = asyncio.get_running_loop().create_task(self._deliver(update))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._updates.append(update)
            self._notify()
        return update

    async def _deliver(self, update: dict[str, Any]) -> None:
        assert self.webhook is not None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        async with self._session.post(
            self.webhook["url"], data=json.dumps(update), headers=headers
        ) as response:
            self.webhook_deliveries.append(response.status)
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        ctype = request.content_type
        if request.method == "POST" and request.can_read_body:
            if ctype == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise BadRequestError("Bad Request: JSON object expected")
                raw.update(body)
            elif ctype == "multipart/form-data":
                reader = await request.multipart()
                async for part in reader:
                    if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                        continue
                    if part.filename is not None:
                        files[part.name] = bytes(await part.read())
                        raw.setdefault("_filenames", {})[part.name] = part.filename
                    else:
                        raw[part.name] = await part.text()
            else:
                form = await request.post()
                raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _JSON_PARAMS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise BadRequestError(f"Bad Request: can't parse {key} JSON object") from exc
            elif key in _INT_PARAMS and isinstance(value, str):
                value = int(value)
            elif key in _BOOL_PARAMS and isinstance(value, str):
                value = value.lower() == "true"
            params[key] = value
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                name = value.removeprefix("attach://")
                if name not in files:
                    raise BadRequestError(f"Bad Request: file {name} not found in request")
                params[key] = files.pop(name)
        params.update(files)
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if token != self.token:
            return _error(401, "Unauthorized")
        try:
            params = await self._params(request)
        except BadRequestError as exc:
            return _error(exc.code, exc.description)
        self.calls.append(TelegramCall(method, params))
        self._notify()
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            if failure.status == 429:
                return _error(
                    429,
                    f"Too Many Requests: retry after {failure.retry_after}",
                    {"retry_after": failure.retry_after},
                )
            return _error(failure.status, "Internal Server Error")
        handler = getattr(self, "_m_" + method.lower(), None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            result = await handler(params)
        except BadRequestError as exc:
            return _error(exc.code, exc.description)
        except (KeyError, ValueError, TypeError) as exc:
            return _error(400, f"Bad Request: invalid parameter {exc}")
        self._notify()
        return web.json_response({"ok": True, "result": result})

    # ---- methods ---------------------------------------------------------------------------

    async def _m_getme(self, params: Mapping[str, Any]) -> Any:
        return self.bot_user

    async def _m_getupdates(self, params: Mapping[str, Any]) -> Any:
        if self.webhook is not None:
            raise BadRequestError(
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
                409,
            )
        offset = int(params.get("offset", 0))
        limit = max(1, min(100, int(params.get("limit", 100))))
        timeout = float(params.get("timeout", 0))
        if offset > 0:  # confirms every update with a smaller id
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        if not self._updates and timeout > 0 and not self._closing:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._updates) or self._closing),
                        timeout,
                    )
        allowed = params.get("allowed_updates")
        updates = self._updates[:limit]
        if allowed:
            updates = [u for u in updates if any(k in u for k in allowed)]
        return updates

    async def _m_setwebhook(self, params: Mapping[str, Any]) -> Any:
        url = str(params.get("url", ""))
        if not url:
            self.webhook = None
            return True
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise BadRequestError("Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_deletewebhook(self, params: Mapping[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, params: Mapping[str, Any]) -> Any:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _m_setmycommands(self, params: Mapping[str, Any]) -> Any:
        commands = params["commands"]
        if not isinstance(commands, list) or len(commands) > 100:
            raise BadRequestError("Bad Request: commands must be a list of at most 100")
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not _COMMAND_RE.match(name):
                raise BadRequestError("Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise BadRequestError("Bad Request: command description is invalid")
        self.commands = list(commands)
        return True

    async def _m_getmycommands(self, params: Mapping[str, Any]) -> Any:
        return self.commands

    async def _m_deletemycommands(self, params: Mapping[str, Any]) -> Any:
        self.commands = []
        return True

    async def _m_sendchataction(self, params: Mapping[str, Any]) -> Any:
        _chat_id(params)
        return True

    def _render(
        self, text: str, parse_mode: str | None, limit: int, what: str
    ) -> tuple[str, list[dict[str, Any]]]:
        if parse_mode is not None and parse_mode.upper() == "HTML":
            plain, entities = parse_html(text)
        elif parse_mode is None:
            plain, entities = text, []
        else:
            raise BadRequestError(f"Bad Request: unsupported parse_mode {parse_mode} in this fake")
        if what == "text" and not plain.strip():
            raise BadRequestError("Bad Request: message text is empty")
        if utf16_len(plain) > limit:
            raise BadRequestError(
                "Bad Request: message is too long"
                if what == "text"
                else "Bad Request: message caption is too long"
            )
        return plain, entities

    def _check_markup(self, markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise BadRequestError("Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise BadRequestError('Bad Request: field "inline_keyboard" must be an Array of Array')
        for row in rows:
            for button in row:
                if not str(button.get("text", "")):
                    raise BadRequestError(
                        "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise BadRequestError("Bad Request: BUTTON_DATA_INVALID")
                if data is None and "url" not in button:
                    raise BadRequestError('Bad Request: can\'t find field "callback_data"')
        return markup

    def _new_message(self, chat_id: int) -> BotMessage:
        message = BotMessage(chat_id=chat_id, message_id=next(self._ids_for(chat_id)))
        self.messages.append(message)
        return message

    async def _m_sendmessage(self, params: Mapping[str, Any]) -> Any:
        chat_id = _chat_id(params)
        raw = str(params["text"])
        parse_mode = params.get("parse_mode")
        plain, entities = self._render(raw, parse_mode, TEXT_LIMIT, "text")
        markup = self._check_markup(params.get("reply_markup"))
        message = self._new_message(chat_id)
        message.text, message.raw, message.parse_mode = plain, raw, parse_mode
        message.entities, message.reply_markup = entities, markup
        message.first_text = plain
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            message.reply_to = int(reply["message_id"])
        return self._message_object(message)

    async def _m_editmessagetext(self, params: Mapping[str, Any]) -> Any:
        if "inline_message_id" in params:
            raise BadRequestError("Bad Request: inline messages are not supported by this fake")
        message = self.find(_chat_id(params), int(params["message_id"]))
        if message.photo is not None or message.document is not None:
            raise BadRequestError("Bad Request: there is no text in the message to edit")
        raw = str(params["text"])
        parse_mode = params.get("parse_mode")
        plain, entities = self._render(raw, parse_mode, TEXT_LIMIT, "text")
        markup = self._check_markup(params.get("reply_markup"))
        if (
            plain == message.text
            and entities == message.entities
            and markup == message.reply_markup
        ):
            raise BadRequestError(
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message"
            )
        message.text, message.raw, message.parse_mode = plain, raw, parse_mode
        message.entities, message.reply_markup = entities, markup
        message.edits += 1
        return self._message_object(message)

    async def _m_editmessagereplymarkup(self, params: Mapping[str, Any]) -> Any:
        message = self.find(_chat_id(params), int(params["message_id"]))
        message.reply_markup = self._check_markup(params.get("reply_markup"))
        message.edits += 1
        return self._message_object(message)

    async def _send_file(self, params: Mapping[str, Any], field_name: str) -> BotMessage:
        chat_id = _chat_id(params)
        content = params.get(field_name)
        if not isinstance(content, bytes) or not content:
            raise BadRequestError(f"Bad Request: there is no {field_name} in the request")
        raw = str(params.get("caption", ""))
        parse_mode = params.get("parse_mode")
        plain, entities = self._render(raw, parse_mode, CAPTION_LIMIT, "caption")
        markup = self._check_markup(params.get("reply_markup"))
        message = self._new_message(chat_id)
        message.text, message.raw, message.parse_mode = plain, raw, parse_mode
        message.entities, message.reply_markup = entities, markup
        message.filename = params.get("_filenames", {}).get(field_name, "")
        if field_name == "photo":
            if not content.startswith(b"\x89PNG") and not content.startswith(b"\xff\xd8"):
                raise BadRequestError("Bad Request: IMAGE_PROCESS_FAILED")
            message.photo = content
        else:
            message.document = content
        return message

    async def _m_sendphoto(self, params: Mapping[str, Any]) -> Any:
        return self._message_object(await self._send_file(params, "photo"))

    async def _m_senddocument(self, params: Mapping[str, Any]) -> Any:
        return self._message_object(await self._send_file(params, "document"))

    async def _m_deletemessage(self, params: Mapping[str, Any]) -> Any:
        message = self.find(_chat_id(params), int(params["message_id"]))
        self.messages.remove(message)
        self.deleted.append(message)
        return True

    async def _m_answercallbackquery(self, params: Mapping[str, Any]) -> Any:
        query_id = str(params["callback_query_id"])
        known = {str(u["callback_query"]["id"]) for u in self.updates if "callback_query" in u}
        if query_id not in known or query_id in self.answered_callbacks:
            raise BadRequestError(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text", ""))) > 200:
            raise BadRequestError("Bad Request: MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = dict(params)
        return True


def _chat_id(params: Mapping[str, Any]) -> int:
    value = params.get("chat_id")
    if value is None or value == "":
        raise BadRequestError("Bad Request: chat_id is empty")
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequestError("Bad Request: chat not found") from exc


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)
