"""Settings: one frozen object from the environment and an optional `nightshift.toml`.

Every variable of SPEC.md's table is read here and nowhere else. A wrong value raises
`SettingsError` with one line naming the variable; secrets are `Secret`s, whose repr is `***`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from bot.routing import Route, RouteError, parse_destinations, parse_routes
from storage.dimensions import DIMENSION_NAME, MAX_DIMENSIONS


class SettingsError(ValueError):
    """A setting has a value nightshift cannot use; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A token or password: compared and used, never printed."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///nightshift.db"
    host: str = "127.0.0.1"
    port: int = 8080
    webhook_token: Secret | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/Sao_Paulo"))
    lang: Literal["pt", "en"] = "pt"
    briefing_cron: str = "0 0 * * *"
    handoff_cron: str = "0 8 * * *"
    operators: tuple[str, ...] = ()
    admins: tuple[str, ...] = ("console:*",)
    runbooks_dir: Path | None = None
    alertmanager_url: str | None = None
    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_channel: str | None = None
    slack_api_url: str | None = None
    telegram_bot_token: Secret | None = None
    telegram_chat_ids: tuple[str, ...] = ()
    telegram_api_url: str | None = None
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: Secret | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    retention_days: int = 90
    leader_lease_seconds: int = 30
    routes: tuple[Route, ...] = ()
    escalate_after: timedelta = timedelta(minutes=10)
    escalation: tuple[str, ...] = ()  # empty: each incident's own destinations
    oncall: tuple[str, ...] = ()
    avg_ticket: float | None = None
    currency: str = "BRL"
    correlation_labels: tuple[str, ...] = ("service", "job")
    correlation_window: timedelta = timedelta(minutes=15)
    feed_service: str = "payments"
    dimensions: tuple[str, ...] | None = None  # feed columns kept as dimensions; None: all
    slice_top: int = 20  # slice values kept per dimension, the rest count as `other`

    @property
    def on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_serve(self) -> None:
        """What `serve` needs beyond well-formed values."""
        if self.webhook_token is None and not self.on_loopback:
            raise SettingsError(
                f"NIGHTSHIFT_WEBHOOK_TOKEN: must be set when listening on {self.host} "
                "(only a loopback address may run without a token)"
            )
        if self.slack_bot_token and not (self.slack_app_token or self.slack_signing_secret):
            raise SettingsError(
                "SLACK_SIGNING_SECRET: set it (HTTP events mode) or SLACK_APP_TOKEN (Socket Mode)"
            )
        for number, route in enumerate(self.routes, 1):
            for destination in route.destinations:
                self._reachable(
                    "NIGHTSHIFT_ROUTES", f"route {number} ({route.text!r})", destination
                )
        for destination in self.escalation:
            self._reachable("NIGHTSHIFT_ESCALATION", "escalation", destination)

    def _reachable(self, var: str, what: str, destination: str) -> None:
        """A destination whose platform `serve` will run (the console runs when no chat does)."""
        platform = destination.partition(":")[0]
        missing = {
            "telegram": None if self.telegram_bot_token else "TELEGRAM_BOT_TOKEN is unset",
            "slack": None if self.slack_bot_token else "SLACK_BOT_TOKEN is unset",
            "console": (
                "a chat platform is configured, so the console chat is off"
                if self.slack_bot_token or self.telegram_bot_token
                else None
            ),
        }.get(platform)
        if missing:
            raise SettingsError(f"{var}: {what}: {destination} cannot be reached ({missing})")


_NAMES = {
    "database_url": "NIGHTSHIFT_DATABASE_URL",
    "host": "NIGHTSHIFT_HOST",
    "port": "NIGHTSHIFT_PORT",
    "webhook_token": "NIGHTSHIFT_WEBHOOK_TOKEN",
    "timezone": "NIGHTSHIFT_TIMEZONE",
    "lang": "NIGHTSHIFT_LANG",
    "briefing_cron": "NIGHTSHIFT_BRIEFING_CRON",
    "handoff_cron": "NIGHTSHIFT_HANDOFF_CRON",
    "operators": "NIGHTSHIFT_OPERATORS",
    "admins": "NIGHTSHIFT_ADMINS",
    "runbooks_dir": "NIGHTSHIFT_RUNBOOKS_DIR",
    "alertmanager_url": "ALERTMANAGER_URL",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_channel": "NIGHTSHIFT_SLACK_CHANNEL",
    "slack_api_url": "NIGHTSHIFT_SLACK_API_URL",
    "telegram_bot_token": "TELEGRAM_BOT_TOKEN",
    "telegram_chat_ids": "NIGHTSHIFT_TELEGRAM_CHAT_IDS",
    "telegram_api_url": "NIGHTSHIFT_TELEGRAM_API_URL",
    "telegram_mode": "NIGHTSHIFT_TELEGRAM_MODE",
    "telegram_webhook_secret": "NIGHTSHIFT_TELEGRAM_WEBHOOK_SECRET",
    "max_body_bytes": "NIGHTSHIFT_MAX_BODY_BYTES",
    "retention_days": "NIGHTSHIFT_RETENTION_DAYS",
    "leader_lease_seconds": "NIGHTSHIFT_LEADER_LEASE",
    "routes": "NIGHTSHIFT_ROUTES",
    "escalate_after": "NIGHTSHIFT_ESCALATE_AFTER",
    "escalation": "NIGHTSHIFT_ESCALATION",
    "oncall": "NIGHTSHIFT_ONCALL",
    "avg_ticket": "NIGHTSHIFT_AVG_TICKET",
    "currency": "NIGHTSHIFT_CURRENCY",
    "correlation_labels": "NIGHTSHIFT_CORRELATION_LABELS",
    "correlation_window": "NIGHTSHIFT_CORRELATION_WINDOW",
    "feed_service": "NIGHTSHIFT_FEED_SERVICE",
    "dimensions": "NIGHTSHIFT_DIMENSIONS",
    "slice_top": "NIGHTSHIFT_SLICE_TOP",
}
VARIABLES = tuple(_NAMES.values())
_SECRETS = {
    "webhook_token",
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "telegram_bot_token",
    "telegram_webhook_secret",
}


def _int(var: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{var}: {value} is out of range ({low} to {high})")
    return value


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _dimensions(var: str, raw: str) -> tuple[str, ...]:
    """Feed column names kept as dimensions; `none` keeps none (every extra column summed)."""
    if raw.strip().lower() == "none":
        return ()
    names = tuple(name.lower() for name in _list(raw))
    for name in names:
        if not DIMENSION_NAME.fullmatch(name):
            raise SettingsError(f"{var}: {name!r} is not a column name ([a-z][a-z0-9_]{{0,31}})")
    if len(names) > MAX_DIMENSIONS:
        raise SettingsError(f"{var}: {len(names)} dimensions, at most {MAX_DIMENSIONS}")
    return names


def _actors(var: str, raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        platform, sep, user = item.partition(":")
        if not sep or not platform or not user:
            raise SettingsError(f"{var}: {item!r} is not platform:user_id (e.g. telegram:123)")
        if platform not in ("console", "slack", "telegram", "shell"):
            raise SettingsError(
                f"{var}: {item!r} names platform {platform!r}; use console, slack or telegram"
            )
    return items


def _url(var: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{var}: {raw!r} is not an http:// or https:// URL")
    return raw.rstrip("/")


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(var: str, raw: str, low: timedelta, high: timedelta) -> timedelta:
    found = _DURATION.match(raw.strip().lower())
    if found is None:
        raise SettingsError(f"{var}: {raw!r} is not a duration like 30s, 10m, 2h or 1d")
    value = timedelta(seconds=int(found.group(1)) * _SECONDS[found.group(2)])
    if not low <= value <= high:
        raise SettingsError(f"{var}: {raw!r} is out of range ({low} to {high})")
    return value


def _cron(var: str, raw: str, tz: ZoneInfo) -> str:
    try:
        CronTrigger.from_crontab(raw, timezone=tz)
    except ValueError as error:
        raise SettingsError(f"{var}: {raw!r} is not a 5-field cron expression ({error})") from None
    return raw


def _from_toml(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{path}: cannot be read as TOML ({error})") from None
    values: dict[str, str] = {}
    known = {v.lower(): v for v in VARIABLES}
    for key, value in data.items():
        if not isinstance(value, str | int | bool | list):
            continue  # tables ([routes], ...) belong to other readers
        name = known.get(key.lower()) or known.get(f"nightshift_{key}".lower())
        if name is None:
            raise SettingsError(f"{path}: unknown setting {key!r}")
        values[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, toml_path: Path | None = None
) -> Settings:
    """Settings from `nightshift.toml` (if present), overridden by the environment."""
    env = dict(os.environ if environ is None else environ)
    path = toml_path or Path(env.get("NIGHTSHIFT_CONFIG", "nightshift.toml"))
    raw: dict[str, str] = _from_toml(path) if path.is_file() else {}
    raw.update({k: v for k, v in env.items() if k in VARIABLES})
    raw = {k: v.strip() for k, v in raw.items() if v.strip()}

    def get(attr: str) -> str | None:
        return raw.get(_NAMES[attr])

    values: dict[str, object] = {}
    tz_name = get("timezone")
    if tz_name is not None:
        try:
            values["timezone"] = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"NIGHTSHIFT_TIMEZONE: {tz_name!r} is not a time zone (e.g. America/Sao_Paulo)"
            ) from None
    tz = values.get("timezone", ZoneInfo("America/Sao_Paulo"))
    assert isinstance(tz, ZoneInfo)  # noqa: S101 - set just above

    for attr, var in _NAMES.items():
        value = get(attr)
        if value is None or attr == "timezone":
            continue
        if attr in _SECRETS:
            values[attr] = Secret(value)
        elif attr == "port":
            values[attr] = _int(var, value, 1, 65535)
        elif attr == "max_body_bytes":
            values[attr] = _int(var, value, 1024, 1024**3)
        elif attr == "retention_days":
            values[attr] = _int(var, value, 1, 3650)
        elif attr == "leader_lease_seconds":
            values[attr] = _int(var, value, 3, 600)
        elif attr == "lang":
            if value.lower() not in ("pt", "en"):
                raise SettingsError(f"{var}: {value!r} must be pt or en")
            values[attr] = value.lower()
        elif attr == "telegram_mode":
            if value.lower() not in ("polling", "webhook"):
                raise SettingsError(f"{var}: {value!r} must be polling or webhook")
            values[attr] = value.lower()
        elif attr in ("briefing_cron", "handoff_cron"):
            values[attr] = _cron(var, value, tz)
        elif attr in ("operators", "admins"):
            values[attr] = _actors(var, value)
        elif attr == "telegram_chat_ids":
            ids = _list(value)
            for chat in ids:
                if not chat.lstrip("-").isdigit():
                    raise SettingsError(f"{var}: {chat!r} is not a Telegram chat id (a number)")
            values[attr] = ids
        elif attr in ("alertmanager_url", "slack_api_url", "telegram_api_url"):
            values[attr] = _url(var, value)
        elif attr == "runbooks_dir":
            folder = Path(value)
            if not folder.is_dir():
                raise SettingsError(f"{var}: {value!r} is not a folder")
            values[attr] = folder
        elif attr == "routes":
            try:
                values[attr] = parse_routes(value)
            except RouteError as error:
                raise SettingsError(f"{var}: {error}") from None
        elif attr == "escalation":
            try:
                values[attr] = parse_destinations(value, "escalation")
            except RouteError as error:
                raise SettingsError(f"{var}: {error}") from None
        elif attr == "oncall":
            values[attr] = _actors(var, value)
        elif attr == "escalate_after" or attr == "correlation_window":
            values[attr] = _duration(var, value, timedelta(minutes=1), timedelta(days=1))
        elif attr == "avg_ticket":
            try:
                ticket = float(value)
            except ValueError:
                raise SettingsError(f"{var}: {value!r} is not a number (e.g. 87.50)") from None
            if not 0 < ticket < 1e9:
                raise SettingsError(f"{var}: {value!r} must be a positive amount")
            values[attr] = ticket
        elif attr == "currency":
            if not re.fullmatch(r"[A-Za-z]{3}", value):
                raise SettingsError(f"{var}: {value!r} is not a currency code like BRL or USD")
            values[attr] = value.upper()
        elif attr == "correlation_labels":
            labels = _list(value)
            for label in labels:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
                    raise SettingsError(f"{var}: {label!r} is not a label name")
            values[attr] = labels
        elif attr == "dimensions":
            values[attr] = _dimensions(var, value)
        elif attr == "slice_top":
            values[attr] = _int(var, value, 1, 1000)
        elif attr == "database_url":
            if "://" not in value:
                raise SettingsError(
                    f"{var}: {value!r} is not a SQLAlchemy URL (e.g. sqlite:///nightshift.db)"
                )
            values[attr] = value
        else:
            values[attr] = value
    settings = Settings(**values)  # type: ignore[arg-type]
    if (
        settings.telegram_mode == "webhook"
        and settings.telegram_bot_token
        and not (settings.telegram_webhook_secret)
    ):
        raise SettingsError(
            "NIGHTSHIFT_TELEGRAM_WEBHOOK_SECRET: required when NIGHTSHIFT_TELEGRAM_MODE=webhook"
        )
    return settings
