"""The processes under test: `python -m bot serve` and the bare Starlette baseline, on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TOKEN = "bench-webhook-token"  # noqa: S105 - a loopback-only benchmark token
READY_TIMEOUT = 60.0
_OWN_PREFIXES = ("NIGHTSHIFT_", "TELEGRAM_", "SLACK_", "ALERTMANAGER_")


class ServerError(RuntimeError):
    """A process under test did not start or answer."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without nightshift's own settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PTB_TIMEDELTA", "1")
    env.update(extra)
    return env


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


@dataclass
class Running:
    """A started server process: its URL, pid and how long it took to answer 200."""

    process: subprocess.Popen[bytes]
    url: str
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        return rss_kib(self.pid)[0] / 1024

    def peak_mib(self) -> float:
        return rss_kib(self.pid)[1] / 1024

    def wait_for_metric(self, name: str, within: float) -> bool:
        """Poll `/metrics` until the counter `name` is above zero; False when it never is."""
        deadline = time.monotonic() + within
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                for line in client.get(f"{self.url}/metrics").text.splitlines():
                    if line.startswith(name) and float(line.rsplit(" ", 1)[1]) > 0:
                        return True
                time.sleep(0.5)
        return False

    def settled_rss_mib(self, within: float = 8.0, still: float = 1.0) -> float:
        """RSS once it has stopped growing for `still` seconds (background warm-up done)."""
        deadline = time.monotonic() + within
        last = self.rss_mib()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.rss_mib()
            if abs(now - last) > 0.5:
                stable_since = time.monotonic()
                last = now
            elif time.monotonic() - stable_since >= still:
                break
        return self.rss_mib()


def _wait_ready(process: subprocess.Popen[bytes], url: str, started: float) -> float:
    deadline = started + READY_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise ServerError(f"{url}: process exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    raise ServerError(f"{url}: no 200 within {READY_TIMEOUT:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def _started(argv: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[Running]:
    with log.open("ab") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    try:
        ready = _wait_ready(process, health, started)
        yield Running(process, health.rsplit("/", 1)[0], ready)
    finally:
        _stop(process)


@contextlib.contextmanager
def serve(
    database_url: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[Running]:
    """`python -m bot serve` on a free loopback port, ready (`/healthz` 200) when yielded."""
    port = free_port()
    env = clean_env(
        {
            "NIGHTSHIFT_DATABASE_URL": database_url,
            "NIGHTSHIFT_HOST": HOST,
            "NIGHTSHIFT_PORT": str(port),
            "NIGHTSHIFT_WEBHOOK_TOKEN": TOKEN,
            "NIGHTSHIFT_CONFIG": str(workdir / "absent-nightshift.toml"),
            **(extra_env or {}),
        }
    )
    argv = [sys.executable, "-m", "bot", "serve"]
    with _started(argv, env, f"http://{HOST}:{port}/healthz", workdir / "serve.log") as running:
        yield running


@contextlib.contextmanager
def bare(workdir: Path) -> Iterator[Running]:
    """The baseline: a Starlette app on uvicorn answering 200 and nothing else."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare", HOST, str(port)]
    health = f"http://{HOST}:{port}/healthz"
    with _started(argv, clean_env({}), health, workdir / "bare.log") as running:
        yield running
