"""The Slack adapter: commands, mentions, DMs and buttons to Invocations; Replies to Block Kit."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.answer import Answer
from bot.render import pack, split_long
from skills.core import Button, Image, Invocation, ProgressSink, Reply

log = logging.getLogger(__name__)

Handle = Callable[[Invocation, ProgressSink | None], Awaitable[Reply]]
Respond = Callable[..., Awaitable[Any]]
Block = dict[str, Any]

EVENTS_PATH = "/slack/events"
COMMAND = "/nightshift"
ACTION_PREFIX = "nightshift_action_"
MAX_BLOCKS = 50
TEXT_LIMIT = 3000  # section text, and what we keep of the notification fallback
HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
BUTTONS_PER_BLOCK = 25
_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*")
_MENTIONS = "nightshift_mentions"
_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_UNDELIVERABLE = {"not_in_channel", "channel_not_found", "is_archived"}


# ---- rendering --------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters, as its formatting guide asks (`&`, `<`, `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """What the user typed: Slack sends `&`, `<`, `>` escaped in commands and events."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(text: str) -> dict[str, Any]:
    # plain_text shows every character as it is: no mrkdwn, so `_` and `*` stay literal
    return {"type": "plain_text", "text": text, "emoji": True}


def _text_blocks(text: str, monospace: bool) -> list[Block]:
    if not text.strip():
        return []
    if monospace:
        # inside a code block mrkdwn is off; only the control characters need escaping
        body = escape(text.replace("```", "`\u200b``"))
        pieces = split_long(body, TEXT_LIMIT - 6)
        return [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{p}```"}} for p in pieces
        ]
    return [{"type": "section", "text": _plain(p)} for p in _split_lines(text, TEXT_LIMIT)]


def _split_lines(text: str, limit: int) -> list[str]:
    lines = [piece for line in text.split("\n") for piece in split_long(line, limit)]
    return ["\n".join(run) for run in pack(lines, limit, len, gap=1)]


def _button_blocks(buttons: Sequence[Button]) -> list[Block]:
    blocks: list[Block] = []
    for start in range(0, len(buttons), BUTTONS_PER_BLOCK):
        elements: list[dict[str, Any]] = []
        for i, button in enumerate(buttons[start : start + BUTTONS_PER_BLOCK], start):
            label = (
                button.label if len(button.label) <= BUTTON_TEXT_LIMIT else button.label[:74] + "…"
            )
            element: dict[str, Any] = {
                "type": "button",
                "action_id": f"{ACTION_PREFIX}{i}",
                "text": _plain(label or "…"),
                "value": button.action,
            }
            if button.style != "default":
                element["style"] = button.style
            elements.append(element)
        blocks.append(
            {"type": "actions", "block_id": f"nightshift_buttons_{start}", "elements": elements}
        )
    return blocks


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One chat.postMessage worth of a reply: notification text and blocks."""

    text: str
    blocks: tuple[Block, ...]


def _fallback(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if block.get("block_id") == _MENTIONS:
            continue  # the notification text names them unescaped (render_blocks)
        if isinstance(text, dict):
            value = str(text.get("text", ""))
            if text.get("type") == "mrkdwn":
                value = unescape(value.strip("`"))
            parts.append(value)
    plain = "\n".join(parts) or "nightshift"
    return escape(plain if len(plain) <= TEXT_LIMIT else plain[: TEXT_LIMIT - 1] + "…")


def render_blocks(reply: Reply) -> list[SlackMessage]:
    """The reply as Block Kit messages in order: a header, one section per part (plain_text, so
    every character shows as typed; monospace parts as code blocks), buttons at the end; at most
    50 blocks and 3000 characters of section text each."""
    blocks: list[Block] = []
    title = reply.title.strip()
    if title and "\n" not in title and len(title) <= HEADER_LIMIT:
        blocks.append({"type": "header", "text": _plain(title)})
    elif title:
        blocks.extend(_text_blocks(title, monospace=False))
    for section in reply.sections:
        if blocks:
            blocks.append({"type": "divider"})
        body = "\n".join(section.lines)
        if section.monospace:
            blocks.extend(_text_blocks(section.heading, monospace=False))
            blocks.extend(_text_blocks(body, monospace=True))
        else:
            joined = "\n".join(x for x in (section.heading, body) if x)
            blocks.extend(_text_blocks(joined, monospace=False))
    if reply.image is not None and reply.image.caption:
        blocks.append({"type": "context", "elements": [_plain(reply.image.caption[:TEXT_LIMIT])]})
    mentions = " ".join(f"<@{u}>" for u in reply.mentioned("slack") if _USER.match(u))
    if mentions:
        blocks.insert(
            1 if blocks else 0,
            {
                "type": "section",
                "block_id": _MENTIONS,
                "text": {"type": "mrkdwn", "text": f"📣 {mentions}"},
            },
        )
    buttons = _button_blocks(reply.buttons)
    if not blocks and not buttons:
        blocks.append({"type": "section", "text": _plain("…")})
    runs = pack(blocks, MAX_BLOCKS - len(buttons), lambda _: 1) if blocks else [[]]
    runs[-1].extend(buttons)
    messages = [SlackMessage(_fallback(run), tuple(run)) for run in runs]
    if mentions:  # the notification text names them too, so their phones ring
        first = messages[0]
        messages[0] = SlackMessage(f"{mentions} {first.text}", first.blocks)
    return messages


# ---- the adapter ------------------------------------------------------------------------------


class SlackAdapter:
    """Slack through slack-bolt's AsyncApp: Socket Mode with an app token, else signed HTTP
    requests at /slack/events. It only translates: `handle` decides and checks permissions."""

    def __init__(
        self,
        bot_token: str,
        signing_secret: str | None,
        app_token: str | None,
        api_url: str | None,
        channel: str | None,
        handle: Handle,
        *,
        rate_limit_retries: int = 2,
    ) -> None:
        if not signing_secret and not app_token:
            raise ValueError(
                "Slack needs SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)"
            )
        self.channel = channel
        self._handle = handle
        self._app_token = app_token
        self._signing_secret = signing_secret or ""
        # slack_sdk joins method names onto base_url with urljoin: without the trailing slash
        # `http://proxy/api` would lose its `api` segment
        base_url = api_url.rstrip("/") + "/" if api_url else AsyncWebClient.BASE_URL
        self.client = AsyncWebClient(token=bot_token, base_url=base_url)
        self.client.retry_handlers.append(
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)
        )
        self.app = AsyncApp(
            client=self.client,
            signing_secret=self._signing_secret,
            request_verification_enabled=bool(signing_secret),
            name="nightshift",
        )
        self.app.command(COMMAND)(self._on_command)
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.action(re.compile(f"^{ACTION_PREFIX}"))(self._on_action)
        self._http = AsyncSlackRequestHandler(self.app) if signing_secret else None
        self._socket: AsyncSocketModeHandler | None = None
        self._bot_user_id = ""
        self._state = "off"

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "socket" if self._app_token else "http"

    def state(self) -> str:
        return self._state

    def routes(self) -> list[Route]:
        if self._http is None:
            return []
        return [Route(EVENTS_PATH, self._events, methods=["POST"])]

    async def start(self) -> None:
        """Checks the bot token (auth.test), then opens Socket Mode if an app token is set."""
        auth = await self.client.auth_test()
        self._bot_user_id = str(auth.get("user_id") or "")
        if self._app_token:
            self._socket = AsyncSocketModeHandler(self.app, self._app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._state = f"on ({self.mode})"
        log.info("slack: on as %s in %s, %s mode", auth.get("user"), auth.get("team"), self.mode)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        self._state = "off"

    async def _events(self, request: Request) -> Response:
        assert self._http is not None  # noqa: S101 (routes() only exposes this with a secret)
        return await self._http.handle(request)

    # ---- incoming ----------------------------------------------------------------------------

    async def _on_command(
        self, ack: Callable[[], Awaitable[None]], command: dict[str, Any], respond: Respond
    ) -> None:
        await ack()  # within Slack's 3 seconds, before any work
        inv = Invocation(
            platform="slack",
            user_id=str(command.get("user_id", "")),
            text=unescape(str(command.get("text") or "")).strip() or "ajuda",
            chat_id=str(command.get("channel_id", "")),
            user_name=str(command.get("user_name", "")),
        )
        await self._run(inv, respond)

    async def _on_mention(self, ack: Callable[[], Awaitable[None]], event: dict[str, Any]) -> None:
        await ack()
        text = _MENTION.sub("", unescape(str(event.get("text") or ""))).strip()
        await self._run(self._from_event(event, text or "ajuda"), None)

    async def _on_message(self, ack: Callable[[], Awaitable[None]], event: dict[str, Any]) -> None:
        await ack()
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return  # channel messages come as app_mention; edits and bots are not commands
        if event.get("user") == self._bot_user_id:
            return
        text = _MENTION.sub("", unescape(str(event.get("text") or ""))).strip()
        await self._run(self._from_event(event, text or "ajuda"), None)

    async def _on_action(
        self,
        ack: Callable[[], Awaitable[None]],
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
    ) -> None:
        await ack()
        user = body.get("user") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id", ""
        )
        inv = Invocation(
            platform="slack",
            user_id=str(user.get("id", "")),
            text=str(action.get("value") or ""),
            chat_id=str(channel),
            user_name=str(user.get("username") or user.get("name") or ""),
        )
        await self._run(inv, respond)

    @staticmethod
    def _from_event(event: dict[str, Any], text: str) -> Invocation:
        return Invocation(
            platform="slack",
            user_id=str(event.get("user", "")),
            text=text,
            chat_id=str(event.get("channel", "")),
        )

    async def _run(self, inv: Invocation, respond: Respond | None) -> None:
        answer = Answer(self, inv.chat_id)
        reply = await self._handle(inv, answer.sink)
        try:
            await answer.give(reply)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _UNDELIVERABLE and respond is not None:
                # the bot is not in that channel: answer through the command's response_url
                for message in render_blocks(reply):
                    await respond(
                        text=message.text, blocks=list(message.blocks), response_type="in_channel"
                    )
            else:
                log.warning("slack: could not answer %s: %s", inv.actor, error or exc)

    # ---- outgoing ----------------------------------------------------------------------------

    async def send(self, channel: str, reply: Reply) -> list[str]:
        """Posts the reply (Block Kit, with a plain-text fallback) and uploads its image;
        returns the message timestamps, in order."""
        ids: list[str] = []
        for message in render_blocks(reply):
            posted = await self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=list(message.blocks)
            )
            ids.append(str(posted["ts"]))
        if reply.image is not None:
            await self._upload(channel, reply.image)
        return ids

    async def _upload(self, channel: str, image: Image) -> None:
        await self.client.files_upload_v2(
            channel=channel,
            file=image.data,
            filename=image.filename,
            title=image.caption or image.filename,
        )

    async def edit(self, channel: str, ts: str | Sequence[str], reply: Reply) -> list[str]:
        """Replaces the message(s) holding an earlier reply (progress) with `reply`: each one
        updated in place, extra parts posted after them, messages no longer needed deleted.
        Returns the timestamps now holding the reply, in order."""
        ids = [ts] if isinstance(ts, str) else list(ts)
        if not ids:
            return await self.send(channel, reply)
        messages = render_blocks(replace(reply, image=None))
        kept: list[str] = []
        for i, message in enumerate(messages):
            if i < len(ids):
                await self.client.chat_update(
                    channel=channel, ts=ids[i], text=message.text, blocks=list(message.blocks)
                )
                kept.append(ids[i])
            else:
                posted = await self.client.chat_postMessage(
                    channel=channel, text=message.text, blocks=list(message.blocks)
                )
                kept.append(str(posted["ts"]))
        for stale in ids[len(messages) :]:
            try:
                await self.client.chat_delete(channel=channel, ts=stale)
            except SlackApiError as exc:  # already gone: leave it
                log.info("slack: could not delete %s: %s", stale, exc.response.get("error"))
        if reply.image is not None:
            await self._upload(channel, reply.image)
        return kept

    async def broadcast(self, reply: Reply) -> list[str]:
        """Posts the reply to NIGHTSHIFT_SLACK_CHANNEL (pushed alerts, briefings)."""
        if not self.channel:
            return []
        return await self.send(self.channel, reply)
