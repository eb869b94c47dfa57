"""The composition root: builds every part from Settings and owns start and stop order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.alertmanager import AlertmanagerClient
from bot.clock import SystemClock
from bot.console import ConsoleChat
from bot.delivery import DeliveryWorker, Notifier, Renderer, instance_id
from bot.http import Intake, json_error_handlers, routes
from bot.jobs import JobParts, Retention, Scheduler, ShiftReports, jobs
from bot.leader import Leader
from bot.metrics import Metrics
from bot.notifiers import ConsoleNotifier, SlackNotifier, TelegramNotifier
from bot.routing import Routes
from bot.settings import Secret, Settings
from bot.watch import FeedWatch, keep_freed_memory, release_freed_memory
from detector.config import DetectorConfig
from detector.engine import Engine
from runbooks.catalog import load_catalog
from runbooks.executor import Executor
from runbooks.redaction import Redactor
from runbooks.service import AuditLog, RunbookService
from skills.access import Access
from skills.core import Clock, Invocation, ProgressSink, Reply, SkillContext
from skills.notices import body_from_reply
from skills.registry import SKILLS, menu
from skills.router import Dispatcher
from storage.correlation import Correlation
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
    alertmanager: AlertmanagerClient | None = None
    announce: list[str] = field(default_factory=list)  # where incidents opened by hand go
    on_handled: Callable[[], None] | None = None  # a command may have changed what is told

    async def handle(self, inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        try:
            return await self.dispatcher.handle(inv, progress)
        finally:
            if self.on_handled is not None:
                self.on_handled()

    def states(self) -> list[tuple[str, str]]:
        return read_states(self.adapter_states)

    async def aclose(self) -> None:
        """Close network clients (Alertmanager); the store stays open."""
        if self.alertmanager is not None:
            await self.alertmanager.aclose()

    def close(self) -> None:
        self.store.close()


def lock_dir() -> Path:
    """Per-runbook lock files, so the bot and the shell never run the same runbook at once."""
    return Path(tempfile.gettempdir()) / f"nightshift-runbooks-{os.getuid()}"


def build_runbook_service(
    settings: Settings,
    clock: Clock,
    audit: AuditLog,
    environ: Mapping[str, str] | None = None,
) -> RunbookService:
    """The runbook service from settings (raises `RunbookConfigError` for a bad file).

    `environ` is where variables a runbook lists in `env` are passed on from.
    """
    catalog = load_catalog(settings.runbooks_dir)
    secrets = [
        value.value
        for value in (getattr(settings, f.name) for f in dataclasses.fields(settings))
        if isinstance(value, Secret)
    ]
    executor = Executor(
        clock.now,
        environ=os.environ if environ is None else environ,
        redactor=Redactor.of(secrets),
        lock_dir=lock_dir(),
    )
    return RunbookService(catalog, executor, clock.now, audit)


def build_core(settings: Settings, clock: Clock | None = None, store: Store | None = None) -> Core:
    """Store, skills and dispatcher from settings; raises StorageError for a bad database."""
    clock = clock or SystemClock()
    store = store or open_store(settings.database_url)
    metrics = Metrics()
    states: dict[str, Callable[[], str]] = {}
    announce: list[str] = []  # `serve` fills it once it knows its chats
    alertmanager = (
        AlertmanagerClient(settings.alertmanager_url) if settings.alertmanager_url else None
    )
    context = SkillContext(
        store=store,
        clock=clock,
        tz=settings.timezone,
        lang=settings.lang,
        runbooks=build_runbook_service(settings, clock, store),
        adapters=partial(read_states, states),
        alertmanager=alertmanager,
        announce=lambda: tuple(announce),
        avg_ticket=settings.avg_ticket,
        currency=settings.currency,
    )
    access = Access(operators=settings.operators, admins=settings.admins)
    dispatcher = Dispatcher(SKILLS, context, access, observe=metrics.observe_command)
    metrics.gauge(
        "nightshift_store_up", "1 when the store answers.", lambda: 1.0 if store.ping() else 0.0
    )
    return Core(settings, clock, store, metrics, dispatcher, states, alertmanager, announce)


def _log_failure(task: asyncio.Task[None]) -> None:
    """A background job that died says so (it would otherwise fail silently until stop)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background job failed", exc_info=task.exception())


class App:
    """The `serve` process: HTTP, chat adapters, and background work, in one lifespan."""

    def __init__(
        self,
        core: Core,
        *,
        console: bool | None = None,
        tick_every: float | None = None,
        background: Sequence[Callable[[App], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        """`tick_every`: the detector's pace in seconds (default: each wall-clock minute);
        `background`: more work, started with the rest and cancelled at stop (the demo's
        replay)."""
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
        self._jobs = tuple(background)
        self.tick_every = tick_every
        self._build_chat(settings)
        self.routes = Routes.default(
            settings.slack_channel if self.slack else None,
            settings.telegram_chat_ids if self.telegram else (),
            console=self.console is not None,
            rules=settings.routes,
        )
        self.watch = FeedWatch(
            core.store,
            core.clock,
            Engine(DetectorConfig(tz=settings.timezone)),  # the shift clock, in every sentence
            after_warm=self._settle,
        )
        self.gc_frozen = False  # run_server keeps the heap out of full collections (gc.freeze)
        self.delivery = DeliveryWorker(
            store=core.store,
            clock=core.clock,
            notifiers=self._notifiers(),
            render=Renderer(
                store=core.store,
                lang=settings.lang,
                tz=settings.timezone,
                can_silence=core.dispatcher.context.alertmanager is not None,
                oncall=settings.oncall,
                avg_ticket=settings.avg_ticket,
                currency=settings.currency,
            ),
            metrics=core.metrics,
            routes=self.routes,
            correlation=Correlation(
                labels=settings.correlation_labels,
                window=settings.correlation_window,
                feed_service=settings.feed_service,
                escalate_after=settings.escalate_after,
            ),
            extra_destinations=settings.escalation,
            holder=instance_id(settings.port),
        )
        core.on_handled = self.delivery.poke
        core.announce[:] = self.routes.severity("critical")
        self.reports = ShiftReports(
            core.dispatcher.context,
            self._send_report,
            briefing_cron=settings.briefing_cron,
            handoff_cron=settings.handoff_cron,
        )
        self.leader = Leader(
            core.store,
            core.clock,
            ttl=timedelta(seconds=settings.leader_lease_seconds),
            on_elected=self._elected,
            on_deposed=self._deposed,
        )
        self.scheduler = Scheduler(
            jobs(
                settings,
                JobParts(
                    reports=self.reports,
                    detector_tick=self._detector_tick,
                    retention=Retention(core.store, core.clock, settings.retention_days).run,
                    deadman_checks=(self._check_reports_delivered, self._check_watchdog),
                    escalation=self._escalate,
                ),
            ),
            settings.timezone,
            self.leader,
        )
        core.metrics.gauge(
            "nightshift_notifications_pending",
            "Messages waiting: outbox deliveries and incident cards due.",
            lambda: float(
                core.store.outbox_counts().get("pending", 0)
                + core.store.card_counts().get("due", 0)
            ),
        )

    def _notifiers(self) -> dict[str, Notifier]:
        notifiers: dict[str, Notifier] = {}
        if self.console is not None:
            notifiers["console"] = ConsoleNotifier(self.console)
        if self.telegram is not None:
            notifiers["telegram"] = TelegramNotifier(self.telegram)
        if self.slack is not None:
            notifiers["slack"] = SlackNotifier(self.slack)
        return notifiers

    def _build_chat(self, settings: Settings) -> None:
        """The chat platforms whose tokens are set, each with its routes and lifecycle."""
        commands = menu(settings.lang)
        # The SDKs load only when their platform is configured: `ask` and `ingest` start fast.
        if settings.telegram_bot_token:
            # python-telegram-bot 22 hands out durations (retry_after) as timedeltas only when
            # told to, and warns at every one otherwise; bot/telegram.py reads both.
            os.environ.setdefault("PTB_TIMEDELTA", "1")
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
        if self.telegram is not None and adapter is self.telegram:
            # Telegram polls only while this replica leads (see `_elected`).
            self._startup.append(partial(self.telegram.start, poll=False))
        else:
            self._startup.append(adapter.start)
        self._shutdown.append(adapter.stop)

    async def _elected(self) -> None:
        """This replica leads: it polls Telegram and catches up on shift reports."""
        if self.telegram is not None:
            await self.telegram.start_polling()
        await self.reports.catch_up()

    async def _deposed(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop_polling()

    async def on_alerts(self, changes: list[AlertChange]) -> None:
        """Alert changes were stored with their notifications: the worker should look now."""
        self.delivery.poke()

    def intake(self) -> Intake:
        settings = self.core.settings
        return Intake(
            store=self.core.store,
            clock=self.core.clock,
            metrics=self.core.metrics,
            token=settings.webhook_token.value if settings.webhook_token else None,
            tz=settings.timezone,
            max_body=settings.max_body_bytes,
            dimensions=settings.dimensions,
            slice_top=settings.slice_top,
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

    async def _send_report(self, reply: Reply, kind: str, key: str) -> None:
        """A briefing, handoff or report alert into the outbox, once per key, to every chat."""
        await asyncio.to_thread(
            self.core.store.enqueue,
            subject_kind="reply",
            subject=key,
            event=kind,
            severity="critical" if kind == "alert" else "info",
            destinations=self.routes.severity("critical"),
            now=self.core.clock.now(),
            body=body_from_reply(reply),
            once=True,
        )
        self.delivery.poke()

    async def _check_reports_delivered(self) -> None:
        async def undelivered(key: str) -> list[str]:
            missing = await asyncio.to_thread(self.core.store.undelivered, "reply", key)
            return sorted({d.partition(":")[0] for d in missing})

        await self.reports.check_delivery(undelivered)

    async def _detector_tick(self) -> None:
        """Judge the closed minutes; what is critical and new goes to the outbox."""
        changed = await asyncio.to_thread(self.watch.tick)
        self.core.metrics.inc("nightshift_detector_runs_total", "Detector ticks.")
        if changed:
            self.delivery.poke()

    async def _check_watchdog(self) -> None:
        if await asyncio.to_thread(self.watch.check_watchdog):
            self.delivery.poke()

    async def _escalate(self) -> None:
        """Critical incidents nobody acknowledged in time are told again, louder."""
        settings = self.core.settings
        escalated = await asyncio.to_thread(
            self.core.store.escalate_due,
            self.core.clock.now(),
            settings.escalate_after,
            3,
            settings.escalation or None,
        )
        if escalated:
            log.warning("incidents escalated: %s", ", ".join(f"#{i}" for i in escalated))
            self.delivery.poke()

    async def _fast_ticks(self, every: float) -> None:
        """`demo`: the detector on a simulated clock, every simulated minute."""
        while True:
            await asyncio.sleep(every)
            try:
                await self._detector_tick()
            except Exception:
                log.exception("detector tick failed")

    async def start(self) -> None:
        await self._release_own_leases()
        for step in self._startup:
            await step()
        for job in self._jobs:
            task = asyncio.create_task(job(self))
            task.add_done_callback(_log_failure)
            self._background.append(task)
        await self.leader.start()
        await self.scheduler.start()
        if self.tick_every is not None:
            self._background.append(asyncio.create_task(self._fast_ticks(self.tick_every)))
        self._background.append(asyncio.create_task(self.delivery.run(), name="delivery"))
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
        await self.scheduler.stop()
        await self.delivery.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.leader.stop()
        await self.core.aclose()
        self.core.close()  # the store last, once nothing is left to use it

    async def _release_own_leases(self) -> None:
        """Leases a previous run held (killed mid-send) are let go rather than waited out.

        One process per SQLite file: every lease left was this process's. On PostgreSQL only
        this instance's (`instance_id`), and only if its port is free: a live process on it
        would be this instance still running, and its leases its own.
        """
        store, settings = self.core.store, self.core.settings
        if store.dialect == "sqlite":
            holder = None
        elif _port_free(settings.host, settings.port):
            holder = self.delivery.holder
        else:
            log.warning("%s:%d is in use: leases left as they are", settings.host, settings.port)
            return
        released = await asyncio.to_thread(store.release_claims, holder)
        if released:
            log.info("released %d cards and deliveries a previous run had claimed", released)

    def run_server(self) -> None:
        """Serve HTTP on the configured address until SIGTERM/SIGINT (or `sair` on the console)."""
        import uvicorn

        settings = self.core.settings
        config = uvicorn.Config(
            self.asgi(),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        self.on_console_exit = lambda: setattr(server, "should_exit", True)
        # The cyclic collector was the webhooks' p99: full sweeps of a 200 MB heap. What is
        # loaded by now (modules, settings, the app) lives as long as the process, so it moves
        # out of the collector's sight (gc.freeze), and young collections run every 50,000
        # allocations rather than 700 (reference counting still frees all but cycles at once).
        # 32 senders: p99 135 → 55 ms, 690 → 900 payloads/s (bench/NOTES.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        self.gc_frozen = True
        # What a request frees stays for the next one (bot/watch.py): a 10,000-row JSON batch
        # took 2,000 page faults, 350 now; POST of it 56-60 → 46-52 ms. Buffers over 2 MiB,
        # as the warm-up's largest frames, still go back whole when freed: idle memory with
        # the 90-day store is unchanged (243/248 MB, docs/benchmarks.md §6).
        keep_freed_memory()
        # The store's writer threads (group commit, the correlator's write) hold SQLite's write
        # lock while they wait for the interpreter after each statement, up to the switch
        # interval (5 ms) when the event loop is busy: at 1 ms the webhooks behind them wait
        # less (32 senders, p99 33 → 30 ms on SQLite, 32 → 28 on PostgreSQL, bench/NOTES.md).
        sys.setswitchinterval(0.001)
        # Server.run picks uvloop and httptools when installed (they are dependencies): the
        # HTTP stack then takes 0.15 ms of CPU a request instead of 0.38 (docs/benchmarks.md §2).
        server.run()

    def _settle(self) -> None:
        """After the detector's warm-up: its freed memory back to the OS and, in `serve`, what
        it loaded for good (scikit-learn and SciPy, ~500k objects) frozen as start-up's was; a
        full collection would otherwise sweep them, a 40 ms pause for every request in flight."""
        release_freed_memory()
        if self.gc_frozen:
            gc.freeze()

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[*routes(self.intake()), *self._extra_routes],
            lifespan=self.lifespan,
            exception_handlers=json_error_handlers(),
        )


def _port_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port yet (uvicorn binds it after start-up)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
