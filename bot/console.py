"""The console chat: the terminal as a chat platform, for `serve`, `chat` and `ask`."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

from skills.core import Invocation, ProgressSink, Reply

log = logging.getLogger(__name__)

Handle = Callable[[Invocation, ProgressSink | None], Awaitable[Reply]]
PROMPT = "nightshift> "


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


def _reader(source: TextIO) -> asyncio.Queue[str]:
    """Lines of `source` from a daemon thread: a blocked read never holds up shutdown."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        while True:
            try:
                line = source.readline()
            except (OSError, ValueError):
                line = ""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            except RuntimeError:  # the loop has closed
                return
            if not line:
                return

    threading.Thread(target=pump, name="console-reader", daemon=True).start()
    return queue


class ConsoleChat:
    """Reads commands line by line, prints replies, and prints pushed notifications."""

    def __init__(self, handle: Handle, user_id: str | None = None, out: TextIO | None = None):
        self._handle = handle
        self.user_id = user_id or login_name()
        self._out = out or sys.stdout
        self._task: asyncio.Task[None] | None = None
        self.on_exit: Callable[[], None] | None = None

    def state(self) -> str:
        return "on" if self._task is not None and not self._task.done() else "off"

    def invocation(self, text: str) -> Invocation:
        return Invocation(platform="console", user_id=self.user_id, text=text, chat_id="console")

    async def ask(self, text: str) -> Reply:
        async def show(progress: Reply) -> None:
            self.print(progress.plain_text())

        return await self._handle(self.invocation(text), ProgressSink(update=show))

    def print(self, text: str) -> None:
        self._out.write(text.rstrip() + "\n")
        self._out.flush()

    async def push(self, reply: Reply) -> str:
        """A notification (alert, finding, briefing) shown on the terminal."""
        self.print("\n" + reply.plain_text())
        return "console"

    async def run(self, stream: TextIO | None = None, prompt: bool = True) -> bool:
        """The read-answer loop until EOF (returns False) or `sair`/`exit` (returns True)."""
        source = stream or sys.stdin
        lines = _reader(source)
        while True:
            if prompt:
                self._out.write(PROMPT)
                self._out.flush()
            line = await lines.get()
            if not line:
                return False
            text = line.strip()
            if text.lower() in ("sair", "exit", "quit"):
                return True
            if not text:
                continue
            reply = await self.ask(text)
            self.print(reply.plain_text())

    def start(self, stream: TextIO | None = None) -> None:
        """Run the loop in the background; typing `sair` (or EOF on a terminal) calls on_exit."""
        interactive = (stream or sys.stdin).isatty()

        async def loop() -> None:
            asked_to_leave = await self.run(stream, prompt=interactive)
            # Ctrl-D on a terminal leaves too; the end of a pipe (or /dev/null) does not.
            if (asked_to_leave or interactive) and self.on_exit is not None:
                self.on_exit()

        self._task = asyncio.create_task(loop(), name="console-chat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
