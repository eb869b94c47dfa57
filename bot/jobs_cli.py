"""`nightshift jobs`: the scheduled jobs with their next run time on the shift clock."""

from __future__ import annotations

import argparse
from datetime import datetime

from bot.clock import SystemClock
from bot.jobs import jobs, next_runs
from bot.settings import Settings

EXIT_OK = 0


def render(settings: Settings, now: datetime | None = None) -> str:
    """The table `nightshift jobs` prints, at the given time (default now)."""
    now = now or SystemClock().now()
    tz = settings.timezone
    rows = next_runs(jobs(settings), now, tz)
    width = max(len(spec.id) for spec, _ in rows)
    lines = [f"time zone {tz} · now {now.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"]
    for spec, fire in rows:
        who = "" if spec.leader_only else "  (every replica)"
        lines.append(f"{spec.id.ljust(width)}  {fire:%Y-%m-%d %H:%M:%S %Z}  {spec.summary}{who}")
    return "\n".join(lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    print(render(args.settings))
    return EXIT_OK
