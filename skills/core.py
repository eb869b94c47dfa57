"""The neutral chat values every adapter translates to and from: Invocation, Reply, SkillContext.

Exceptions::

    SkillError            a polite, user-facing failure ("no such runbook"); exit status 1
    └── SkillRefused      the user may not do this; exit status 3
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from runbooks.service import RunbookService
    from storage.store import Store

Lang = Literal["pt", "en"]
Role = Literal["admin", "operator"]
Outcome = Literal["ok", "error", "refused"]
T = TypeVar("T")


class SkillError(Exception):
    """A failure the user should read as it is (already translated)."""


class SkillRefused(SkillError):
    """The user is not allowed to do what they asked."""


class Clock(Protocol):
    """Where the time comes from: the system in production, a fixed clock in tests."""

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Invocation:
    """One command as a user typed it, on any platform."""

    platform: str  # "console", "slack", "telegram", "shell"
    user_id: str
    text: str
    chat_id: str = ""
    user_name: str = ""

    @property
    def actor(self) -> str:
        """`platform:user_id`, the form used in permissions and the audit log."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a reply; `action` is the command run when pressed (≤ 64 bytes)."""

    label: str
    action: str
    style: Literal["default", "primary", "danger"] = "default"


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and its lines, plain text: renderers escape and format it per platform."""

    heading: str = ""
    lines: tuple[str, ...] = ()
    monospace: bool = False


@dataclass(frozen=True, slots=True)
class Image:
    """A picture attached to a reply (a PNG chart)."""

    data: bytes
    filename: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a skill answers: data, never platform markup."""

    title: str
    sections: tuple[Section, ...] = ()
    buttons: tuple[Button, ...] = ()
    image: Image | None = None
    outcome: Outcome = "ok"
    mentions: tuple[str, ...] = ()  # people to notify, as `platform:user_id`

    def mentioned(self, platform: str) -> tuple[str, ...]:
        """The user ids of the mentions on one platform."""
        prefix = f"{platform}:"
        return tuple(m[len(prefix) :] for m in self.mentions if m.startswith(prefix))

    def plain_text(self) -> str:
        """The reply as plain text: the console, `nightshift ask`, and the fallback text."""
        parts = [self.title] if self.title else []
        for section in self.sections:
            block = [section.heading] if section.heading else []
            block.extend(section.lines)
            if block:
                parts.append("\n".join(block))
        if self.image is not None and self.image.caption:
            parts.append(self.image.caption)
        if self.mentions:
            parts.append("📣 " + " ".join(f"@{m}" for m in self.mentions))
        if self.buttons:
            parts.append("  ".join(f"[{b.label}: {b.action}]" for b in self.buttons))
        return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class ProgressSink:
    """Where a long-running skill (a runbook) reports progress: the adapter edits one message."""

    update: Callable[[Reply], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Silence:
    """An Alertmanager silence as the skills read it (parsed by the adapter in `bot/`)."""

    id: str
    state: str  # active | pending | expired
    ends_at: datetime
    matchers: str  # as an operator reads them: `alertname=PixDown, env!=dev`
    created_by: str


class AlertSource(Protocol):
    """Alertmanager's live view (its API v2), when `ALERTMANAGER_URL` is set."""

    async def alert_states(self) -> Mapping[str, str]:
        """Fingerprint → state (`active`, `suppressed`, `unprocessed`) of the unresolved alerts."""
        ...

    async def create_silence(
        self,
        matchers: Sequence[dict[str, object]],
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> str: ...

    async def silence_list(self) -> Sequence[Silence]: ...


Handler = Callable[["Invocation", str, "SkillContext"], Awaitable["Reply"]]
Access = Literal["read", "admin"]


@dataclass(frozen=True, slots=True)
class SkillSpec:
    """A chat command: its Portuguese name, English and Portuguese aliases, help and handler.

    `presets` are phrases that run the command with fixed arguments (`taxa de aprovação` →
    `metricas aprovacao`). `access` "read" lets operators in; "admin" only admins (a skill may
    check finer rules itself, as runbooks do for dangerous ones).
    """

    name: str
    aliases: tuple[str, ...]
    summary_pt: str
    summary_en: str
    usage: str
    run: Handler
    access: Access = "read"
    presets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SkillContext:
    """Everything a skill may use. Built once by the composition root, shared by all calls."""

    store: Store
    clock: Clock
    tz: tzinfo
    lang: Lang
    role: Role | None = None
    invocation: Invocation | None = None
    progress: ProgressSink | None = None
    alertmanager: AlertSource | None = None
    runbooks: RunbookService | None = None
    adapters: Callable[[], Sequence[tuple[str, str]]] = tuple  # (platform, state) for `status`
    skills: tuple[SkillSpec, ...] = ()
    announce: Callable[[], Sequence[str]] = tuple  # where an incident opened by hand is told
    avg_ticket: float | None = None  # NIGHTSHIFT_AVG_TICKET, when event amounts are missing
    currency: str = "BRL"

    async def call(self, fn: Callable[..., T], /, *args: object) -> T:
        """Run blocking work (SQL, pandas) off the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def read(self, fn: Callable[..., T], /, *args: object) -> T:
        """Run read-only work off the event loop, its queries on one store connection."""

        def on_one_connection() -> T:
            with self.store.reading():
                return fn(*args)

        return await asyncio.to_thread(on_one_connection)

    def tr(self, pt: str, en: str) -> str:
        """The text in the reply language."""
        return pt if self.lang == "pt" else en

    def local(self, when: datetime) -> datetime:
        """A time on the shift clock."""
        return when.astimezone(self.tz)


def normalize(text: str) -> str:
    """Case and accents folded: `Últimas` → `ultimas`, so commands match however typed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()
