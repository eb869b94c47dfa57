"""Pytest plugin owning the real servers tests use: PostgreSQL databases and Alertmanager processes.

Fixtures:

- ``postgres_url`` (session): the SQLAlchemy URL in ``NIGHTSHIFT_TEST_POSTGRES_URL``.
- ``fresh_postgres_url`` (function): a new empty database on that server, dropped afterwards.
- ``alertmanager`` (function): a factory starting the real Alertmanager binary
  (``NIGHTSHIFT_TEST_ALERTMANAGER``, else ``prometheus-alertmanager``/``alertmanager`` on PATH)
  with a webhook receiver pointing where the test says; every instance stops at teardown.

Without the server the tests skip, except under ``CI=true`` where they fail: CI must not go
green by skipping them. ``.ci/run`` sets both variables.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy.engine import URL, make_url

POSTGRES_URL_VAR = "NIGHTSHIFT_TEST_POSTGRES_URL"
ALERTMANAGER_VAR = "NIGHTSHIFT_TEST_ALERTMANAGER"
ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")
READY_TIMEOUT = 20.0
START_ATTEMPTS = 3


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI=true where a missing real server is a broken CI setup."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (required when CI=true)", pytrace=False)
    pytest.skip(reason)


def connect(url: URL, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=10,
        autocommit=autocommit,
    )


def _url_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL database (checked reachable once per session)."""
    raw = os.environ.get(POSTGRES_URL_VAR, "").strip()
    if not raw:
        _unavailable(f"{POSTGRES_URL_VAR} is not set (no PostgreSQL server for tests)")
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        pytest.fail(f"{POSTGRES_URL_VAR} is not a postgresql URL: {url!r}", pytrace=False)
    try:
        with connect(url) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        # A configured but dead server is a failure, never a skip.
        reason = " ".join(str(exc).split())
        pytest.fail(f"{POSTGRES_URL_VAR} ({url!r}) is unreachable: {reason}", pytrace=False)
    return _url_string(url)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """URL of a new, empty database on the test server, dropped after the test."""
    base = make_url(postgres_url)
    name = f"nightshift_test_{secrets.token_hex(6)}"
    with connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _url_string(base.set(database=name))
    finally:
        with connect(base, autocommit=True) as admin:
            # Engines or pools the test forgot to dispose must not keep the database alive.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            force = sql.SQL(" WITH (FORCE)") if admin.info.server_version >= 130000 else sql.SQL("")
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force)
            )


@dataclass(frozen=True, slots=True)
class AlertmanagerServer:
    """A running Alertmanager: ``url`` is its base URL (``http://127.0.0.1:PORT``)."""

    url: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def stop(self) -> None:
        """Stop it before teardown (to test what happens when Alertmanager is down)."""
        _stop(self.process)


class AlertmanagerFactory(Protocol):
    """Starts an Alertmanager whose only receiver is a webhook to ``webhook_url``."""

    def __call__(
        self,
        webhook_url: str,
        bearer_token: str | None = None,
        *,
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        group_by: tuple[str, ...] = ("alertname",),
    ) -> AlertmanagerServer: ...


def _alertmanager_binary() -> str:
    configured = os.environ.get(ALERTMANAGER_VAR, "").strip()
    if configured:
        if not os.access(configured, os.X_OK):
            _unavailable(f"{ALERTMANAGER_VAR}={configured} is not an executable file")
        return configured
    for name in ALERTMANAGER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    _unavailable(f"{ALERTMANAGER_VAR} is not set and no alertmanager binary is on PATH")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alertmanager_config(
    webhook_url: str,
    bearer_token: str | None,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
    group_by: tuple[str, ...],
) -> dict[str, object]:
    webhook: dict[str, object] = {"url": webhook_url, "send_resolved": True}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    return {
        "route": {
            "receiver": "nightshift",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "nightshift", "webhook_configs": [webhook]}],
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/-/ready").status_code == 200:
                    return True
            time.sleep(0.05)
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerFactory]:
    """Factory starting real Alertmanager processes on free loopback ports; all stop at teardown."""
    binary = _alertmanager_binary()
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        webhook_url: str,
        bearer_token: str | None = None,
        *,
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        group_by: tuple[str, ...] = ("alertname",),
    ) -> AlertmanagerServer:
        home = tmp_path_factory.mktemp("alertmanager")
        config_path = home / "alertmanager.yml"
        config = _alertmanager_config(
            webhook_url, bearer_token, group_wait, group_interval, repeat_interval, group_by
        )
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        log_path = home / "alertmanager.log"
        # A port found free may be taken before Alertmanager binds it: retry on another one.
        for _ in range(START_ATTEMPTS):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config_path}",
                        f"--storage.path={home / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        f"--web.external-url={url}",
                        "--cluster.listen-address=",
                        "--log.level=info",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=home,
                )
            processes.append(process)
            if _wait_ready(process, url):
                return AlertmanagerServer(url, config_path, log_path, process)
            _stop(process)
        pytest.fail(
            f"Alertmanager ({binary}) did not become ready; last log lines:\n{_tail(log_path)}",
            pytrace=False,
        )

    yield start
    for process in processes:
        _stop(process)
