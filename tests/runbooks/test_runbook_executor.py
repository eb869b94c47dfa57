"""The executor with real, harmless subprocesses: timeouts, groups, env, output, one run each."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from runbooks.catalog import load_runbook
from runbooks.errors import RunbookBusy, RunbookFailed, RunbookTimeout
from runbooks.executor import STEP_MARK, Executor, RunEvent
from runbooks.redaction import Redactor

from .conftest import START, RecordingSpawner, SettableClock

WriteRunbook = Callable[[str, str], Path]

HANG = """\
name: hang
steps:
  - name: hangs with a child that ignores SIGTERM
    run:
      - python3
      - -c
      - |
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        time.sleep(0.2)
        print(os.getpid(), child.pid, flush=True)
        time.sleep(60)
    timeout: 1.5
  - name: never reached
    run: [python3, -c, "print('no')"]
"""


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def executor(clock: SettableClock, spawner: RecordingSpawner, **options: object) -> Executor:
    return Executor(clock.now, spawner=spawner, kill_grace=0.3, **options)  # type: ignore[arg-type]


async def test_hanging_step_is_killed_at_its_timeout_with_its_whole_group(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    plan = load_runbook(write_runbook("hang.yaml", HANG)).plan({})
    began = time.monotonic()

    result = await executor(clock, spawner).run(plan, "console:root")

    elapsed = time.monotonic() - began
    assert result.status == "timeout"
    assert 1.5 <= elapsed < 4
    assert len(result.steps) == 1
    assert len(spawner.argvs) == 1
    assert result.steps[0].output[-1] == "timeout after 1.5s: process group killed"
    leader, child = (int(pid) for pid in result.steps[0].output[0].split())
    # The group got SIGKILL before run() returned; give the kernel a moment to tear it down.
    for _ in range(40):
        if not (alive(leader) or alive(child)):
            break
        await asyncio.sleep(0.05)
    assert not alive(leader)
    assert not alive(child)
    with pytest.raises(RunbookTimeout, match="step 1"):
        result.raise_for_status()


ESCAPE = """\
name: escape
steps:
  - name: leaves a process in a session of its own
    run:
      - python3
      - -c
      - |
        import subprocess, sys
        stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        print(stray.pid, flush=True)
    timeout: 10
"""


@pytest.mark.parametrize("ending", ["exits", "times out"])
async def test_a_process_that_left_the_step_group_goes_when_the_step_ends(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner, ending: str
) -> None:
    text = (
        ESCAPE
        if ending == "exits"
        else ESCAPE.replace(
            "print(stray.pid, flush=True)",
            "print(stray.pid, flush=True); import time; time.sleep(60)",
        ).replace("timeout: 10", "timeout: 1")
    )
    plan = load_runbook(write_runbook("escape.yaml", text)).plan({})

    result = await executor(clock, spawner).run(plan, "console:root")

    assert result.status == ("ok" if ending == "exits" else "timeout")
    stray = int(result.steps[0].output[0])
    for _ in range(40):  # SIGKILL went out before run() returned; the kernel tears down after
        if not alive(stray):
            break
        await asyncio.sleep(0.05)
    assert not alive(stray)


async def test_processes_of_another_step_are_left_alone(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; time.sleep(60)",
        env={**os.environ, STEP_MARK: "another-run-0-0123456789abcdef"},
        start_new_session=True,
    )
    try:
        plan = load_runbook(write_runbook("escape.yaml", ESCAPE)).plan({})
        result = await executor(clock, spawner).run(plan, "console:root")
        assert result.status == "ok"
        assert not alive(int(result.steps[0].output[0]))
        assert alive(other.pid)
    finally:
        other.kill()
        await other.wait()


async def test_leader_ignoring_sigterm_is_killed_too(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    path = write_runbook(
        "stubborn.yaml",
        """\
        name: stubborn
        steps:
          - name: ignores TERM
            run:
              - python3
              - -c
              - |
                import signal, time
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                print("up", flush=True)
                time.sleep(60)
            timeout: 1
        """,
    )
    began = time.monotonic()

    result = await executor(clock, spawner).run(load_runbook(path).plan({}), "console:root")

    assert result.status == "timeout"
    assert result.steps[0].exit_code == -9
    assert time.monotonic() - began < 3


async def test_stops_at_the_first_failing_step(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    path = write_runbook(
        "three.yaml",
        """\
        name: three
        steps:
          - {name: one, run: [python3, -c, "print('one')"]}
          - {name: two, run: [python3, -c, "import sys; print('boom'); sys.exit(3)"]}
          - {name: three, run: [python3, -c, "print('three')"]}
        """,
    )

    result = await executor(clock, spawner).run(load_runbook(path).plan({}), "console:root")

    assert result.status == "failed"
    assert result.exit_codes == (0, 3)
    assert result.output_tail == ("boom",)
    assert [argv[-1] for argv in spawner.argvs] == ["print('one')", spawner.argvs[1][-1]]
    assert len(spawner.argvs) == 2
    with pytest.raises(RunbookFailed, match=r"failed at step 2 \(two\)"):
        result.raise_for_status()


async def test_clean_environment_and_masked_secrets(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    path = write_runbook(
        "env.yaml",
        """\
        name: env
        env:
          KEEP:
          SLACK_BOT_TOKEN:
          ABSENT:
          FIXED: fixed value
        steps:
          - name: show
            run:
              - python3
              - -c
              - |
                import json, os
                print(json.dumps(sorted(os.environ)))
                print("slack", os.environ["SLACK_BOT_TOKEN"])
                print("password=hunter22 and Bearer abcdefghijkl")
                print("db postgresql://nightshift:pg-pass@db:5432/x")
                print("known", "configured-secret-value")
        """,
    )
    environ = {
        "KEEP": "kept",
        "SLACK_BOT_TOKEN": "not-shaped-like-slack-but-secret",
        "HOME": "/root",
        "AWS_SECRET_ACCESS_KEY": "must-not-pass",
    }
    runner = executor(
        clock, spawner, environ=environ, redactor=Redactor.of(["configured-secret-value"])
    )

    result = await runner.run(load_runbook(path).plan({}), "console:root")

    out = result.steps[0].output
    passed = spawner.envs[0]
    assert passed == {
        "PATH": passed["PATH"],
        "KEEP": "kept",
        "SLACK_BOT_TOKEN": "not-shaped-like-slack-but-secret",
        "FIXED": "fixed value",
        STEP_MARK: passed[STEP_MARK],
    }
    assert passed["PATH"].split(":")[-1] == "/bin"
    assert passed[STEP_MARK].startswith(f"{result.run_id}-0-")
    # Python itself adds LC_CTYPE when it finds no locale (PEP 538); nothing else leaks in.
    assert set(json.loads(out[0])) - {"LC_CTYPE"} == {
        "FIXED",
        "KEEP",
        "PATH",
        "SLACK_BOT_TOKEN",
        STEP_MARK,
    }
    assert out[1] == "slack ***"
    assert out[2] == "password=*** and Bearer ***"
    assert out[3] == "db postgresql://nightshift:***@db:5432/x"
    assert out[4] == "known ***"


async def test_output_is_the_tail_with_long_lines_cut_and_controls_removed(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    path = write_runbook(
        "loud.yaml",
        """\
        name: loud
        steps:
          - name: loud
            run:
              - python3
              - -c
              - |
                print(chr(10).join(str(i) for i in range(100)))
                print("x" * 5000)
                print(chr(27) + "[31mred" + chr(27) + "[0m")
        """,
    )
    lines: list[str] = []

    async def on_event(event: RunEvent) -> None:
        if event.kind == "output":
            lines.append(event.line)

    result = await executor(clock, spawner, tail_lines=5, max_line_chars=50).run(
        load_runbook(path).plan({}), "console:root", on_event
    )

    assert len(lines) == 102
    assert result.steps[0].output == ("97", "98", "99", "x" * 49 + "…", "red")


async def test_working_directory_and_missing_program(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner, tmp_path: Path
) -> None:
    path = write_runbook(
        "cwd.yaml",
        f"""\
        name: cwd
        cwd: {tmp_path}
        steps:
          - {{name: where, run: [python3, -c, "import os; print(os.getcwd())"]}}
          - {{name: missing, run: [no-such-program-nightshift, --help]}}
        """,
    )

    result = await executor(clock, spawner).run(load_runbook(path).plan({}), "console:root")

    assert result.steps[0].output == (str(tmp_path),)
    assert result.steps[1].status == "error"
    assert result.steps[1].exit_code is None
    assert "cannot start no-such-program-nightshift" in result.steps[1].output[0]
    assert result.status == "error"


SLOW = """\
name: slow
steps:
  - {name: first, run: [python3, -c, "print('a')"]}
  - name: waits
    run: [python3, -c, "import time; print('waiting', flush=True); time.sleep(30)"]
    timeout: 20
  - {name: last, run: [python3, -c, "print('never')"]}
"""


async def test_second_run_is_told_who_and_when_then_cancel_stops_the_first(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    plan = load_runbook(write_runbook("slow.yaml", SLOW)).plan({})
    runner = executor(clock, spawner)
    waiting = asyncio.Event()
    events: list[tuple[str, int]] = []

    async def on_event(event: RunEvent) -> None:
        events.append((event.kind, event.index))
        if event.kind == "output" and event.line == "waiting":
            waiting.set()

    first = asyncio.create_task(runner.run(plan, "slack:U1", on_event))
    await asyncio.wait_for(waiting.wait(), 10)
    clock.advance(timedelta(minutes=1))

    with pytest.raises(RunbookBusy) as busy:
        await runner.run(plan, "telegram:42")
    assert busy.value.started_by == "slack:U1"
    assert busy.value.started_at == START
    assert "slack:U1" in str(busy.value)
    assert runner.busy("slow") is not None

    began = time.monotonic()
    cancelled = runner.cancel("slow", "telegram:42")
    result = await asyncio.wait_for(first, 10)

    assert cancelled is not None
    assert cancelled.actor == "slack:U1"
    assert time.monotonic() - began < 3
    assert result.status == "cancelled"
    assert result.cancelled_by == "telegram:42"
    assert result.exit_codes == (0, -15)
    assert len(spawner.argvs) == 2
    assert runner.running() == ()
    assert runner.cancel("slow", "telegram:42") is None
    assert events == [
        ("step_started", 0),
        ("output", 0),
        ("step_finished", 0),
        ("step_started", 1),
        ("output", 1),
        ("step_finished", 1),
    ]


async def test_a_broken_progress_callback_does_not_stop_the_run(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    path = write_runbook(
        "two.yaml",
        """\
        name: two
        steps:
          - {name: a, run: [python3, -c, "print(1)"]}
          - {name: b, run: [python3, -c, "print(2)"]}
        """,
    )

    async def broken(event: RunEvent) -> None:
        raise ConnectionError("chat is down")

    result = await executor(clock, spawner).run(load_runbook(path).plan({}), "x:y", broken)

    assert result.ok
    assert result.exit_codes == (0, 0)


async def test_one_run_at_a_time_holds_across_processes_with_a_lock_folder(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner, tmp_path: Path
) -> None:
    plan = load_runbook(write_runbook("slow.yaml", SLOW)).plan({})
    bot = executor(clock, spawner, lock_dir=tmp_path / "locks")
    shell = executor(clock, spawner, lock_dir=tmp_path / "locks")  # as `nightshift runbook run`
    waiting = asyncio.Event()

    async def on_event(event: RunEvent) -> None:
        if event.line == "waiting":
            waiting.set()

    first = asyncio.create_task(bot.run(plan, "slack:U1", on_event))
    await asyncio.wait_for(waiting.wait(), 10)

    with pytest.raises(RunbookBusy) as busy:
        await shell.run(plan, "shell:root")
    holder = shell.busy("slow")
    bot.cancel("slow", "slack:U1")
    await asyncio.wait_for(first, 10)

    assert busy.value.started_by == "slack:U1"
    assert busy.value.started_at == START
    assert holder is not None
    assert holder.actor == "slack:U1"
    assert shell.busy("slow") is None
    assert len(spawner.argvs) == 2  # the shell's attempt started nothing


async def test_cancel_before_the_program_started_still_stops_it(
    write_runbook: WriteRunbook, clock: SettableClock, spawner: RecordingSpawner
) -> None:
    plan = load_runbook(write_runbook("slow.yaml", SLOW)).plan({})
    runner = executor(clock, spawner)

    async def cancel_at_step_two(event: RunEvent) -> None:
        if event.kind == "step_started" and event.index == 1:
            runner.cancel("slow", "telegram:42")

    began = time.monotonic()
    result = await runner.run(plan, "slack:U1", cancel_at_step_two)

    assert result.status == "cancelled"
    assert time.monotonic() - began < 5
    assert len(spawner.argvs) == 2
