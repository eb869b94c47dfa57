"""The machine a benchmark ran on: CPU, memory, versions, commit, date."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.postgres import server_version
from bench.report import Machine

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "pandas",
    "numpy",
    "psycopg",
    "uvloop",
    "httptools",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + (" (with uncommitted changes)" if dirty else "")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def describe(postgres_url: str | None, started: datetime) -> Machine:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    if postgres_url:
        try:
            pg = f"{server_version(postgres_url)} (same host, 127.0.0.1)"
        except Exception as error:  # shown in the report, never raised
            pg = f"unreachable ({type(error).__name__})"
    else:
        pg = "not measured (no server)"
    return Machine(
        (
            ("date", started.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("commit", _commit()),
            ("CPU", f"{_cpu_model()}, nproc {os.cpu_count()}"),
            ("memory", _memory()),
            ("load average at start", " ".join(f"{x:.2f}" for x in load)),
            ("OS", f"{platform.system()} {platform.release()}"),
            ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
            ("SQLite", sqlite3.sqlite_version),
            ("PostgreSQL", pg),
            ("packages", ", ".join(f"{p} {_version(p)}" for p in PACKAGES)),
        )
    )
