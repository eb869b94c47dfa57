"""The command line as a user runs it: exit codes, one-line errors, nothing half-stored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import DATA


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("NIGHTSHIFT_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("NIGHTSHIFT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_ingest_then_ask(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(DATA / "transactions_1.csv"), "--date", "2025-07-12"]) == 0
    assert "4234 rows stored" in capsys.readouterr().err
    assert main(["ask", "metricas", "aprovacao"]) == 0
    assert "Aprovação" in capsys.readouterr().out


def test_bad_file_is_one_line_exit_2_and_nothing_stored(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = env / "good.csv"
    good.write_text("timestamp,status,count\n2025-07-12 10:00:00,approved,5\n")
    bad = env / "bad.csv"
    bad.write_text("timestamp,status,count\n2025-07-12 10:00:00,approved,5\n2025-07-12 10:01,,x\n")
    assert main(["ingest", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nightshift: {bad}:3: ")
    assert err.endswith("(nothing was stored)")
    assert "\n" not in err and "Traceback" not in err
    assert main(["ask", "metricas", "transacoes"]) == 0
    assert "sem histórico" in capsys.readouterr().out
    from storage.store import open_store

    store = open_store(f"sqlite:///{env / 'cli.db'}")
    assert store.last_minute() is None
    store.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "missing.csv"], "missing.csv: no such file"),
        (["ask"], "ask: give a command"),
    ],
)
def test_user_mistakes_exit_2(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_setting_exit_2(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIGHTSHIFT_LANG", "klingon")
    assert main(["ask", "status"]) == 2
    assert capsys.readouterr().err.startswith("nightshift: NIGHTSHIFT_LANG:")


def test_ask_exit_codes(env: Path) -> None:
    assert main(["ask", "status"]) == 0
    assert main(["ask", "nonsense"]) == 1
    assert main(["ask", "--as", "telegram:999", "status"]) == 3


def test_python_dash_m_bot_is_the_same_command(env: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "ajuda"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "status" in done.stdout
