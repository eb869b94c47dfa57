"""The composition root: builds every part from Settings and owns start and stop order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.clock import SystemClock
from bot.console import ConsoleChat
from bot.http import Intake, json_error_handlers, routes
from bot.metrics import Metrics
from bot.runbook_cli import build_runbook_service
from bot.settings import Settings
from bot.watch import FeedWatch
from skills.access import Access
from skills.core import Clock, Invocation, ProgressSink, Reply, SkillContext
from skills.registry import SKILLS
from skills.router import Dispatcher
from storage.records import AlertChange
from storage.store import Store, open_store

if TYPE_CHECKING:
    from bot.slack import SlackAdapter
    from bot.telegram import TelegramAdapter

log = logging.getLogger(__name__)


def read_states(states: dict[str, Callable[[], str]]) -> list[tuple[str, str]]:
    """(platform, state) of each chat adapter, read now."""
    return [(name, read()) for name, read in states.items()]


@dataclass
class Core:
    """What every entry point shares: store, dispatcher, metrics (no network, no scheduler)."""

    settings: Settings
    clock: Clock
    store: Store
    metrics: Metrics
    dispatcher: Dispatcher
    adapter_states: dict[str, Callable[[], str]] = field(default_factory=dict)

    async def handle(self, inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        return await self.dispatcher.handle(inv, progress)

    def states(self) -> list[tuple[str, str]]:
        return read_states(self.adapter_states)

    def close(self) -> None:
        self.store.close()


def build_core(settings: Settings, clock: Clock | None = None, store: Store | None = None) -> Core:
    """Store, skills and dispatcher from settings; raises StorageError for a bad database."""
    clock = clock or SystemClock()
    store = store or open_store(settings.database_url)
    metrics = Metrics()
    states: dict[str, Callable[[], str]] = {}
    context = SkillContext(
        store=store,
        clock=clock,
        tz=settings.timezone,
        lang=settings.lang,
        runbooks=build_runbook_service(settings, clock, store),
        adapters=partial(read_states, states),
    )
    access = Access(operators=settings.operators, admins=settings.admins)
    dispatcher = Dispatcher(SKILLS, context, access, observe=metrics.observe_command)
    metrics.gauge(
        "nightshift_store_up", "1 when the store answers.", lambda: 1.0 if store.ping() else 0.0
    )
    return Core(settings, clock, store, metrics, dispatcher, states)


class App:
    """The `serve` process: HTTP, chat adapters, and background work, in one lifespan."""

    def __init__(self, core: Core, *, console: bool | None = None) -> None:
        self.core = core
        settings = core.settings
        chat_configured = bool(settings.slack_bot_token or settings.telegram_bot_token)
        self.console: ConsoleChat | None = None
        if console if console is not None else not chat_configured:
            self.console = ConsoleChat(core.handle)
            core.adapter_states["console"] = self.console.state
        self.telegram: TelegramAdapter | None = None
        self.slack: SlackAdapter | None = None
        self._background: list[asyncio.Task[None]] = []
        self._extra_routes: list[BaseRoute] = []
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self.on_console_exit: Callable[[], None] | None = None
        self.watch = FeedWatch(core.store, core.clock)
        self._build_chat(settings)

    def _build_chat(self, settings: Settings) -> None:
        """The chat platforms whose tokens are set, each with its routes and lifecycle."""
        commands = [
            (s.name, s.summary_pt if settings.lang == "pt" else s.summary_en)
            for s in self.core.dispatcher.router.skills
        ]
        # The SDKs load only when their platform is configured: `ask` and `ingest` start fast.
        if settings.telegram_bot_token:
            from bot.telegram import TelegramAdapter

            secret = settings.telegram_webhook_secret
            self.telegram = TelegramAdapter(
                token=settings.telegram_bot_token.value,
                api_url=settings.telegram_api_url,
                chat_ids=settings.telegram_chat_ids,
                mode=settings.telegram_mode,
                webhook_secret=secret.value if secret else None,
                handle=self.core.handle,
                commands=commands,
            )
            self._add_adapter("telegram", self.telegram)
        if settings.slack_bot_token:
            from bot.slack import SlackAdapter

            signing, app_token = settings.slack_signing_secret, settings.slack_app_token
            self.slack = SlackAdapter(
                bot_token=settings.slack_bot_token.value,
                signing_secret=signing.value if signing else None,
                app_token=app_token.value if app_token else None,
                api_url=settings.slack_api_url,
                channel=settings.slack_channel,
                handle=self.core.handle,
            )
            self._add_adapter("slack", self.slack)

    def _add_adapter(self, name: str, adapter: TelegramAdapter | SlackAdapter) -> None:
        self.core.adapter_states[name] = adapter.state
        self._extra_routes.extend(adapter.routes())
        self._startup.append(adapter.start)
        self._shutdown.append(adapter.stop)

    async def on_alerts(self, changes: list[AlertChange]) -> None:
        """Alert state changes from a webhook, already stored."""
        if self.console is None:
            return
        for change in changes:
            alert = await asyncio.to_thread(self.core.store.alert, change.fingerprint)
            if alert is None:
                continue
            icon = "🔴" if change.new_status == "firing" else "✅"
            await self.console.push(
                Reply(
                    title=f"{icon} {alert.severity} {alert.alertname}: {change.new_status}"
                    + (f" — {alert.summary}" if alert.summary else "")
                )
            )

    def intake(self) -> Intake:
        settings = self.core.settings
        return Intake(
            store=self.core.store,
            clock=self.core.clock,
            metrics=self.core.metrics,
            token=settings.webhook_token.value if settings.webhook_token else None,
            tz=settings.timezone,
            max_body=settings.max_body_bytes,
            on_alerts=self.on_alerts,
            adapter_states=self.core.states,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _watch_feed(self) -> None:
        """The detector tick, at the top of every minute; critical findings reach the console."""
        await asyncio.to_thread(self.watch.warm)
        while True:
            now = self.core.clock.now()
            await asyncio.sleep(60 - now.second - now.microsecond / 1e6 + 1)
            try:
                findings = await asyncio.to_thread(self.watch.tick)
            except Exception:
                log.exception("detector tick failed")
                continue
            self.core.metrics.inc("nightshift_detector_runs_total", "Detector ticks.")
            for finding in findings:
                if self.console is not None and finding.severity == "critical":
                    icon = "✅" if finding.resolved else "🔴"
                    text = finding.explanation(self.core.settings.lang)
                    await self.console.push(Reply(title=f"{icon} {finding.kind}: {text}"))

    async def start(self) -> None:
        for step in self._startup:
            await step()
        self._background.append(asyncio.create_task(self._watch_feed(), name="detector"))
        if self.console is not None:
            self.console.print(
                self.core.dispatcher.context.tr(
                    "nightshift pronto. Digite `ajuda` para ver os comandos, `sair` para sair.",
                    "nightshift ready. Type `help` for the commands, `exit` to leave.",
                )
            )
            self.console.start()
            self.console.on_exit = self._console_exit

    def _console_exit(self) -> None:
        if self.on_console_exit is not None:
            self.on_console_exit()

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.stop()
        for step in reversed(self._shutdown):
            try:
                await step()
            except Exception:
                log.exception("error while stopping")
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[*routes(self.intake()), *self._extra_routes],
            lifespan=self.lifespan,
            exception_handlers=json_error_handlers(),
        )
