"""Figures 2 and 3: Alertmanager webhooks under 32 senders, and an alert's way to the chats."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import data
from bench.load import Job, LoadResult, percentile, run_load
from bench.report import Figure, Goal, missing
from bench.servers import TOKEN, serve
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

log = logging.getLogger(__name__)

WEBHOOK_SECTION, CHAT_SECTION = 2, 3
SENDERS = 32
PAYLOADS, WARMUP = 4_000, 200
RATE_GOAL = Goal("value", ">=", 1_000, "payloads/s")
P99_GOAL = Goal("value", "<=", 50, "ms")
CHAT_GOAL = Goal("value", "<=", 200, "ms")
CHAT_ALERTS = 20
CHAT_SPACING = 1.2  # seconds between alerts
# A chat "has the alert" when the fake server gets a new message or an edit of a digest.
TELEGRAM_SENDS = ("sendMessage", "editMessageText")
SLACK_SENDS = ("chat.postMessage", "chat.update")
CHAT_WAIT = 10.0  # seconds an alert may take before delivery is judged missing


def webhook_job(url: str, token: str | None) -> Job:
    return Job(
        url=url,
        bodies=[data.alert_payload(i) for i in range(WARMUP + PAYLOADS)],
        content_type="application/json",
        concurrency=SENDERS,
        warmup=WARMUP,
        token=token,
    )


def bare_webhooks(bare_url: str, workdir: Path) -> LoadResult:
    """The same payloads, senders and client against the bare endpoint."""
    return run_load(webhook_job(f"{bare_url}/webhooks/alertmanager", None), workdir)


def measure_webhooks(
    database_url: str, store: str, workdir: Path, bare: LoadResult
) -> list[Figure]:
    with serve(database_url, workdir) as server:
        result = run_load(webhook_job(f"{server.url}/webhooks/alertmanager", TOKEN), workdir)
    # On a shared VM the hypervisor's steal is the noise these figures carry: shown beside them.
    steal = f"CPU steal {result.steal:.1%} during the run (bare: {bare.steal:.1%})"
    note = f"{result.failures} answers not 200; {steal}" if result.failures else steal
    name = f"{SENDERS} concurrent senders, {PAYLOADS:,} payloads of 1–3 alerts"
    return [
        Figure(
            WEBHOOK_SECTION,
            f"throughput, {name}",
            store,
            result.per_second,
            "payloads/s",
            bare.per_second,
            "bare Starlette/uvicorn endpoint",
            RATE_GOAL,
            note,
        ),
        Figure(
            WEBHOOK_SECTION,
            "answer latency p50",
            store,
            result.percentile_ms(50),
            "ms",
            bare.percentile_ms(50),
            "bare endpoint",
        ),
        Figure(
            WEBHOOK_SECTION,
            "answer latency p99",
            store,
            result.percentile_ms(99),
            "ms",
            bare.percentile_ms(99),
            "bare endpoint",
            P99_GOAL,
            steal,
        ),
        Figure(
            WEBHOOK_SECTION,
            "the load generator's own CPU time per payload (it shares the machine's cores)",
            store,
            result.client_cpu_ms,
            "ms",
            bare.client_cpu_ms,
            "against the bare endpoint",
        ),
    ]


# ------------------------------------------------------------------------ alert to chat


@dataclass(frozen=True, slots=True)
class ChatTimes:
    answer: list[float]
    telegram: list[float]
    slack: list[float]


def delivery_built() -> bool:
    """Alert delivery (issue 5) lives in bot/delivery.py; without it nothing reaches a chat."""
    return importlib.util.find_spec("bot.delivery") is not None


async def _alerts_to_chat(database_url: str, workdir: Path) -> ChatTimes | str:
    chat_id = 4242
    channel = "C0BENCH"
    async with FakeTelegram() as telegram, FakeSlack() as slack:
        env = {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "NIGHTSHIFT_TELEGRAM_API_URL": telegram.api_url,
            "NIGHTSHIFT_TELEGRAM_CHAT_IDS": str(chat_id),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "bench-signing-secret",
            "NIGHTSHIFT_SLACK_API_URL": slack.api_url,
            "NIGHTSHIFT_SLACK_CHANNEL": channel,
        }
        # serve() blocks while waiting for /healthz; the fakes must keep answering meanwhile.
        ctx = serve(database_url, workdir, env)
        server = await asyncio.to_thread(ctx.__enter__)
        try:
            # A fresh `serve` may owe a (late) briefing: let it go out and its pacing slot pass,
            # so what is measured is an alert that is not rate limited.
            await asyncio.sleep(3 * CHAT_SPACING)
            times = ChatTimes([], [], [])
            async with httpx.AsyncClient(
                timeout=10, headers={"authorization": f"Bearer {TOKEN}"}
            ) as client:
                for i in range(CHAT_ALERTS + 2):
                    tg_before = _told(telegram, TELEGRAM_SENDS)
                    sl_before = _told(slack, SLACK_SENDS)
                    body = data.critical_alert(f"BenchChat{i:03d}", f"c{i:015x}")
                    started = time.perf_counter()
                    answer = await client.post(
                        f"{server.url}/webhooks/alertmanager",
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    if answer.status_code != 200:
                        return f"webhook answered {answer.status_code}"
                    answered = time.perf_counter() - started
                    got = await _arrivals(
                        started,
                        (lambda: _told(telegram, TELEGRAM_SENDS), tg_before),
                        (lambda: _told(slack, SLACK_SENDS), sl_before),
                    )
                    if got is None:
                        return f"no message reached the fake chats within {CHAT_WAIT:.0f} s"
                    if i >= 2:  # the first two warm the connections up
                        times.answer.append(answered)
                        times.telegram.append(got[0])
                        times.slack.append(got[1])
                    # Delivery paces each chat (1 message/s) and folds quick bursts into one
                    # edited digest: alerts go one at a time, spaced past the pacing.
                    await asyncio.sleep(max(0.0, started + CHAT_SPACING - time.perf_counter()))
        finally:
            await asyncio.to_thread(ctx.__exit__, None, None, None)
    return times


def _told(fake: FakeTelegram | FakeSlack, methods: tuple[str, ...]) -> int:
    return sum(len(fake.calls_to(m)) for m in methods)


async def _arrivals(
    started: float, *counters: tuple[Callable[[], int], int]
) -> tuple[float, ...] | None:
    """Seconds from `started` until each counter passes its start (polled every millisecond)."""
    seen: list[float | None] = [None] * len(counters)
    while time.perf_counter() - started < CHAT_WAIT:
        for k, (count, before) in enumerate(counters):
            if seen[k] is None and count() > before:
                seen[k] = time.perf_counter() - started
        if all(s is not None for s in seen):
            return tuple(s for s in seen if s is not None)
        await asyncio.sleep(0.001)
    return None


def measure_chat(database_url: str, store: str, workdir: Path) -> list[Figure]:
    names = (
        "webhook → fake Telegram (sendMessage, or the edit of a storm digest)",
        "webhook → fake Slack (chat.postMessage, or chat.update of a digest)",
    )
    if not delivery_built():
        reason = "not measured yet: alert delivery (issue 5, bot/delivery.py) is not built"
        return [missing(CHAT_SECTION, f"{n}, p99", store, reason, CHAT_GOAL) for n in names]
    outcome = asyncio.run(_alerts_to_chat(database_url, workdir))
    if isinstance(outcome, str):
        return [missing(CHAT_SECTION, f"{n}, p99", store, outcome, CHAT_GOAL) for n in names]
    figures = []
    for name, times in zip(names, (outcome.telegram, outcome.slack), strict=True):
        figures.append(
            Figure(CHAT_SECTION, f"{name}, p50", store, percentile(times, 50) * 1000, "ms")
        )
        figures.append(
            Figure(
                CHAT_SECTION,
                f"{name}, p99 ({len(times)} alerts, one at a time)",
                store,
                percentile(times, 99) * 1000,
                "ms",
                percentile(outcome.answer, 99) * 1000,
                "the webhook's own 200 answer, p99",
                CHAT_GOAL,
            )
        )
    return figures
