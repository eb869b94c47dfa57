"""Who may do what: `platform:user_id` patterns for operators and admins."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from skills.core import Role


@dataclass(frozen=True, slots=True)
class Access:
    """Operators run read commands and safe runbooks; admins everything; nobody else anything.

    Patterns are `platform:user_id`, where the user part may be `*` (`console:*`). The shell
    (`nightshift runbook run` on the host) is always an admin: whoever has it owns the machine.
    """

    operators: tuple[str, ...] = ()
    admins: tuple[str, ...] = ("console:*",)

    def role_of(self, actor: str) -> Role | None:
        if actor.startswith("shell:") or _matches(self.admins, actor):
            return "admin"
        if _matches(self.operators, actor):
            return "operator"
        return None


def _matches(patterns: tuple[str, ...], actor: str) -> bool:
    platform, _, user = actor.partition(":")
    for pattern in patterns:
        p_platform, _, p_user = pattern.partition(":")
        if p_platform == platform and (p_user == "*" or fnmatchcase(user, p_user)):
            return True
    return False
