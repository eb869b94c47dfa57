"""Runs a planned runbook: no shell, one process group per step, timeouts, one run per runbook."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from runbooks.catalog import Plan, Runbook, Step
from runbooks.errors import RunbookBusy, RunbookCancelled, RunbookFailed, RunbookTimeout
from runbooks.redaction import Redactor, looks_secret

logger = logging.getLogger(__name__)

StepStatus = Literal["ok", "failed", "timeout", "cancelled", "error"]
EventKind = Literal["step_started", "output", "step_finished"]
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_TERMINAL_CONTROLS = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class Spawner(Protocol):
    """Starts one step's program: argv as a list, never a shell, in a new session."""

    async def __call__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path
    ) -> asyncio.subprocess.Process: ...


async def spawn_process(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path
) -> asyncio.subprocess.Process:
    """The real spawner: exec (no shell), stdin closed, stderr merged, own process group."""
    return await asyncio.create_subprocess_exec(
        argv[0],
        *argv[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


def default_search_path() -> str:
    """The minimal PATH of a step: the bot's own interpreter folder first, then the system's."""
    folders = [str(Path(sys.executable).parent), *SYSTEM_PATH]
    return os.pathsep.join(dict.fromkeys(folders))


@dataclass(frozen=True, slots=True)
class RunningRun:
    """A run in progress: what `RunbookBusy` and `cancel` talk about."""

    run_id: str
    runbook: str
    actor: str
    started_at: datetime
    total_steps: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """How one step ended; `output` is the masked tail of its stdout and stderr."""

    index: int
    name: str
    argv: tuple[str, ...]
    status: StepStatus
    exit_code: int | None
    started_at: datetime
    seconds: float
    output: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended, step by step."""

    run_id: str
    runbook: str
    actor: str
    params: tuple[tuple[str, str], ...]
    status: StepStatus
    started_at: datetime
    finished_at: datetime
    seconds: float
    steps: tuple[StepResult, ...]
    total_steps: int
    cancelled_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def exit_codes(self) -> tuple[int | None, ...]:
        return tuple(step.exit_code for step in self.steps)

    @property
    def output_tail(self) -> tuple[str, ...]:
        """The output of the last step that ran (the failing one, if any)."""
        return self.steps[-1].output if self.steps else ()

    def raise_for_status(self) -> None:
        """`RunbookTimeout`, `RunbookCancelled` or `RunbookFailed` unless the run succeeded."""
        if self.ok:
            return
        last = self.steps[-1] if self.steps else None
        where = f" at step {last.index + 1} ({last.name})" if last else ""
        message = f"runbook {self.runbook} {self.status}{where}"
        if self.status == "timeout":
            raise RunbookTimeout(message)
        if self.status == "cancelled":
            raise RunbookCancelled(message)
        raise RunbookFailed(message)


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Progress: a step started, printed a line, or finished (`index` is 0-based)."""

    kind: EventKind
    run: RunningRun
    index: int
    step: str
    line: str = ""
    result: StepResult | None = None


EventCallback = Callable[[RunEvent], Awaitable[None]]


class _ActiveRun:
    """The mutable side of a run in progress (only the executor touches it)."""

    def __init__(self, info: RunningRun) -> None:
        self.info = info
        self.process: asyncio.subprocess.Process | None = None
        self.cancelled_by: str | None = None


class Executor:
    """Runs plans; at most one run of a given runbook at a time."""

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        spawner: Spawner = spawn_process,
        environ: Mapping[str, str] | None = None,  # where listed variables come from
        search_path: str | None = None,
        cwd: Path | None = None,
        redactor: Redactor | None = None,
        tail_lines: int = 20,
        max_line_chars: int = 300,
        kill_grace: float = 2.0,
        lock_dir: Path | None = None,
    ) -> None:
        """`lock_dir`: where per-runbook lock files make "one run at a time" hold across
        processes (the bot and `nightshift runbook run`); None keeps it to this process."""
        self._now = now
        self._spawner = spawner
        self._environ: Mapping[str, str] = environ or {}
        self._search_path = search_path or default_search_path()
        self._cwd = cwd
        self._redactor = redactor or Redactor()
        self._tail_lines = tail_lines
        self._max_line_chars = max_line_chars
        self._kill_grace = kill_grace
        self._lock_dir = lock_dir
        self._running: dict[str, _ActiveRun] = {}
        self._background: set[asyncio.Task[None]] = set()

    def running(self) -> tuple[RunningRun, ...]:
        """Runs in progress, oldest first."""
        return tuple(active.info for active in self._running.values())

    def busy(self, runbook: str) -> RunningRun | None:
        """The run in progress of that runbook, here or (with a lock folder) in another process."""
        active = self._running.get(runbook)
        if active is not None:
            return active.info
        if self._lock_dir is None:
            return None
        try:
            lock = _RunLock.take(self._lock_dir, runbook, self._now())
        except RunbookBusy as busy:
            return RunningRun("", runbook, busy.started_by, busy.started_at, 0)
        lock.release()
        return None

    def environment(self, runbook: Runbook) -> dict[str, str]:
        """The whole environment of a step: PATH plus the variables the runbook lists."""
        source = self._environ
        env = {"PATH": self._search_path}
        for name, value in runbook.env:
            if value is not None:
                env[name] = value
            elif name in source:
                env[name] = source[name]
        return env

    async def run(self, plan: Plan, actor: str, on_event: EventCallback | None = None) -> RunResult:
        """Run every step in order, stopping at the first that does not succeed.

        Raises `RunbookBusy` (who and since when) if this runbook is already running.
        """
        name = plan.runbook.name
        current = self._running.get(name)
        if current is not None:
            raise RunbookBusy(name, current.info.actor, current.info.started_at)
        info = RunningRun(
            run_id=secrets.token_hex(4),
            runbook=name,
            actor=actor,
            started_at=self._now(),
            total_steps=len(plan.argvs),
        )
        lock = None
        if self._lock_dir is not None:
            lock = _RunLock.take(self._lock_dir, name, info.started_at)
        active = _ActiveRun(info)
        self._running[name] = active
        try:
            if lock is not None:
                lock.hold(info)
            return await self._run(plan, active, on_event)
        finally:
            del self._running[name]
            if lock is not None:
                lock.release()

    def cancel(self, runbook: str, actor: str) -> RunningRun | None:
        """Stop the run of `runbook` (its current step's group is killed); None if not running."""
        active = self._running.get(runbook)
        if active is None:
            return None
        active.cancelled_by = actor
        process = active.process
        if process is not None and process.returncode is None:
            self._kill_in_background(process)
        logger.info("runbook %s run %s cancelled by %s", runbook, active.info.run_id, actor)
        return active.info

    def _kill_in_background(self, process: asyncio.subprocess.Process) -> None:
        task = asyncio.get_running_loop().create_task(self._kill_group(process))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(
        self, plan: Plan, active: _ActiveRun, on_event: EventCallback | None
    ) -> RunResult:
        runbook = plan.runbook
        env = self.environment(runbook)
        redactor = self._redactor.with_secrets(v for k, v in env.items() if looks_secret(k))
        cwd = runbook.cwd or self._cwd or Path.cwd()
        started = time.monotonic()
        results: list[StepResult] = []
        status: StepStatus = "ok"
        for index, (step, argv) in enumerate(zip(runbook.steps, plan.argvs, strict=True)):
            if active.cancelled_by is not None:
                status = "cancelled"
                break
            await self._emit(on_event, RunEvent("step_started", active.info, index, step.name))
            result = await self._step(active, index, step, argv, env, cwd, redactor, on_event)
            results.append(result)
            await self._emit(
                on_event, RunEvent("step_finished", active.info, index, step.name, result=result)
            )
            if result.status != "ok":
                status = result.status
                break
        return RunResult(
            run_id=active.info.run_id,
            runbook=runbook.name,
            actor=active.info.actor,
            params=plan.params,
            status=status,
            started_at=active.info.started_at,
            finished_at=self._now(),
            seconds=time.monotonic() - started,
            steps=tuple(results),
            total_steps=len(plan.argvs),
            cancelled_by=active.cancelled_by,
        )

    async def _step(
        self,
        active: _ActiveRun,
        index: int,
        step: Step,
        argv: tuple[str, ...],
        env: Mapping[str, str],
        cwd: Path,
        redactor: Redactor,
        on_event: EventCallback | None,
    ) -> StepResult:
        name = step.name
        started_at = self._now()
        started = time.monotonic()
        tail: deque[str] = deque(maxlen=self._tail_lines)

        def result(status: StepStatus, exit_code: int | None) -> StepResult:
            return StepResult(
                index=index,
                name=name,
                argv=argv,
                status=status,
                exit_code=exit_code,
                started_at=started_at,
                seconds=time.monotonic() - started,
                output=tuple(tail),
            )

        # Every process the step starts inherits this mark, even one that leaves the step's
        # process group (setsid, a double fork): what carries it is killed when the step ends.
        mark = f"{active.info.run_id}-{index}-{secrets.token_hex(8)}"
        try:
            process = await self._spawner(argv, {**env, STEP_MARK: mark}, cwd)
        except OSError as exc:
            tail.append(redactor.mask(f"cannot start {argv[0]}: {exc.strerror or exc}"))
            logger.warning(
                "runbook %s step %d: cannot start %s", active.info.runbook, index, argv[0]
            )
            return result("error", None)
        active.process = process
        if active.cancelled_by is not None:  # cancelled while the program was starting
            self._kill_in_background(process)

        async def line_out(line: str) -> None:
            tail.append(line)
            await self._emit(on_event, RunEvent("output", active.info, index, name, line=line))

        timed_out = False
        try:
            async with asyncio.timeout(step.timeout):
                await self._pump(process, redactor, line_out)
                await process.wait()
        except TimeoutError:
            timed_out = True
            logger.warning(
                "runbook %s step %d timed out after %gs; killing its process group",
                active.info.runbook,
                index,
                step.timeout,
            )
            await self._kill_group(process)
        except asyncio.CancelledError:
            _signal_group(process.pid, signal.SIGKILL)
            raise
        finally:
            active.process = None
            # Whatever the step left behind in its group goes with it, and so does what
            # left the group.
            _signal_group(process.pid, signal.SIGKILL)
            strays = kill_marked(f"{STEP_MARK}={mark}")
            if strays:
                logger.warning(
                    "runbook %s step %d left %d process(es) outside its group; killed",
                    active.info.runbook,
                    index,
                    strays,
                )
        exit_code = process.returncode
        if active.cancelled_by is not None:
            return result("cancelled", exit_code)
        if timed_out:
            tail.append(f"timeout after {step.timeout:g}s: process group killed")
            return result("timeout", exit_code)
        return result("ok" if exit_code == 0 else "failed", exit_code)

    async def _pump(
        self,
        process: asyncio.subprocess.Process,
        redactor: Redactor,
        line_out: Callable[[str], Awaitable[None]],
    ) -> None:
        """Read merged output in chunks; lines masked, cleaned and cut to a bounded length."""
        stream = process.stdout
        if stream is None:
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        cap = self._max_line_chars * 4
        pending = ""
        overflow = False
        while True:
            chunk = await stream.read(65536)
            text = decoder.decode(chunk, final=not chunk)
            pieces = (pending + text).split("\n")
            pending = pieces.pop()
            for piece in pieces:
                if not overflow:
                    await line_out(self._clean(piece, redactor))
                overflow = False
            if len(pending) > cap:
                if not overflow:
                    await line_out(self._clean(pending[:cap], redactor))
                pending = ""
                overflow = True
            if not chunk:
                break
        if pending and not overflow:
            await line_out(self._clean(pending, redactor))

    def _clean(self, line: str, redactor: Redactor) -> str:
        line = _TERMINAL_CONTROLS.sub("", line.rstrip("\r"))
        line = redactor.mask(line)
        if len(line) > self._max_line_chars:
            line = line[: self._max_line_chars - 1] + "…"
        return line

    async def _kill_group(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM to the whole group, a grace period, then SIGKILL to whatever is left."""
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._kill_grace):
                await process.wait()
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()

    async def _emit(self, on_event: EventCallback | None, event: RunEvent) -> None:
        if on_event is None:
            return
        try:
            await on_event(event)
        except Exception:
            # A chat edit that fails must not stop (or orphan) a running step.
            logger.warning("runbook progress callback failed", exc_info=True)


class _RunLock:
    """An exclusive `flock` on `<lock_dir>/<runbook>.lock`, holding who started the run."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def take(cls, folder: Path, runbook: str, now: datetime) -> _RunLock:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / f"{runbook}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd, now)
            os.close(fd)
            raise RunbookBusy(runbook, *holder) from None
        return cls(fd)

    def hold(self, info: RunningRun) -> None:
        holder = {
            "actor": info.actor,
            "started_at": info.started_at.isoformat(),
            "pid": os.getpid(),
        }
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(holder).encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _read_holder(fd: int, now: datetime) -> tuple[str, datetime]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return str(data["actor"]), datetime.fromisoformat(data["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process", now


STEP_MARK = "NIGHTSHIFT_STEP"  # in every step's environment: which step a process belongs to


def kill_marked(entry: str, proc: Path = Path("/proc")) -> int:
    """SIGKILL every process whose environment holds `entry` (NAME=value); how many. The same
    way CI servers find what a build left running: a process that leaves its process group
    still inherits its parent's environment. Repeated until none is left (one may fork while
    we look); nothing on a system without /proc."""
    wanted, me = entry.encode(), os.getpid()
    killed: set[int] = set()
    for _ in range(10):
        try:
            pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
        except OSError:
            break
        found = 0
        for pid in pids:
            if pid == me or pid in killed:
                continue
            try:
                environ = (proc / str(pid) / "environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if wanted in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                    found += 1
        if not found:
            break
    return len(killed)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
