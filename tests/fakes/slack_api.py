"""A fake Slack Web API and Socket Mode server on 127.0.0.1, faithful to Slack's API documents.

Web API methods are served at `/api/<method>` (so `base_url` is `http://127.0.0.1:PORT/api/`) and
read arguments from the query string, an urlencoded form or a JSON body, like Slack. Answers are
`{"ok": true, ...}` or `{"ok": false, "error": ...}` with HTTP 200; 429 comes with `Retry-After`.
It checks the bearer token (bot token for Web API methods, app-level token for
apps.connections.open), enforces Block Kit limits, records every call, and serves the Socket Mode
WebSocket: a test delivers slash_commands, events_api and interactive envelopes and reads the
acks. `signed_headers` and `slash_command_form` help tests post to an app's `/slack/events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.fakes.loopback import serve

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
ACTIONS_ELEMENTS_LIMIT = 25
MESSAGE_TEXT_LIMIT = 40000
TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0FAKE"


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One Web API request: method and merged arguments (token removed)."""

    method: str
    args: dict[str, Any]


@dataclass(slots=True)
class SlackMessage:
    """A message the bot posted (or a file it shared)."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: int = 0
    thread_ts: str | None = None

    def block_texts(self) -> list[str]:
        """Every text a reader sees in the blocks, in order (as sent, still mrkdwn-escaped)."""
        out: list[str] = []

        def visit(node: Any) -> None:
            if isinstance(node, dict):
                # text objects, and rich_text "text" elements
                if node.get("type") in ("plain_text", "mrkdwn", "text") and "text" in node:
                    out.append(str(node["text"]))
                else:
                    for value in node.values():
                        visit(value)
            elif isinstance(node, list):
                for value in node:
                    visit(value)

        visit(self.blocks)
        return out

    def buttons(self) -> list[dict[str, Any]]:
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("type") == "button"
        ]


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after: int
    times: int


class SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class FakeSlack:
    """The fake Slack server. `async with FakeSlack() as slack:`; `slack.api_url` for
    `AsyncWebClient(base_url=...)`."""

    def __init__(
        self,
        bot_token: str = "xoxb-fake-bot-token",  # noqa: S107
        app_token: str = "xapp-1-fake-app-token",  # noqa: S107
        host: str = "127.0.0.1",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.host = host
        self.port = 0
        self.calls: list[SlackCall] = []
        self.messages: list[SlackMessage] = []  # what the channels show: deleted ones are gone
        self.deleted: list[SlackMessage] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        self.uploads: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any] | None] = {}
        self.channels_not_joined: set[str] = set()
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{rid}", self._response_url)
        app.router.add_get("/link/", self._socket)
        self._runner, self.port = await serve(app, self.host)

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what a test does ------------------------------------------------------------------

    def fail(self, method: str, status: int = 429, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls of `method` answer `status` (429 carries Retry-After)."""
        self._failures.setdefault(method, []).append(_Failure(status, retry_after, times))

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def sockets_open(self) -> int:
        """Socket Mode connections open now."""
        return len(self._sockets)

    def posted(self, channel: str | None = None) -> list[SlackMessage]:
        return [m for m in self.messages if channel is None or m.channel == channel]

    async def _wait(self, predicate: Any, within: float) -> None:
        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(reached(), within)

    async def wait_for(self, method: str, count: int = 1, within: float = 5.0) -> list[SlackCall]:
        await self._wait(lambda: len(self.calls_to(method)) >= count, within)
        return self.calls_to(method)

    async def wait_for_messages(
        self, channel: str, count: int = 1, within: float = 5.0
    ) -> list[SlackMessage]:
        await self._wait(lambda: len(self.posted(channel)) >= count, within)
        return self.posted(channel)

    async def wait_for_responses(self, count: int = 1, within: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` answers were posted to response_url."""
        await self._wait(lambda: len(self.responses) >= count, within)
        return self.responses

    async def wait_for_socket(self, within: float = 5.0) -> None:
        await self._wait(lambda: bool(self._sockets), within)

    async def wait_for_ack(self, envelope_id: str, within: float = 5.0) -> dict[str, Any] | None:
        await self._wait(lambda: envelope_id in self.acks, within)
        return self.acks[envelope_id]

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver a Socket Mode envelope (`slash_commands`, `events_api`, `interactive`) on
        the open WebSocket; returns its envelope_id."""
        if not self._sockets:
            raise AssertionError("no Socket Mode connection is open")
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = 0
            envelope["retry_reason"] = ""
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope_id

    def response_url(self) -> str:
        return f"{self.origin}/response/{uuid.uuid4().hex}"

    def slash_command_form(
        self,
        text: str,
        user_id: str = "U0OPS",
        channel_id: str = "C0OPS",
        command: str = "/nightshift",
    ) -> dict[str, str]:
        """The form fields Slack posts for a slash command (also the Socket Mode payload)."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "ops",
            "user_id": user_id,
            "user_name": "ana",
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_url(),
            "trigger_id": f"{time.time():.0f}.trigger",
        }

    def event_payload(self, event: dict[str, Any]) -> dict[str, Any]:
        """An Events API `event_callback` wrapping `event`."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {"event_ts": event.get("ts", f"{time.time():.6f}"), **event},
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def block_action_payload(
        self, message: SlackMessage, action_id: str, user_id: str = "U0OPS"
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user_id` presses a button."""
        button = next(b for b in message.buttons() if b["action_id"] == action_id)
        block_id = next(
            b.get("block_id", "")
            for b in message.blocks
            if b.get("type") == "actions" and button in b.get("elements", [])
        )
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": "ana", "name": "ana", "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{time.time():.0f}.trigger",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "ops"},
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "blocks": message.blocks,
            },
            "response_url": self.response_url(),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": button["text"],
                    "value": button.get("value", ""),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    # ---- internals -------------------------------------------------------------------------

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        args[key] = value.file.read()
                    elif isinstance(value, str):
                        args[key] = value
                    else:  # a non-text part that is not a file arrives as raw bytes
                        args[key] = bytes(value)
        return args

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = str(args.pop("token", "")) or token
        self.calls.append(SlackCall(method, args))
        self._notify()
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            if failure.status == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(failure.retry_after)},
                )
            return web.Response(status=failure.status, text="upstream error")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        wants_app_token = method == "apps.connections.open"
        if token not in (self.bot_token, self.app_token):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if (token == self.app_token) != wants_app_token:
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        handler = getattr(self, "_m_" + method.replace(".", "_").lower(), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            result = handler(args)
        except SlackError as exc:
            return web.json_response({"ok": False, "error": exc.error, **exc.extra})
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response(
                {"ok": False, "error": "invalid_arguments", "detail": str(exc)}
            )
        self._notify()
        return web.json_response({"ok": True, **result})

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="not found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file") or next(iter(form.values()))
            if isinstance(part, web.FileField):
                body = part.file.read()
            elif isinstance(part, str):
                body = part.encode()
            else:
                body = bytes(part)
        else:
            body = await request.read()
        self.uploads[file_id]["data"] = body
        self._notify()
        return web.Response(text=f"OK - {len(body)}")

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append({"id": request.match_info["rid"], **body})
        self._notify()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._notify()
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError):
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        self.acks[str(data["envelope_id"])] = data.get("payload")
                        self._notify()
        finally:
            self._sockets.remove(ws)
        return ws

    # ---- Web API methods -------------------------------------------------------------------

    def _m_auth_test(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "nightshift",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: Mapping[str, Any]) -> dict[str, Any]:
        query = urlencode({"ticket": uuid.uuid4().hex, "app_id": APP_ID})
        return {"url": f"ws://{self.host}:{self.port}/link/?{query}"}

    def _channel(self, args: Mapping[str, Any], key: str = "channel") -> str:
        channel = str(args.get(key) or "")
        if not channel or channel[0] not in "CDG":
            raise SlackError("channel_not_found")
        if channel in self.channels_not_joined:
            raise SlackError("not_in_channel")
        return channel

    def _content(self, args: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = str(args.get("text") or "")
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except json.JSONDecodeError as exc:
                raise SlackError("invalid_blocks_format") from exc
        blocks = blocks or []
        if not text and not blocks and not args.get("attachments"):
            raise SlackError("no_text")
        if len(text) > MESSAGE_TEXT_LIMIT:
            raise SlackError("msg_too_long")
        errors = _block_errors(blocks)
        if errors:
            raise SlackError("invalid_blocks", errors=errors)
        return text, blocks

    def _m_chat_postmessage(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        text, blocks = self._content(args)
        message = SlackMessage(
            channel, self._next_ts(), text, blocks, thread_ts=args.get("thread_ts")
        )
        self.messages.append(message)
        return {"channel": channel, "ts": message.ts, "message": self._message_object(message)}

    def _m_chat_update(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = str(args.get("ts", ""))
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = self._content(args)
        message.text, message.blocks = text, blocks
        message.edits += 1
        return {
            "channel": channel,
            "ts": ts,
            "text": text,
            "message": self._message_object(message),
        }

    def _m_chat_delete(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = str(args.get("ts", ""))
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        self.messages.remove(message)
        self.deleted.append(message)
        return {"channel": channel, "ts": ts}

    def _m_chat_postephemeral(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if not args.get("user"):
            raise SlackError("user_not_found")
        text, blocks = self._content(args)
        self.ephemerals.append(
            {"channel": channel, "user": args["user"], "text": text, "blocks": blocks}
        )
        return {"message_ts": self._next_ts()}

    def _m_files_getuploadurlexternal(self, args: Mapping[str, Any]) -> dict[str, Any]:
        filename = str(args.get("filename") or "")
        length = int(args.get("length") or 0)
        if not filename or length <= 0:
            raise SlackError("invalid_arguments")
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.uploads[file_id] = {"filename": filename, "length": length, "data": None}
        return {"upload_url": f"{self.origin}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeuploadexternal(self, args: Mapping[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            raise SlackError("invalid_arguments")
        out = []
        for item in files:
            upload = self.uploads.get(str(item.get("id")))
            if upload is None or upload["data"] is None:
                raise SlackError("file_not_found")
            if len(upload["data"]) != upload["length"]:
                raise SlackError("file_upload_size_mismatch")
            out.append(
                {
                    "id": item["id"],
                    "name": upload["filename"],
                    "title": item.get("title") or upload["filename"],
                    "size": upload["length"],
                }
            )
        channel = args.get("channel_id") or args.get("channels")
        if channel:
            channel = self._channel({"channel": channel})
            message = SlackMessage(
                channel,
                self._next_ts(),
                str(args.get("initial_comment") or ""),
                files=out,
                thread_ts=args.get("thread_ts"),
            )
            self.messages.append(message)
        return {"files": out}

    def _message_object(self, message: SlackMessage) -> dict[str, Any]:
        return {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
            "team": TEAM_ID,
        }


def _text_len(obj: Any) -> int:
    return len(str(obj.get("text", ""))) if isinstance(obj, dict) else 0


def _block_errors(blocks: Any) -> list[str]:
    """The subset of Block Kit validation Slack applies that a renderer can get wrong."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            text = block.get("text")
            if text is None and not block.get("fields"):
                errors.append(f"must provide text or fields {where}]")
            if text is not None:
                if text.get("type") not in ("plain_text", "mrkdwn"):
                    errors.append(f"invalid text type {where}/text/type]")
                if not 1 <= _text_len(text) <= SECTION_TEXT_LIMIT:
                    errors.append(
                        f"must be between 1 and {SECTION_TEXT_LIMIT} characters {where}/text/text]"
                    )
            for j, item in enumerate(block.get("fields") or []):
                if not 1 <= _text_len(item) <= 2000:
                    errors.append(f"must be at most 2000 characters {where}/fields/{j}/text]")
        elif kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text":
                errors.append(f"must be plain_text {where}/text/type]")
            if not 1 <= _text_len(text) <= HEADER_TEXT_LIMIT:
                errors.append(f"must be at most {HEADER_TEXT_LIMIT} characters {where}/text/text]")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= ACTIONS_ELEMENTS_LIMIT:
                errors.append(f"must have 1 to {ACTIONS_ELEMENTS_LIMIT} elements {where}/elements]")
            ids = [e.get("action_id") for e in elements if e.get("action_id")]
            if len(ids) != len(set(ids)):
                errors.append(f"action_id must be unique {where}/elements]")
            for j, element in enumerate(elements):
                if element.get("type") != "button":
                    continue
                text = element.get("text") or {}
                if (
                    text.get("type") != "plain_text"
                    or not 1 <= _text_len(text) <= BUTTON_TEXT_LIMIT
                ):
                    errors.append(f"invalid button text {where}/elements/{j}/text]")
                if len(str(element.get("value", ""))) > BUTTON_VALUE_LIMIT:
                    errors.append(f"must be at most 2000 characters {where}/elements/{j}/value]")
                if element.get("style") not in (None, "primary", "danger"):
                    errors.append(f"invalid style {where}/elements/{j}/style]")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                errors.append(f"must have 1 to 10 elements {where}/elements]")
            for j, element in enumerate(elements):
                if element.get("type") in ("plain_text", "mrkdwn") and not (
                    1 <= _text_len(element) <= SECTION_TEXT_LIMIT
                ):
                    errors.append(f"invalid text {where}/elements/{j}]")
        elif kind in ("divider", "image", "rich_text", "input", "file", "video", "markdown"):
            pass
        else:
            errors.append(f"unknown block type {kind!r} {where}/type]")
        if isinstance(block, dict) and len(str(block.get("block_id", ""))) > 255:
            errors.append(f"must be at most 255 characters {where}/block_id]")
    return errors


def signed_headers(body: str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs a request with (v0 HMAC-SHA256 over `v0:ts:body`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(
        signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
