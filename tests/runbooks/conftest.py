"""Fixtures for the runbook tests: a settable clock, a recording audit log and spawner."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbooks.catalog import Catalog, load_catalog
from runbooks.executor import Executor, spawn_process
from runbooks.service import RunbookService

START = datetime(2026, 3, 14, 3, 0, tzinfo=UTC)


class SettableClock:
    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class AuditRow:
    actor: str
    action: str
    detail: dict[str, object]
    outcome: str
    at: datetime


@dataclass
class RecordingAudit:
    rows: list[AuditRow] = field(default_factory=list)

    def record_audit(
        self, actor: str, action: str, detail: Mapping[str, object], outcome: str, at: datetime
    ) -> None:
        self.rows.append(AuditRow(actor, action, dict(detail), outcome, at))

    def actions(self) -> list[tuple[str, str]]:
        return [(row.action, row.outcome) for row in self.rows]


@dataclass
class RecordingSpawner:
    """Records every argv handed to the OS; optionally runs a stand-in program instead."""

    argvs: list[tuple[str, ...]] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)
    stand_in: Sequence[str] | None = None

    async def __call__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path
    ) -> asyncio.subprocess.Process:
        self.argvs.append(tuple(argv))
        self.envs.append(dict(env))
        return await spawn_process(self.stand_in or argv, env, cwd)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def audit() -> RecordingAudit:
    return RecordingAudit()


@pytest.fixture
def spawner() -> RecordingSpawner:
    return RecordingSpawner()


@pytest.fixture
def write_runbook(tmp_path: Path) -> Callable[[str, str], Path]:
    folder = tmp_path / "library"
    folder.mkdir()

    def write(filename: str, text: str) -> Path:
        path = folder / filename
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_service(
    clock: SettableClock, audit: RecordingAudit, spawner: RecordingSpawner, tmp_path: Path
) -> Callable[..., RunbookService]:
    def make(catalog: Catalog | None = None, **executor_options: object) -> RunbookService:
        catalog = catalog if catalog is not None else load_catalog(tmp_path / "library")
        executor = Executor(
            clock.now,
            spawner=spawner,
            environ={},
            kill_grace=0.3,
            **executor_options,  # type: ignore[arg-type]
        )
        return RunbookService(catalog, executor, clock.now, audit)

    return make
