"""The service: who may run what, confirmation codes, dry runs, one run at a time, the audit."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from runbooks.catalog import Plan, load_catalog
from runbooks.errors import RunbookBusy, RunbookDenied, RunbookError, RunbookNotFound
from runbooks.executor import RunEvent, RunResult
from runbooks.service import PendingConfirmation, RunbookService

from .conftest import START, RecordingAudit, RecordingSpawner, SettableClock

MakeService = Callable[..., RunbookService]
ADMIN = "telegram:1"
OPERATOR = "slack:U2"
STRANGER = "telegram:666"

LIBRARY = {
    "safe.yaml": """\
        name: safe
        params:
          target: [a, b]
        steps:
          - {name: echo, run: [python3, -c, "import sys; print(sys.argv[1])", "{target}"]}
        """,
    "nuke.yaml": """\
        name: nuke
        danger: true
        params:
          target: [a, b]
        steps:
          - name: first
            run: [python3, -c, "import sys; print('restart', sys.argv[1])", "{target}"]
          - {name: second, run: [python3, -c, "print('done')"]}
        """,
    "slow.yaml": """\
        name: slow
        steps:
          - name: waits
            run: [python3, -c, "import time; print('up', flush=True); time.sleep(30)"]
            timeout: 20
        """,
}


@pytest.fixture
def service(write_runbook: Callable[[str, str], Path], make_service: MakeService) -> RunbookService:
    for filename, text in LIBRARY.items():
        write_runbook(filename, text)
    return make_service()


async def test_stranger_is_refused_and_audited(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit
) -> None:
    with pytest.raises(RunbookDenied) as denied:
        await service.request(STRANGER, None, "safe", {"target": "a"})

    assert denied.value.reason == "stranger"
    assert spawner.argvs == []
    [row] = audit.rows
    assert (row.actor, row.action, row.outcome) == (STRANGER, "runbook.request", "refused")
    assert row.detail["runbook"] == "safe"
    assert row.detail["params"] == {"target": "a"}
    assert row.at == START


async def test_operator_runs_a_safe_runbook_and_every_step_is_audited(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit
) -> None:
    plan = await service.request(OPERATOR, "operator", "safe", {"target": "b"})
    assert isinstance(plan, Plan)

    result = await service.execute(plan, OPERATOR)

    assert result.ok
    assert result.output_tail == ("b",)
    assert spawner.argvs == [("python3", "-c", "import sys; print(sys.argv[1])", "b")]
    assert audit.actions() == [
        ("runbook.request", "accepted"),
        ("runbook.step", "ok"),
        ("runbook.result", "ok"),
    ]
    step, final = audit.rows[1].detail, audit.rows[2].detail
    assert step["argv"] == list(spawner.argvs[0])
    assert step["exit_code"] == 0
    assert final["exit_codes"] == [0]
    assert final["params"] == {"target": "b"}
    assert {row.actor for row in audit.rows} == {OPERATOR}


async def test_an_authorized_plan_runs_once_and_only_for_its_requester(
    service: RunbookService, spawner: RecordingSpawner
) -> None:
    plan = await service.request(OPERATOR, "operator", "safe", {"target": "a"})
    assert isinstance(plan, Plan)

    with pytest.raises(RunbookDenied):
        await service.execute(plan, STRANGER)
    with pytest.raises(RunbookDenied):
        await service.execute(plan, OPERATOR)  # the stranger's attempt used the ticket up
    forged = dataclasses.replace(plan, ticket="made-up")
    with pytest.raises(RunbookDenied):
        await service.execute(forged, OPERATOR)
    assert spawner.argvs == []


async def test_operator_may_not_run_a_dangerous_runbook(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit
) -> None:
    with pytest.raises(RunbookDenied) as denied:
        await service.request(OPERATOR, "operator", "nuke", {"target": "a"})

    assert denied.value.reason == "role"
    assert spawner.argvs == []
    assert audit.actions() == [("runbook.request", "refused")]


async def test_dangerous_runbook_never_starts_without_confirmation(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit
) -> None:
    pending = await service.request(ADMIN, "admin", "nuke", {"target": "a"})

    assert isinstance(pending, PendingConfirmation)
    assert pending.expires_at == START + timedelta(minutes=2)
    assert len(pending.code) == 6
    with pytest.raises(RunbookDenied):
        await service.execute(pending.plan, ADMIN)
    assert spawner.argvs == []
    assert audit.actions() == [
        ("runbook.request", "needs_confirmation"),
        ("runbook.run", "refused"),
    ]


async def test_confirmation_by_the_same_admin_runs_exactly_what_was_shown(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit, clock: SettableClock
) -> None:
    pending = await service.request(ADMIN, "admin", "nuke", {"target": "b"})
    assert isinstance(pending, PendingConfirmation)
    clock.advance(timedelta(seconds=119))

    plan = await service.confirm(ADMIN, "admin", f"  {pending.code.lower()} ")
    result = await service.execute(plan, ADMIN)

    assert plan.argvs == pending.plan.argvs
    assert result.ok
    assert spawner.argvs == [
        ("python3", "-c", "import sys; print('restart', sys.argv[1])", "b"),
        ("python3", "-c", "print('done')"),
    ]
    assert audit.actions() == [
        ("runbook.request", "needs_confirmation"),
        ("runbook.confirm", "ok"),
        ("runbook.step", "ok"),
        ("runbook.step", "ok"),
        ("runbook.result", "ok"),
    ]
    with pytest.raises(RunbookDenied) as reused:
        await service.confirm(ADMIN, "admin", pending.code)
    assert reused.value.reason == "unknown"


async def test_expired_confirmation_does_nothing(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit, clock: SettableClock
) -> None:
    pending = await service.request(ADMIN, "admin", "nuke", {"target": "a"})
    assert isinstance(pending, PendingConfirmation)
    clock.advance(timedelta(minutes=2))

    with pytest.raises(RunbookDenied) as expired:
        await service.confirm(ADMIN, "admin", pending.code)

    assert expired.value.reason == "expired"
    with pytest.raises(RunbookDenied):
        await service.confirm(ADMIN, "admin", pending.code)
    assert spawner.argvs == []
    assert audit.actions()[-2:] == [("runbook.confirm", "refused"), ("runbook.confirm", "refused")]
    assert audit.rows[1].detail["error"] == "confirmation code expired: ask for the runbook again"


async def test_someone_elses_code_is_refused_and_stays_valid_for_its_owner(
    service: RunbookService, spawner: RecordingSpawner
) -> None:
    pending = await service.request(ADMIN, "admin", "nuke", {"target": "a"})
    assert isinstance(pending, PendingConfirmation)

    for actor, role in ((OPERATOR, "operator"), ("telegram:2", "admin"), (STRANGER, None)):
        with pytest.raises(RunbookDenied):
            await service.confirm(actor, role, pending.code)  # type: ignore[arg-type]
    with pytest.raises(RunbookDenied):
        await service.confirm(ADMIN, "operator", pending.code)  # demoted since asking

    plan = await service.confirm(ADMIN, "admin", pending.code)
    assert plan.param_dict == {"target": "a"}
    assert spawner.argvs == []


async def test_dry_run_shows_exact_argv_and_runs_nothing(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit
) -> None:
    plan = await service.request(OPERATOR, "operator", "nuke", {"target": "a"}, dry_run=True)

    assert isinstance(plan, Plan)
    assert plan.argvs == (
        ("python3", "-c", "import sys; print('restart', sys.argv[1])", "a"),
        ("python3", "-c", "print('done')"),
    )
    with pytest.raises(RunbookDenied):
        await service.execute(plan, OPERATOR)
    assert spawner.argvs == []
    assert audit.actions()[0] == ("runbook.request", "dry_run")


async def test_unknown_runbook_and_bad_params_are_audited(
    service: RunbookService, audit: RecordingAudit
) -> None:
    with pytest.raises(RunbookNotFound):
        await service.request(OPERATOR, "operator", "rm -rf /", {})
    with pytest.raises(RunbookError):
        await service.request(OPERATOR, "operator", "safe", {"target": "a\x00; id"})

    assert audit.actions() == [("runbook.request", "not_found"), ("runbook.request", "invalid")]
    assert audit.rows[1].detail["params"] == {"target": "a\\x00; id"}  # NUL escaped for storage


async def test_two_requests_at_once_one_runs_the_other_is_told_who_and_when(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit, clock: SettableClock
) -> None:
    first = await service.request(OPERATOR, "operator", "slow", {})
    second = await service.request(ADMIN, "admin", "slow", {})
    assert isinstance(first, Plan)
    assert isinstance(second, Plan)

    up = asyncio.Event()

    async def on_event(event: RunEvent) -> None:
        if event.line == "up":
            up.set()

    running = asyncio.create_task(service.execute(first, OPERATOR, on_event))
    await asyncio.wait_for(up.wait(), 10)
    clock.advance(timedelta(seconds=30))
    with pytest.raises(RunbookBusy) as busy:
        await service.execute(second, ADMIN)
    with pytest.raises(RunbookBusy):
        await service.request(ADMIN, "admin", "slow", {})

    assert busy.value.started_by == OPERATOR
    assert busy.value.started_at == START
    cancelled = await service.cancel(ADMIN, "admin")
    result: RunResult = await asyncio.wait_for(running, 10)
    assert cancelled.actor == OPERATOR
    assert result.status == "cancelled"
    assert result.cancelled_by == ADMIN
    assert len(spawner.argvs) == 1
    assert ("runbook.run", "busy") in audit.actions()
    assert ("runbook.cancel", "ok") in audit.actions()
    assert audit.actions()[-1] == ("runbook.result", "cancelled")


async def test_cancel_with_nothing_running_or_by_a_stranger(service: RunbookService) -> None:
    with pytest.raises(RunbookError, match="no runbook is running"):
        await service.cancel(OPERATOR, "operator")
    with pytest.raises(RunbookDenied):
        await service.cancel(STRANGER, None, "safe")


async def test_shipped_restart_service_runs_only_its_systemctl_argv(
    clock: SettableClock, audit: RecordingAudit
) -> None:
    from runbooks.executor import Executor

    stand_in = RecordingSpawner(stand_in=["true"])
    service = RunbookService(
        load_catalog(), Executor(clock.now, spawner=stand_in), clock.now, audit
    )

    pending = await service.request(ADMIN, "admin", "restart-service", {"service": "nginx"})
    assert isinstance(pending, PendingConfirmation)
    plan = await service.confirm(ADMIN, "admin", pending.code)
    result = await service.execute(plan, ADMIN)

    assert result.ok
    assert stand_in.argvs == [
        ("systemctl", "--no-ask-password", "restart", "--", "nginx"),
        ("systemctl", "--no-ask-password", "is-active", "--", "nginx"),
    ]
