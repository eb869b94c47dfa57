"""A command answered in one chat message: its progress edits that message in place, and the
final reply takes its place (or comes as a new message when it carries an image)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from skills.core import ProgressSink, Reply


class Chat(Protocol):
    """What an adapter can do with its messages: post a reply, edit the messages one took."""

    async def send(self, chat_id: str, reply: Reply, /) -> list[str]: ...

    async def edit(self, chat_id: str, ids: str | Sequence[str], reply: Reply, /) -> list[str]: ...


class Answer:
    """The message a command's answer lives in, for one command in one chat."""

    def __init__(self, chat: Chat, chat_id: str) -> None:
        self._chat = chat
        self._chat_id = chat_id
        self._ids: list[str] = []  # every message the progress takes, in order

    @property
    def sink(self) -> ProgressSink:
        return ProgressSink(self._show)

    async def _show(self, progress: Reply) -> None:
        if self._ids:
            self._ids[:] = await self._chat.edit(self._chat_id, self._ids, progress)
        else:
            self._ids.extend(await self._chat.send(self._chat_id, progress))

    async def give(self, reply: Reply) -> None:
        """The final reply: in the progress message if there was one, else a new message."""
        if self._ids and reply.image is None:
            await self._chat.edit(self._chat_id, self._ids, reply)
        else:
            await self._chat.send(self._chat_id, reply)
