"""`nightshift serve` as a real process: acknowledged means stored, even after kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from storage.store import open_store
from tests.conftest import DATA
from tests.payloads import body, webhook

TOKEN = "e2e-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, str]]]:
    port = _free_port()
    log = tmp_path / "serve.log"
    log_file = log.open("wb")
    env = {
        **os.environ,
        "NIGHTSHIFT_DATABASE_URL": database_url,
        "NIGHTSHIFT_PORT": str(port),
        "NIGHTSHIFT_WEBHOOK_TOKEN": TOKEN,
        "NIGHTSHIFT_CONFIG": str(tmp_path / "none.toml"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"serve did not answer /healthz: {log.read_text()!r}")
    yield url, process, env
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    log_file.close()


def test_kill_9_right_after_2xx_loses_nothing(
    server: tuple[str, subprocess.Popen[bytes], dict[str, str]], database_url: str
) -> None:
    url, process, env = server
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert (
        httpx.post(
            f"{url}/webhooks/alertmanager", content=body(webhook()), headers=auth
        ).status_code
        == 200
    )
    csv_body = (DATA / "transactions.csv").read_bytes()
    answer = httpx.post(
        f"{url}/transactions",
        content=csv_body,
        headers={**auth, "content-type": "text/csv"},
        timeout=60,
    )
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 25920
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    store = open_store(database_url)
    try:
        assert [a.alertname for a in store.alerts()] == ["PaymentsApiDown"]
        totals = store.totals_by_status(
            datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
        )
        assert sum(totals.values()) == 544_320
    finally:
        store.close()

    asked = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "alertas"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert asked.returncode == 0, asked.stderr
    assert "critical · PaymentsApiDown — payments-api is not answering · desde" in asked.stdout


def test_no_token_401_and_sigterm_stops_cleanly(
    server: tuple[str, subprocess.Popen[bytes], dict[str, str]], tmp_path: Path
) -> None:
    url, process, _ = server
    assert httpx.post(f"{url}/webhooks/alertmanager", content=body(webhook())).status_code == 401
    process.send_signal(signal.SIGTERM)
    # uvicorn runs the lifespan stop, then re-raises the signal, as service managers expect.
    assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
