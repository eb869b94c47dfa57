"""Figure 4: chat commands on a store holding 90 days x 1440 minutes x 7 statuses."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from bench.load import percentile
from bench.report import Figure, Goal, missing
from bot.app import Core, build_core
from bot.settings import Settings
from skills.core import Invocation
from storage.store import open_store

log = logging.getLogger(__name__)

SECTION = 4
TEXT_GOAL = Goal("value", "<=", 50, "ms")


@dataclass(frozen=True, slots=True)
class Command:
    text: str
    skill: str  # the skill the router must pick, else the command is "not built yet"
    goal: Goal
    runs: int


COMMANDS = (
    Command("status", "status", TEXT_GOAL, 40),
    Command("alertas", "alertas", TEXT_GOAL, 40),
    Command("anomalias 24h", "anomalias", TEXT_GOAL, 40),
    Command("metricas", "metricas", TEXT_GOAL, 40),
    Command("briefing", "briefing", Goal("value", "<=", 200, "ms"), 20),
    Command("grafico 24h", "grafico", Goal("value", "<=", 500, "ms"), 10),
)
WARMUP = 2


@dataclass(frozen=True, slots=True)
class PinnedClock:
    """The bench's clock: just after the last minute of the generated history."""

    at: datetime

    def now(self) -> datetime:
        return self.at


def _core(url: str, now: datetime) -> Core:
    settings = Settings(database_url=url, admins=("console:*",))
    return build_core(settings, clock=PinnedClock(now), store=open_store(url))


async def _timings(core: Core, text: str, runs: int) -> tuple[list[float], str]:
    """Seconds per run of one command through the dispatcher, and its last outcome."""
    invocation = Invocation(platform="console", user_id="bench", text=text, chat_id="console")
    outcome = "ok"
    took: list[float] = []
    for i in range(WARMUP + runs):
        started = time.perf_counter()
        reply = await core.handle(invocation)
        if i >= WARMUP:
            took.append(time.perf_counter() - started)
        outcome = reply.outcome
    return took, outcome


def measure(history_url: str, empty_url: str, store: str, now: datetime) -> list[Figure]:
    """p50 and p95 of each command on the 90-day store, beside the same on an empty store."""
    full, empty = _core(history_url, now), _core(empty_url, now)
    figures: list[Figure] = []
    try:
        for command in COMMANDS:
            match = full.dispatcher.router.match(command.text)
            name = f"`{command.text}`"
            if match is None or match.skill.name != command.skill:
                figures.append(
                    missing(SECTION, f"{name} p95", store, "not built yet", command.goal)
                )
                continue
            log.info("  %s: %s x %d", store, command.text, command.runs)
            took, outcome = asyncio.run(_timings(full, command.text, command.runs))
            base, _ = asyncio.run(_timings(empty, command.text, command.runs))
            note = "" if outcome == "ok" else f"the reply's outcome was {outcome!r}"
            figures.append(
                Figure(
                    SECTION,
                    f"{name} p50",
                    store,
                    percentile(took, 50) * 1000,
                    "ms",
                    percentile(base, 50) * 1000,
                    "same command, empty store",
                )
            )
            figures.append(
                Figure(
                    SECTION,
                    f"{name} p95 ({command.runs} runs)",
                    store,
                    percentile(took, 95) * 1000,
                    "ms",
                    percentile(base, 95) * 1000,
                    "same command, empty store",
                    command.goal,
                    note,
                )
            )
    finally:
        full.close()
        empty.close()
    return figures
