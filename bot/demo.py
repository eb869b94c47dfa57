"""`nightshift demo`: `serve` on a throwaway store, with a simulated night replayed into it.

Three days of normal traffic are loaded first (the detector's history), then a night with
injected incidents is posted to the bot's own `/transactions` minute by minute, on a clock that
runs `--speed` times faster than the wall clock. An Alertmanager-style alert fires and resolves
in the middle of it. Everything the bot pushes shows on the console (and on Slack/Telegram when
configured); every command works against the simulated time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bot.errors import CliError
from bot.settings import Settings
from storage.parsing import CountRow, FeedBatch
from storage.store import open_store

if TYPE_CHECKING:
    import pandas as pd

    from bot.app import App
    from detector.simulate import Label

DEMO_DB = Path("nightshift-demo.db")
HISTORY = timedelta(days=3)
NIGHT_INCIDENTS = ("failed_surge", "outage", "denied_surge")


class DemoClock:
    """Simulated time: stands at `start` until `run()`, then runs `speed` times faster than the
    wall clock."""

    def __init__(self, start: datetime, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._t0: float | None = None

    def run(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        if self._t0 is None:
            return self._start
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    async def wait_until(self, when: datetime) -> None:
        """Sleep (real time) until the simulated clock reaches `when`."""
        ahead = (when - self.now()).total_seconds()
        if ahead > 0:
            await asyncio.sleep(ahead / self._speed)


def _batch(frame: pd.DataFrame) -> FeedBatch:
    rows = zip(frame["minute"], frame["status"], frame["count"], strict=True)
    return FeedBatch(counts=tuple(CountRow(int(m.timestamp()), str(s), int(c)) for m, s, c in rows))


def _alert(status: str, starts: datetime, ends: datetime | None) -> dict[str, object]:
    end = (ends or datetime(1, 1, 1, tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PaymentsApiLatencyHigh"}',
        "status": status,
        "receiver": "nightshift",
        "externalURL": "http://alertmanager.demo:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "PaymentsApiLatencyHigh",
                    "severity": "critical",
                    "service": "payments-api",
                },
                "annotations": {
                    "summary": "p99 latency of payments-api above 2 s",
                    "runbook": "check-http",
                },
                "startsAt": starts.isoformat().replace("+00:00", "Z"),
                "endsAt": end,
                "generatorURL": "http://prometheus.demo:9090/graph",
                "fingerprint": "d3m0a1e7d3m0a1e7",
            }
        ],
    }


async def _replay(
    app: App, clock: DemoClock, night: FeedBatch, url: str, token: str | None, night_start: datetime
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    by_minute: dict[int, list[dict[str, object]]] = {}
    for row in night.counts:
        stamp = datetime.fromtimestamp(row.minute, UTC).isoformat()
        by_minute.setdefault(row.minute, []).append(
            {"timestamp": stamp, "status": row.status, "count": row.count}
        )
    fire_at, resolve_at = night_start + timedelta(hours=2), night_start + timedelta(hours=3)
    sent_alert = resolved_alert = False
    async with httpx.AsyncClient(timeout=30) as client:
        # The night starts once the bot answers: the replay begins while it is still starting.
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise CliError(f"demo: the bot did not answer at {url}/healthz")
        clock.run()
        try:
            for minute in sorted(by_minute):
                await clock.wait_until(datetime.fromtimestamp(minute + 60, UTC))
                await client.post(f"{url}/transactions", json=by_minute[minute], headers=headers)
                now = clock.now()
                if not sent_alert and now >= fire_at:
                    sent_alert = True
                    body = json.dumps(_alert("firing", fire_at, None))
                    await client.post(f"{url}/webhooks/alertmanager", content=body, headers=headers)
                if not resolved_alert and now >= resolve_at:
                    resolved_alert = True
                    body = json.dumps(_alert("resolved", fire_at, resolve_at))
                    await client.post(f"{url}/webhooks/alertmanager", content=body, headers=headers)
        except httpx.TransportError:
            return  # the bot is stopping: the night ends with it
    if app.console is not None:
        app.console.print("demo: a noite simulada terminou / the simulated night is over")


def _night(hours: int, seed: int, start: datetime) -> tuple[pd.DataFrame, list[Label]]:
    """The simulated night: the first seed after `seed` whose incidents all fit in it."""
    from detector import DetectorError
    from detector.simulate import simulate

    for attempt in range(seed + 1, seed + 50):
        try:
            return simulate(hours=hours, seed=attempt, incidents=NIGHT_INCIDENTS, start=start)
        except DetectorError:
            continue
    raise CliError(f"--hours: {hours} hours are too few for the demo's incidents (try 10)")


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.app import App, build_core
    from detector.simulate import simulate

    settings: Settings = args.settings
    if args.speed <= 0 or args.speed > 3600:
        raise CliError("--speed: must be above 0 and at most 3600")
    tz = settings.timezone
    local_now = datetime.now(tz)
    # From the evening peak into the night: an incident needs traffic to be seen at all.
    night_start = (
        (local_now - timedelta(days=1))
        .replace(hour=16, minute=0, second=0, microsecond=0)
        .astimezone(UTC)
    )
    history, _ = simulate(
        hours=int(HISTORY.total_seconds() // 3600),
        seed=args.seed,
        incidents=[],
        start=night_start - HISTORY,
    )
    night, labels = _night(args.hours, args.seed, night_start)
    for path in (DEMO_DB, Path(f"{DEMO_DB}-wal"), Path(f"{DEMO_DB}-shm")):
        path.unlink(missing_ok=True)
    demo_settings = dataclasses.replace(settings, database_url=f"sqlite:///{DEMO_DB}")
    store = open_store(demo_settings.database_url)
    store.ingest(_batch(history))
    clock = DemoClock(night_start, args.speed)
    url = f"http://{settings.host}:{settings.port}"
    token = settings.webhook_token.value if settings.webhook_token else None
    night_batch = _batch(night)

    async def replay(app: App) -> None:
        await _replay(app, clock, night_batch, url, token, night_start)

    app = App(
        build_core(demo_settings, clock, store), tick_every=60.0 / args.speed, background=[replay]
    )
    print(
        f"demo: {args.hours}h of night from {night_start.astimezone(tz):%d/%m %H:%M} at "
        f"{args.speed:g}x; incidents:",
        file=sys.stderr,
    )
    for label in labels:
        print(
            f"  {label.kind}: {label.start.astimezone(tz):%H:%M}–{label.end.astimezone(tz):%H:%M}",
            file=sys.stderr,
        )
    app.run_server()  # the store closes with the app
    return 0
