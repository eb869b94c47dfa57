"""Secrets masked out of runbook output before anyone sees or stores it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MASK = "***"
MIN_SECRET_LENGTH = 4
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack tokens (bot, user, app-level, refresh) and webhook paths.
    (re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/]+"), r"\1" + MASK),
    # Telegram bot tokens: 123456789:AA…
    (re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{30,}"), MASK),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2" + MASK),
    # key=value / key: value where the key names a secret.
    (
        re.compile(
            r"(?i)\b([A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|api[_-]?key|private[_-]?key)"
            r"[A-Za-z0-9_.-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
        ),
        r"\1" + MASK,
    ),
    # Credentials inside URLs: scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), r"\1" + MASK + "@"),
    # PEM private keys, should one be printed.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)"),
        MASK,
    ),
)


@dataclass(frozen=True, slots=True)
class Redactor:
    """Masks known secret values (longest first) and anything shaped like a token."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A redactor for these literal values (short or empty ones are ignored)."""
        unique = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        return cls(tuple(sorted(unique, key=len, reverse=True)))

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor.of((*self.secrets, *secrets))

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by `***`."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def looks_secret(variable: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    return SECRET_NAME.search(variable) is not None
