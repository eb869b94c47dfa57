"""Settings: defaults from SPEC, one line naming the variable on a bad value, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

NO_TOML = Path("/nonexistent/nightshift.toml")


def test_defaults_follow_the_spec() -> None:
    s = load_settings({}, NO_TOML)
    assert (s.database_url, s.host, s.port) == ("sqlite:///nightshift.db", "127.0.0.1", 8080)
    assert str(s.timezone) == "America/Sao_Paulo" and s.lang == "pt"
    assert (s.briefing_cron, s.handoff_cron) == ("0 0 * * *", "0 8 * * *")
    assert s.admins == ("console:*",) and s.operators == ()
    assert s.telegram_mode == "polling"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NIGHTSHIFT_PORT": "eighty"}, "NIGHTSHIFT_PORT"),
        ({"NIGHTSHIFT_PORT": "70000"}, "NIGHTSHIFT_PORT"),
        ({"NIGHTSHIFT_TIMEZONE": "Mars/Olympus"}, "NIGHTSHIFT_TIMEZONE"),
        ({"NIGHTSHIFT_LANG": "fr"}, "NIGHTSHIFT_LANG"),
        ({"NIGHTSHIFT_BRIEFING_CRON": "every midnight"}, "NIGHTSHIFT_BRIEFING_CRON"),
        ({"NIGHTSHIFT_OPERATORS": "telegram"}, "NIGHTSHIFT_OPERATORS"),
        ({"NIGHTSHIFT_ADMINS": "irc:bob"}, "NIGHTSHIFT_ADMINS"),
        ({"NIGHTSHIFT_TELEGRAM_CHAT_IDS": "abc"}, "NIGHTSHIFT_TELEGRAM_CHAT_IDS"),
        ({"ALERTMANAGER_URL": "alertmanager:9093"}, "ALERTMANAGER_URL"),
        ({"NIGHTSHIFT_DATABASE_URL": "nightshift.db"}, "NIGHTSHIFT_DATABASE_URL"),
        ({"NIGHTSHIFT_RUNBOOKS_DIR": "/nonexistent"}, "NIGHTSHIFT_RUNBOOKS_DIR"),
        (
            {"NIGHTSHIFT_TELEGRAM_MODE": "webhook", "TELEGRAM_BOT_TOKEN": "1:x"},
            "NIGHTSHIFT_TELEGRAM_WEBHOOK_SECRET",
        ),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env, NO_TOML)
    assert str(error.value).startswith(f"{variable}:")
    assert "\n" not in str(error.value)


def test_no_token_refused_off_loopback() -> None:
    load_settings({"NIGHTSHIFT_HOST": "::1"}, NO_TOML).check_serve()
    with pytest.raises(SettingsError, match=r"^NIGHTSHIFT_WEBHOOK_TOKEN"):
        load_settings({"NIGHTSHIFT_HOST": "0.0.0.0"}, NO_TOML).check_serve()  # noqa: S104
    load_settings(
        {"NIGHTSHIFT_HOST": "0.0.0.0", "NIGHTSHIFT_WEBHOOK_TOKEN": "t"},  # noqa: S104
        NO_TOML,
    ).check_serve()


def test_secrets_never_show_in_repr() -> None:
    s = load_settings(
        {"TELEGRAM_BOT_TOKEN": "123:SECRET", "NIGHTSHIFT_WEBHOOK_TOKEN": "hunter2"}, NO_TOML
    )
    assert "SECRET" not in repr(s) and "hunter2" not in repr(s)
    assert s.telegram_bot_token is not None and s.telegram_bot_token.value == "123:SECRET"


def test_toml_mirrors_the_environment_and_env_wins(tmp_path: Path) -> None:
    toml = tmp_path / "nightshift.toml"
    toml.write_text('NIGHTSHIFT_PORT = 9090\nlang = "en"\noperators = ["telegram:5", "slack:U1"]\n')
    s = load_settings({"NIGHTSHIFT_PORT": "9191"}, toml)
    assert (s.port, s.lang, s.operators) == (9191, "en", ("telegram:5", "slack:U1"))
    toml.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings({}, toml)
