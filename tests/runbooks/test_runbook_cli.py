"""`nightshift runbook list|show|run`: exit codes, one-line errors, the audit as the shell user."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest

from bot.cli import main
from bot.console import login_name
from storage.store import open_store

ECHO = """\
name: echo
description: Repete o alvo
params:
  target: [a, b]
steps:
  - name: Repetindo
    run: [python3, -c, "import sys; print('target', sys.argv[1])", "{target}"]
  - name: Falhando se b
    run: [python3, -c, "import sys; sys.exit(4 if sys.argv[1] == 'b' else 0)", "{target}"]
"""
NUKE = """\
name: nuke
danger: true
steps:
  - name: Reiniciando
    run: [python3, -c, "print('restarted')"]
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "echo.yaml").write_text(ECHO, encoding="utf-8")
    (folder / "nuke.yaml").write_text(NUKE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NIGHTSHIFT_RUNBOOKS_DIR", str(folder))
    monkeypatch.setenv("NIGHTSHIFT_DATABASE_URL", f"sqlite:///{tmp_path / 'ns.db'}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the lock folder
    return tmp_path


def audit(tmp_path: Path) -> list[tuple[str, str, str]]:
    store = open_store(f"sqlite:///{tmp_path / 'ns.db'}")
    try:
        return [(e.actor, e.action, e.outcome) for e in reversed(store.audit_entries("runbook."))]
    finally:
        store.close()


def test_list_and_show(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbook", "list"]) == 0
    listed = capsys.readouterr().out
    assert "echo\n    Repete o alvo\n    target=<a|b>\n" in listed
    assert "nuke  [dangerous: confirmation]" in listed

    assert main(["runbook", "show", "echo"]) == 0
    shown = capsys.readouterr().out
    assert "param target: a|b" in shown
    assert '["python3", "-c", "import sys; print(\'target\', sys.argv[1])", "{target}"]' in shown


def test_run_prints_lines_as_they_come_and_is_audited_as_the_shell_user(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runbook", "run", "echo", "target=a"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["[1/2] Repetindo …", "    target a", out[2]]
    assert out[2].startswith("[1/2] Repetindo ok (")
    assert out[-1].startswith("echo: ok in ")
    actor = f"shell:{login_name()}"
    assert audit(env) == [
        (actor, "runbook.request", "accepted"),
        (actor, "runbook.step", "ok"),
        (actor, "runbook.step", "ok"),
        (actor, "runbook.result", "ok"),
    ]


def test_failing_step_exits_1(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbook", "run", "echo", "target=b"]) == 1
    assert "echo: failed at step 2/2 (Falhando se b)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["echo", "target=a; id"], "nightshift: echo: target: must be one of a, b\n"),
        (["echo", "target=a", "extra"], "nightshift: echo: expected name=value, got 'extra'\n"),
        (["rm"], "nightshift: runbook 'rm' not found (known: echo, nuke)\n"),
    ],
)
def test_user_mistakes_are_one_line_exit_2_and_run_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["runbook", "run", *argv]) == 2

    assert capsys.readouterr().err == message
    assert not any(action == "runbook.step" for _, action, _ in audit(env))


def test_dangerous_runbook_needs_a_typed_code_or_yes(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runbook", "run", "nuke"]) == 2  # stdin is not a terminal here
    err = capsys.readouterr().err
    assert err == "nightshift: nuke: dangerous; type the code on a terminal or pass --yes\n"
    assert [a for _, a, _ in audit(env)] == ["runbook.request", "runbook.confirm"]

    assert main(["runbook", "run", "nuke", "--yes"]) == 0
    out = capsys.readouterr().out
    assert 'It will run exactly:\n    ["python3", "-c", "print(\'restarted\')"]' in out
    assert "    restarted" in out
    assert [outcome for _, _, outcome in audit(env)][-4:] == [
        "needs_confirmation",
        "ok",
        "ok",
        "ok",
    ]


def test_dry_run_prints_argv(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbook", "run", "echo", "target=b", "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert '    ["python3", "-c", "import sys; print(\'target\', sys.argv[1])", "b"]' in out
    assert [outcome for _, _, outcome in audit(env)] == ["dry_run"]


def test_invalid_runbook_file_is_one_line_naming_file_and_field(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = env / "library" / "bad.yaml"
    bad.write_text(textwrap.dedent("name: bad\nsteps:\n  - {name: x, run: 'rm -rf /'}\n"))

    assert main(["runbook", "list"]) == 2

    err = capsys.readouterr().err
    assert err == (
        f"nightshift: {bad}: steps[0].run: must be an argv list, not a command line (no shell)\n"
    )
