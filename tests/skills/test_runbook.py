"""`runbook`, `confirmar`, `cancelar` through the dispatcher, against a real store and processes."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runbooks.catalog import load_catalog
from runbooks.executor import Executor
from runbooks.service import RunbookService
from skills import runbook
from skills.access import Access
from skills.core import Invocation, ProgressSink, Reply, SkillContext
from skills.registry import SKILLS
from skills.router import Dispatcher
from storage.store import Store, open_store
from tests.fakes.clock import FixedClock
from tests.runbooks.conftest import RecordingSpawner

# The entries the registry holds for this skill module.
SPECS = tuple(spec for spec in SKILLS if spec.run.__module__ == runbook.__name__)
ADMIN = ("telegram", "1")
OPERATOR = ("slack", "UOPS")
STRANGER = ("telegram", "666")
LIBRARY = {
    "echo.yaml": """\
        name: echo
        description: Repete o alvo
        params:
          target: {choices: [a, b], default: a}
        steps:
          - name: Conferindo
            run: [python3, -c, "print('checking')"]
          - name: Repetindo
            run: [python3, -c, "import sys; print('target', sys.argv[1])", "{target}"]
        """,
    "nuke.yaml": """\
        name: nuke
        description: Reinicia a API
        danger: true
        params:
          target: [a, b]
        steps:
          - name: Reiniciando API
            run: [python3, -c, "import sys; print('restarted', sys.argv[1])", "{target}"]
        """,
    "slow.yaml": """\
        name: slow
        steps:
          - name: Esperando
            run: [python3, -c, "import time; print('up', flush=True); time.sleep(30)"]
            timeout: 20
        """,
}


class Bot:
    """The dispatcher with this skill, a store, and the runbook service, as the core wires it."""

    def __init__(self, store: Store, clock: FixedClock, folder: Path, lang: str = "pt") -> None:
        self.spawner = RecordingSpawner()
        self.clock = clock
        self.store = store
        executor = Executor(clock.now, spawner=self.spawner, environ={}, kill_grace=0.3)
        self.service = RunbookService(load_catalog(folder), executor, clock.now, store)
        context = SkillContext(
            store=store,
            clock=clock,
            tz=ZoneInfo("America/Sao_Paulo"),
            lang=lang,  # type: ignore[arg-type]
            runbooks=self.service,
        )
        access = Access(operators=("slack:UOPS",), admins=("console:*", "telegram:1"))
        self.dispatcher = Dispatcher(SPECS, context, access)
        self.updates: list[Reply] = []

    async def say(self, who: tuple[str, str], text: str) -> Reply:
        async def update(reply: Reply) -> None:
            self.updates.append(reply)

        inv = Invocation(platform=who[0], user_id=who[1], text=text, chat_id="c")
        return await self.dispatcher.handle(inv, ProgressSink(update))

    def audit(self) -> list[tuple[str, str, str]]:
        entries = self.store.audit_entries("runbook.", limit=100)
        return [(e.actor, e.action, e.outcome) for e in reversed(entries)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, text in LIBRARY.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'nightshift.db'}")
    yield opened
    opened.close()


@pytest.fixture
def bot(store: Store, clock: FixedClock, folder: Path) -> Bot:
    return Bot(store, clock, folder)


async def test_list_shows_the_whitelist_and_what_is_dangerous(bot: Bot) -> None:
    reply = await bot.say(OPERATOR, "runbooks")

    text = reply.plain_text()
    assert reply.title == "📒 Runbooks (3)"
    assert "• echo — Repete o alvo" in text
    assert "• nuke — Reinicia a API ⚠️ perigoso (admin + confirmação)" in text
    assert "target=<a|b>" in text


async def test_operator_runs_with_one_message_edited_step_by_step(bot: Bot) -> None:
    reply = await bot.say(OPERATOR, "runbook echo target=b")

    assert reply.outcome == "ok"
    assert reply.title.startswith("✅ `echo` concluído em ")
    [steps, tail, footer] = reply.sections
    assert steps.lines[0].startswith("[1/2] Conferindo… ✅ (")
    assert steps.lines[1].startswith("[2/2] Repetindo… ✅ (")
    assert tail.lines == ("target b",)
    assert footer.lines[0].endswith("por slack:UOPS · target=b")
    progress = [u.sections[0].lines for u in bot.updates]
    assert progress[0] == ("[1/2] Conferindo… ⏳", "[2/2] Repetindo…")
    assert progress[1][0].startswith("[1/2] Conferindo… ✅")
    assert progress[2][1] == "[2/2] Repetindo… ⏳"
    assert len(bot.updates) == 4  # one edit per step change, none per output line
    assert bot.spawner.argvs[1][-1] == "b"
    assert bot.audit() == [
        ("slack:UOPS", "runbook.request", "accepted"),
        ("slack:UOPS", "runbook.step", "ok"),
        ("slack:UOPS", "runbook.step", "ok"),
        ("slack:UOPS", "runbook.result", "ok"),
    ]


async def test_console_prints_lines_as_they_come(bot: Bot) -> None:
    reply = await bot.say(("console", "ana"), "executar echo")

    assert [u.title for u in bot.updates] == [
        "[1/2] Conferindo… ⏳",
        "    checking",
        bot.updates[2].title,
        "[2/2] Repetindo… ⏳",
        "    target a",
        bot.updates[5].title,
    ]
    assert bot.updates[2].title.startswith("[1/2] Conferindo… ✅")
    assert len(reply.sections) == 2  # no output tail repeated after the live lines


async def test_stranger_is_refused_and_audited(bot: Bot) -> None:
    reply = await bot.say(STRANGER, "runbook echo")

    assert reply.outcome == "refused"
    assert bot.spawner.argvs == []
    [entry] = bot.store.audit_entries("chat.refused")
    assert entry.actor == "telegram:666"


async def test_hostile_chat_text_never_runs(bot: Bot) -> None:
    for text in (
        "runbook echo target=a; rm -rf /",
        "runbook echo target=$(id)",
        "runbook echo target=`id`",
        "runbook echo target=a && reboot",
        "runbook echo --target=/etc/passwd",
        "runbook echo target=-rf",
        "runbook ../../bin/sh",
        "runbook echo target='a\nb'",
    ):
        reply = await bot.say(OPERATOR, text)
        assert reply.outcome == "error", text
        assert reply.title.startswith("⚠️ "), text
    assert bot.spawner.argvs == []
    outcomes = {outcome for _, action, outcome in bot.audit()}
    assert outcomes == {"invalid", "not_found"}
    assert len(bot.audit()) == 8


async def test_invalid_parameter_is_explained_with_usage(bot: Bot) -> None:
    reply = await bot.say(OPERATOR, "runbook echo target=c")

    assert reply.title == (
        "⚠️ Parâmetros inválidos: target deve ser um de: a, b. Uso: `runbook echo [target=<a|b>]`"
    )


async def test_dangerous_runbook_needs_the_same_admins_confirmation(bot: Bot) -> None:
    asked = await bot.say(ADMIN, "runbook nuke target=a")

    assert asked.title.startswith("⚠️ `nuke` é perigoso: confirme até ")
    assert asked.sections[0].lines == (
        '["python3", "-c", "import sys; print(\'restarted\', sys.argv[1])", "a"]',
    )
    confirm, drop = asked.buttons
    assert confirm.action.startswith("confirmar ")
    assert drop.action == confirm.action.replace("confirmar", "cancelar")
    assert bot.spawner.argvs == []

    refused = await bot.say(OPERATOR, confirm.action)
    assert refused.outcome == "refused"
    assert bot.spawner.argvs == []

    done = await bot.say(ADMIN, confirm.action)
    assert done.outcome == "ok"
    assert done.title.startswith("✅ `nuke` concluído")
    assert bot.updates[-1].sections[0].lines[0].startswith("[1/1] Reiniciando API… ✅")
    assert bot.spawner.argvs == [
        ("python3", "-c", "import sys; print('restarted', sys.argv[1])", "a")
    ]
    again = await bot.say(ADMIN, confirm.action)
    assert again.outcome == "refused"
    assert "já usado" in again.title
    assert len(bot.spawner.argvs) == 1


async def test_operator_cannot_run_a_dangerous_runbook(bot: Bot) -> None:
    reply = await bot.say(OPERATOR, "runbook nuke target=a")

    assert reply.outcome == "refused"
    assert reply.title == "⛔ Este runbook é perigoso: só administradores."
    assert bot.spawner.argvs == []


async def test_expired_confirmation_does_nothing(bot: Bot, clock: FixedClock) -> None:
    asked = await bot.say(ADMIN, "runbook nuke target=b")
    clock.advance(minutes=2, seconds=1)

    reply = await bot.say(ADMIN, asked.buttons[0].action)

    assert reply.outcome == "refused"
    assert "expirado" in reply.title
    assert bot.spawner.argvs == []
    assert ("telegram:1", "runbook.confirm", "refused") in bot.audit()
    assert not any(action == "runbook.step" for _, action, _ in bot.audit())


async def test_cancel_button_drops_the_confirmation(bot: Bot) -> None:
    asked = await bot.say(ADMIN, "runbook nuke target=b")

    dropped = await bot.say(ADMIN, asked.buttons[1].action)
    late = await bot.say(ADMIN, asked.buttons[0].action)

    assert dropped.title == "🗑️ Confirmação descartada."
    assert late.outcome == "refused"
    assert bot.spawner.argvs == []


async def test_dry_run_shows_exact_argv(bot: Bot) -> None:
    reply = await bot.say(OPERATOR, "runbook echo target=b --dry-run")

    assert reply.title == "🧪 Simulação de `echo`: nada foi executado"
    assert reply.sections[0].lines[1] == (
        '["python3", "-c", "import sys; print(\'target\', sys.argv[1])", "b"]'
    )
    assert bot.spawner.argvs == []


async def test_second_request_is_told_who_and_when_and_cancel_stops_it(
    bot: Bot, clock: FixedClock
) -> None:
    first = asyncio.create_task(bot.say(OPERATOR, "runbook slow"))
    for _ in range(200):
        if bot.updates:
            break
        await asyncio.sleep(0.02)
    clock.advance(minutes=5)

    busy = await bot.say(ADMIN, "runbook slow")
    stopped = await bot.say(ADMIN, "cancelar")
    result = await asyncio.wait_for(first, 10)

    assert busy.outcome == "error"
    assert "já está em execução: iniciado por slack:UOPS 12:00 (há 5 min)" in busy.title
    assert stopped.title == "⛔ Cancelando `slow` (iniciado por slack:UOPS 12:00 (há 5 min))."
    assert result.title.startswith("⛔ `slow` cancelado por telegram:1 no passo 1/1")
    assert len(bot.spawner.argvs) == 1


async def test_history_lists_the_last_runs(bot: Bot, clock: FixedClock) -> None:
    await bot.say(OPERATOR, "runbook echo target=b")
    clock.advance(minutes=1)

    reply = await bot.say(OPERATOR, "runbook historico")

    assert reply.title == "🗂️ Últimas execuções de runbooks"
    [line] = reply.sections[0].lines
    assert line.startswith("12:00 ✅ echo · ok · ")
    assert line.endswith(" · slack:UOPS · target=b")


async def test_english_replies(store: Store, clock: FixedClock, folder: Path) -> None:
    bot = Bot(store, clock, folder, lang="en")

    reply = await bot.say(OPERATOR, "run echo target=zzz")
    nothing = await bot.say(OPERATOR, "cancel")

    assert (
        reply.title
        == "⚠️ Invalid parameters: target must be one of: a, b. Usage: `runbook echo [target=<a|b>]`"
    )
    assert nothing.title == "⚠️ No runbook is running."
    idle = await bot.say(OPERATOR, "cancel echo")
    assert idle.title == "⚠️ `echo` is not running."
