"""Figures 2 and 3: Alertmanager webhooks under 32 senders, and an alert's way to the chats."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
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
from bot.delivery import NEW_PER_MINUTE
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

log = logging.getLogger(__name__)

WEBHOOK_SECTION, CHAT_SECTION = 2, 3
SENDERS = 32
PAYLOADS, WARMUP = 4_000, 200
RATE_GOAL = Goal("value", ">=", 1_000, "payloads/s")
P99_GOAL = Goal("value", "<=", 50, "ms")
CHAT_GOAL = Goal("value", "<=", 5_000, "ms")  # issue 14: a new incident rings within 5 s
PREVIOUS_CHAT_GOAL_MS = 200
CHAT_ALERTS = 20
STORM = 300
CHAT_ID, CHANNEL = 4242, "C0BENCH"
# New incidents come no faster than the flood cap (NEW_PER_MINUTE a minute per chat), so each
# gets a message of its own rather than a place in the flood's roll-up.
CHAT_SPACING = 60.0 / (NEW_PER_MINUTE - 1) - 2.0  # 13 s
CHAT_WAIT = 10.0  # seconds a message may take before delivery is judged missing


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
    storm_edits: int  # edits of the storm's card while the tries ran


def delivery_built() -> bool:
    """Alert delivery (issue 5) lives in bot/delivery.py; without it nothing reaches a chat."""
    return importlib.util.find_spec("bot.delivery") is not None


def _storm(first: int, n: int) -> bytes:
    """`n` more alerts of the storm (one Alertmanager group, one alert name)."""
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "BenchStorm",
                "severity": "critical",
                "service": "bars",
                "instance": f"pay-{k}",
            },
            "annotations": {"summary": "bars are long"},
            "startsAt": "2025-07-14T14:52:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{0xBA000000 + k:016x}",
        }
        for k in range(first, first + n)
    ]
    return json.dumps(
        {
            "receiver": "nightshift",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": "BenchStorm"},
            "commonLabels": {"severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.local:9093",
            "version": "4",
            "groupKey": '{}:{alertname="BenchStorm"}',
        }
    ).encode()


async def _keep_storming(client: httpx.AsyncClient, url: str, stop: asyncio.Event) -> None:
    """The storm grows all along: 300 alerts at once, then 5 more every half second, so its
    card always has an edit due while the new criticals arrive."""
    headers = {"content-type": "application/json"}
    await client.post(url, content=_storm(0, STORM), headers=headers)
    first = STORM
    while not stop.is_set():
        await client.post(url, content=_storm(first, 5), headers=headers)
        first += 5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def _first_post(fake: FakeTelegram | FakeSlack, name: str) -> bool:
    """Whether a chat got a message of its own (not an edit, not a thread reply) naming it."""
    if isinstance(fake, FakeTelegram):
        return any(name in m.first_text for m in fake.posts(CHAT_ID))
    return any(name in m.text for m in fake.posted(CHANNEL) if m.thread_ts is None)


async def _new_criticals_in_a_storm(database_url: str, workdir: Path) -> ChatTimes | str:
    async with FakeTelegram() as telegram, FakeSlack() as slack:
        env = {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "NIGHTSHIFT_TELEGRAM_API_URL": telegram.api_url,
            "NIGHTSHIFT_TELEGRAM_CHAT_IDS": str(CHAT_ID),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "bench-signing-secret",
            "NIGHTSHIFT_SLACK_API_URL": slack.api_url,
            "NIGHTSHIFT_SLACK_CHANNEL": CHANNEL,
        }
        # serve() blocks while waiting for /healthz; the fakes must keep answering meanwhile.
        ctx = serve(database_url, workdir, env)
        server = await asyncio.to_thread(ctx.__enter__)
        stop = asyncio.Event()
        try:
            # A fresh `serve` may owe a (late) briefing: let it go out first.
            await asyncio.sleep(3.0)
            url = f"{server.url}/webhooks/alertmanager"
            async with httpx.AsyncClient(
                timeout=10, headers={"authorization": f"Bearer {TOKEN}"}
            ) as client:
                storming = asyncio.create_task(_keep_storming(client, url, stop))
                try:
                    if not await _arrived(lambda: _first_post(telegram, "BenchStorm")):
                        return f"the storm's card did not reach Telegram in {CHAT_WAIT:.0f} s"
                    # Past the minute the storm's card counts in, new incidents come no faster
                    # than NEW_PER_MINUTE a minute, each gets a message of its own.
                    await asyncio.sleep(CHAT_SPACING)
                    edits_before = len(telegram.calls_to("editMessageText"))
                    times = ChatTimes([], [], [], 0)
                    for i in range(CHAT_ALERTS + 1):
                        name = f"BenchNewCritical{i:03d}"
                        body = data.critical_alert(name, f"c{i:015x}", service=f"svc-{i}")
                        started = time.perf_counter()
                        answer = await client.post(
                            url, content=body, headers={"content-type": "application/json"}
                        )
                        if answer.status_code != 200:
                            return f"webhook answered {answer.status_code}"
                        answered = time.perf_counter() - started
                        got = await _arrivals(
                            started,
                            lambda n=name: _first_post(telegram, n),  # type: ignore[misc]
                            lambda n=name: _first_post(slack, n),  # type: ignore[misc]
                        )
                        if got is None:
                            return f"{name} had no message of its own within {CHAT_WAIT:.0f} s"
                        if i >= 1:  # the first warms the connections up
                            times.answer.append(answered)
                            times.telegram.append(got[0])
                            times.slack.append(got[1])
                        await asyncio.sleep(max(0.0, started + CHAT_SPACING - time.perf_counter()))
                    edits = len(telegram.calls_to("editMessageText")) - edits_before
                finally:
                    stop.set()
                    await storming
        finally:
            await asyncio.to_thread(ctx.__exit__, None, None, None)
    return ChatTimes(times.answer, times.telegram, times.slack, edits)


async def _arrived(check: Callable[[], bool]) -> bool:
    started = time.perf_counter()
    while time.perf_counter() - started < CHAT_WAIT:
        if check():
            return True
        await asyncio.sleep(0.01)
    return False


async def _arrivals(started: float, *checks: Callable[[], bool]) -> tuple[float, ...] | None:
    """Seconds from `started` until each check holds (polled every millisecond)."""
    seen: list[float | None] = [None] * len(checks)
    while time.perf_counter() - started < CHAT_WAIT:
        for k, check in enumerate(checks):
            if seen[k] is None and check():
                seen[k] = time.perf_counter() - started
        if all(s is not None for s in seen):
            return tuple(s for s in seen if s is not None)
        await asyncio.sleep(0.001)
    return None


def measure_chat(database_url: str, store: str, workdir: Path) -> list[Figure]:
    names = (
        "new critical during a storm → its own new Telegram message (sendMessage)",
        "new critical during a storm → its own new Slack message (chat.postMessage)",
    )
    if not delivery_built():
        reason = "not measured yet: alert delivery (issue 5, bot/delivery.py) is not built"
        return [missing(CHAT_SECTION, f"{n}, p99", store, reason, CHAT_GOAL) for n in names]
    outcome = asyncio.run(_new_criticals_in_a_storm(database_url, workdir))
    if isinstance(outcome, str):
        return [missing(CHAT_SECTION, f"{n}, p99", store, outcome, CHAT_GOAL) for n in names]
    note = (
        f"the storm's card was edited {outcome.storm_edits} times meanwhile "
        f"({STORM}+ alerts, growing); previous goal for one alert, no storm: "
        f"{PREVIOUS_CHAT_GOAL_MS} ms"
    )
    figures = []
    for name, times in zip(names, (outcome.telegram, outcome.slack), strict=True):
        figures.append(
            Figure(CHAT_SECTION, f"{name}, p50", store, percentile(times, 50) * 1000, "ms")
        )
        figures.append(
            Figure(
                CHAT_SECTION,
                f"{name}, p99 ({len(times)} tries, {CHAT_SPACING:.0f} s apart)",
                store,
                percentile(times, 99) * 1000,
                "ms",
                percentile(outcome.answer, 99) * 1000,
                "the webhook's own 200 answer, p99",
                CHAT_GOAL,
                note,
            )
        )
    return figures
