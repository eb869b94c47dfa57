"""Shared fixtures: a fixed clock, a store on SQLite and on PostgreSQL, the bot's core."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import Core, build_core
from bot.settings import Settings
from storage.store import Store, open_store
from tests.fakes.clock import FixedClock

pytest_plugins = ["tests.realservers"]


def pytest_configure(config: pytest.Config) -> None:
    # python-telegram-bot 22 warns on each retry_after unless told to use timedeltas (serve does).
    os.environ.setdefault("PTB_TIMEDELTA", "1")


DATA = Path(__file__).parent / "data"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2025, 7, 14, 15, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database on each backend; PostgreSQL ones skip without a server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nightshift.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only, for tests about behaviour that does not depend on the backend."""
    opened = open_store(f"sqlite:///{tmp_path / 'nightshift.db'}")
    yield opened
    opened.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(operators=("telegram:100", "slack:UOPS"), admins=("console:*", "telegram:1"))


@pytest.fixture
def core(settings: Settings, store: Store, clock: FixedClock) -> Core:
    return build_core(settings, clock=clock, store=store)
