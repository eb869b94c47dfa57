"""Runbook parameters: value checks, `k=v` parsing, and `{param}` templates filled into argv."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from runbooks.errors import RunbookInvalidParams

PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
DEFAULT_MAX_LENGTH = 128
MAX_MAX_LENGTH = 1024
# Categories never allowed in a value: controls (NUL, newline, ESC…), format characters
# (zero-width and bidi overrides), surrogates, private use, unassigned, line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]{0,31})\}|[{}]")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One declared parameter: a full-match regex or a choice list, plus its limits."""

    name: str
    pattern: re.Pattern[str] | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None
    allow_dash: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        """A short human form: `service: nginx|postgresql (default nginx)`."""
        shape = "|".join(self.choices) if self.choices else self.pattern_text
        text = f"{self.name}: {shape}"
        if self.default is not None:
            text += f" (default {self.default})"
        return text

    @property
    def pattern_text(self) -> str:
        return self.pattern.pattern if self.pattern is not None else ""

    def check(self, value: str) -> str:
        """The value if acceptable; otherwise `RunbookInvalidParams` saying why."""
        if not isinstance(value, str):
            raise RunbookInvalidParams(
                f"{self.name}: value must be text", param=self.name, problem="type"
            )
        if value == "":
            raise RunbookInvalidParams(
                f"{self.name}: value is empty", param=self.name, problem="empty"
            )
        if len(value) > self.max_length:
            raise RunbookInvalidParams(
                f"{self.name}: value longer than {self.max_length} characters",
                param=self.name,
                problem="length",
            )
        for char in value:
            if unicodedata.category(char) in _REFUSED_CATEGORIES:
                raise RunbookInvalidParams(
                    f"{self.name}: control or invisible character U+{ord(char):04X} refused",
                    param=self.name,
                    problem="control",
                )
        if value.startswith("-") and not self.allow_dash:
            raise RunbookInvalidParams(
                f"{self.name}: value may not start with '-'", param=self.name, problem="dash"
            )
        if self.choices:
            if value not in self.choices:
                raise RunbookInvalidParams(
                    f"{self.name}: must be one of {', '.join(self.choices)}",
                    param=self.name,
                    problem="choice",
                )
        elif self.pattern is not None and self.pattern.fullmatch(value) is None:
            raise RunbookInvalidParams(
                f"{self.name}: value does not match {self.pattern.pattern}",
                param=self.name,
                problem="pattern",
            )
        return value


def compile_pattern(text: str) -> re.Pattern[str]:
    """A parameter regex: ASCII classes (`\\w` is never a Cyrillic look-alike), full match."""
    return re.compile(text, re.ASCII)


def resolve(specs: Sequence[ParamSpec], given: Mapping[str, str]) -> dict[str, str]:
    """Checked values for every declared parameter (defaults filled in); unknown names refused."""
    by_name = {spec.name: spec for spec in specs}
    for name in given:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise RunbookInvalidParams(
                f"unknown parameter {_shown(name)} (known: {known})",
                param=_shown(str(name)),
                problem="unknown",
            )
    values: dict[str, str] = {}
    for spec in specs:
        if spec.name in given:
            values[spec.name] = spec.check(given[spec.name])
        elif spec.default is not None:
            values[spec.name] = spec.default
        else:
            raise RunbookInvalidParams(
                f"missing parameter {spec.name}", param=spec.name, problem="missing"
            )
    return values


def parse_assignments(tokens: Iterable[str]) -> dict[str, str]:
    """`["service=nginx", "path=/"]` → a dict; anything but `name=value` is refused."""
    values: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        if not sep or PARAM_NAME.fullmatch(name) is None:
            raise RunbookInvalidParams(
                f"expected name=value, got {_shown(token)}",
                param=_shown(name),
                problem="syntax",
            )
        if name in values:
            raise RunbookInvalidParams(
                f"parameter {name} given twice", param=name, problem="duplicate"
            )
        values[name] = value
    return values


@dataclass(frozen=True, slots=True)
class Template:
    """One argv element: literal text and `{param}` slots; `{{`/`}}` are literal braces."""

    parts: tuple[tuple[bool, str], ...]  # (is_placeholder, text or param name)

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parsed element; `ValueError` for a lone brace or a malformed placeholder."""
        parts: list[tuple[bool, str]] = []
        literal: list[str] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            literal.append(text[pos : match.start()])
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
            elif match.group(1) is not None:
                if literal:
                    parts.append((False, "".join(literal)))
                    literal = []
                parts.append((True, match.group(1)))
            else:
                raise ValueError(f"lone {token!r} at position {match.start()} (write {token * 2})")
            pos = match.end()
        literal.append(text[pos:])
        if "".join(literal):
            parts.append((False, "".join(literal)))
        return cls(tuple(parts))

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(text for is_slot, text in self.parts if is_slot)

    def fill(self, values: Mapping[str, str]) -> str:
        """The element with each slot replaced by its value, once: values are never re-read."""
        return "".join(values[text] if is_slot else text for is_slot, text in self.parts)


def _shown(text: str) -> str:
    """A user string made safe for a one-line message: escaped and cut."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return repr(escaped[:40] + ("…" if len(escaped) > 40 else ""))
