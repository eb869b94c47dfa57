"""Routing: which chats hear of an alert or finding, from its labels (`NIGHTSHIFT_ROUTES`).

A route is `matchers -> destinations`: matchers in Alertmanager's syntax (`team=payments`,
`env!=dev`, `service=~pay.*`, `job!~test.*`, anchored regular expressions), comma-separated,
all of which must hold; destinations are `telegram:<chat id>`, `slack:<channel>` or `console`.
Routes are tried in order and the first that matches wins; an alert no route matches goes
where its severity sends it (critical: every chat; warning: Slack and the console).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_DESTINATION = re.compile(r"^(?:telegram:-?\d+|slack:[A-Za-z0-9_#.-]+|console)$")


class RouteError(ValueError):
    """A route that cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def __call__(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class Route:
    """One `matchers -> destinations` rule, as written (`text`) and as read."""

    text: str
    matchers: tuple[Matcher, ...]
    destinations: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m(labels) for m in self.matchers)


def parse_destinations(text: str, what: str) -> tuple[str, ...]:
    """`telegram:-100123,slack:C0PAY,console` → the destinations, each checked."""
    items = tuple(d.strip() for d in text.split(",") if d.strip())
    if not items:
        raise RouteError(f"{what}: no destination")
    for item in items:
        if not _DESTINATION.match(item):
            raise RouteError(
                f"{what}: {item!r} is not a destination (telegram:<chat id>, slack:<channel> "
                "or console)"
            )
    return items


def parse_routes(text: str) -> tuple[Route, ...]:
    """Routes separated by `;` (or new lines), in order."""
    routes = []
    pieces = [p.strip() for p in re.split(r"[;\n]", text) if p.strip()]
    for number, piece in enumerate(pieces, 1):
        what = f"route {number} ({piece!r})"
        left, arrow, right = piece.partition("->")
        if not arrow:
            raise RouteError(f"{what}: expected `matchers -> destinations`")
        matchers = []
        for part in (p for p in left.split(",") if p.strip()):
            found = _MATCHER.match(part)
            if found is None:
                raise RouteError(f"{what}: {part.strip()!r} is not a matcher like team=payments")
            name, op, value = found.groups()
            value = value.strip("\"'")
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as error:
                    raise RouteError(
                        f"{what}: {value!r} is not a regular expression ({error})"
                    ) from None
            matchers.append(Matcher(name, op, value))
        if not matchers:
            raise RouteError(f"{what}: no matcher (use severity=~.* to match everything)")
        routes.append(Route(piece, tuple(matchers), parse_destinations(right, what)))
    return tuple(routes)


@dataclass(frozen=True, slots=True)
class Routes:
    """The route rules, then the severity table for what no rule matches."""

    rules: tuple[Route, ...]
    table: Mapping[str, tuple[str, ...]]

    def __call__(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        for rule in self.rules:
            if rule.matches(labels):
                return rule.destinations
        return self.severity(labels.get("severity", ""))

    def severity(self, severity: str) -> tuple[str, ...]:
        """The default route of a severity (what no rule matches goes there)."""
        return self.table.get(severity.lower(), self.table.get("*", ()))

    def everywhere(self) -> tuple[str, ...]:
        """Every destination a route or the table names (for reports and courier start-up)."""
        found = [d for rule in self.rules for d in rule.destinations]
        found += [d for ds in self.table.values() for d in ds]
        return tuple(dict.fromkeys(found))

    @classmethod
    def default(
        cls,
        slack: str | None,
        telegram: Sequence[str],
        console: bool,
        rules: tuple[Route, ...] = (),
    ) -> Routes:
        """Critical → the Slack channel and every Telegram chat; warning → Slack only; the
        console hears both when it is on."""
        slack_dest = (f"slack:{slack}",) if slack else ()
        telegram_dest = tuple(f"telegram:{c}" for c in telegram)
        console_dest = ("console",) if console else ()
        return cls(
            rules,
            {
                "critical": slack_dest + telegram_dest + console_dest,
                "warning": slack_dest + console_dest,
                "*": console_dest,
            },
        )
