"""Settings: defaults from SPEC, one line naming the variable on a bad value, secrets hidden."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.routing import Routes
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
        ({"NIGHTSHIFT_ROUTES": "team=payments telegram:1"}, "NIGHTSHIFT_ROUTES"),
        ({"NIGHTSHIFT_ROUTES": "team=x -> email:ops"}, "NIGHTSHIFT_ROUTES"),
        ({"NIGHTSHIFT_ROUTES": "team=~( -> console"}, "NIGHTSHIFT_ROUTES"),
        ({"NIGHTSHIFT_ROUTES": "-> console"}, "NIGHTSHIFT_ROUTES"),
        ({"NIGHTSHIFT_ESCALATE_AFTER": "10 minutes"}, "NIGHTSHIFT_ESCALATE_AFTER"),
        ({"NIGHTSHIFT_ESCALATE_AFTER": "10s"}, "NIGHTSHIFT_ESCALATE_AFTER"),
        ({"NIGHTSHIFT_ESCALATION": "pager:ops"}, "NIGHTSHIFT_ESCALATION"),
        ({"NIGHTSHIFT_ONCALL": "ana"}, "NIGHTSHIFT_ONCALL"),
        ({"NIGHTSHIFT_AVG_TICKET": "cheap"}, "NIGHTSHIFT_AVG_TICKET"),
        ({"NIGHTSHIFT_AVG_TICKET": "-3"}, "NIGHTSHIFT_AVG_TICKET"),
        ({"NIGHTSHIFT_CURRENCY": "reais"}, "NIGHTSHIFT_CURRENCY"),
        ({"NIGHTSHIFT_CORRELATION_LABELS": "service,team name"}, "NIGHTSHIFT_CORRELATION_LABELS"),
        ({"NIGHTSHIFT_DIMENSIONS": "acquirer,card brand"}, "NIGHTSHIFT_DIMENSIONS"),
        ({"NIGHTSHIFT_DIMENSIONS": ",".join(f"d{i}" for i in range(9))}, "NIGHTSHIFT_DIMENSIONS"),
        ({"NIGHTSHIFT_SLICE_TOP": "0"}, "NIGHTSHIFT_SLICE_TOP"),
        ({"NIGHTSHIFT_SLICE_TOP": "twenty"}, "NIGHTSHIFT_SLICE_TOP"),
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


def test_routes_first_match_wins_and_the_severity_table_is_the_default() -> None:
    s = load_settings(
        {
            "NIGHTSHIFT_ROUTES": "team=payments,severity=critical -> telegram:-100123,slack:C0PAY;"
            " service=~pix.*,env!=dev -> slack:C0PIX; team=payments -> slack:C0PAYWARN",
            "TELEGRAM_BOT_TOKEN": "1:x",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_APP_TOKEN": "xapp-1",
        },
        NO_TOML,
    )
    routes = Routes.default("C0ALL", ["-1"], console=False, rules=s.routes)
    assert routes({"team": "payments", "severity": "critical"}) == (
        "telegram:-100123",
        "slack:C0PAY",
    )
    assert routes({"team": "payments", "severity": "warning"}) == ("slack:C0PAYWARN",)
    assert routes({"service": "pix-api", "severity": "warning"}) == ("slack:C0PIX",)
    assert routes({"service": "pix-api", "env": "dev", "severity": "critical"}) == (
        "slack:C0ALL",
        "telegram:-1",
    )  # no route matched: where critical alerts go by default
    assert routes({"severity": "warning"}) == ("slack:C0ALL",)
    s.check_serve()


def test_a_route_to_a_platform_serve_will_not_run_stops_it_naming_the_route() -> None:
    s = load_settings({"NIGHTSHIFT_ROUTES": "team=a -> console; team=b -> telegram:-5"}, NO_TOML)
    with pytest.raises(SettingsError) as error:
        s.check_serve()
    assert str(error.value) == (
        "NIGHTSHIFT_ROUTES: route 2 ('team=b -> telegram:-5'): telegram:-5 cannot be reached "
        "(TELEGRAM_BOT_TOKEN is unset)"
    )


def test_escalation_impact_and_correlation_settings() -> None:
    s = load_settings(
        {
            "NIGHTSHIFT_ESCALATE_AFTER": "5m",
            "NIGHTSHIFT_ESCALATION": "console",
            "NIGHTSHIFT_ONCALL": "telegram:123,slack:U0ABC",
            "NIGHTSHIFT_AVG_TICKET": "87.5",
            "NIGHTSHIFT_CURRENCY": "usd",
            "NIGHTSHIFT_CORRELATION_LABELS": "team,service",
            "NIGHTSHIFT_CORRELATION_WINDOW": "1h",
            "NIGHTSHIFT_FEED_SERVICE": "checkout",
        },
        NO_TOML,
    )
    assert s.escalate_after == timedelta(minutes=5) and s.escalation == ("console",)
    assert s.oncall == ("telegram:123", "slack:U0ABC")
    assert (s.avg_ticket, s.currency) == (87.5, "USD")
    assert s.correlation_labels == ("team", "service")
    assert s.correlation_window == timedelta(hours=1) and s.feed_service == "checkout"
    defaults = load_settings({}, NO_TOML)
    assert defaults.escalate_after == timedelta(minutes=10) and defaults.currency == "BRL"
    assert defaults.correlation_labels == ("service", "job")


def test_dimension_settings(tmp_path: Path) -> None:
    defaults = load_settings({}, NO_TOML)
    assert (defaults.dimensions, defaults.slice_top) == (None, 20)
    s = load_settings(
        {"NIGHTSHIFT_DIMENSIONS": "Acquirer, brand", "NIGHTSHIFT_SLICE_TOP": "5"}, NO_TOML
    )
    assert (s.dimensions, s.slice_top) == (("acquirer", "brand"), 5)
    assert load_settings({"NIGHTSHIFT_DIMENSIONS": "none"}, NO_TOML).dimensions == ()
    toml = tmp_path / "nightshift.toml"
    toml.write_text('dimensions = ["acquirer", "merchant_id"]\nslice_top = 7\n')
    mirrored = load_settings({}, toml)
    assert (mirrored.dimensions, mirrored.slice_top) == (("acquirer", "merchant_id"), 7)
