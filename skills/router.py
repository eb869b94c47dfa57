"""The dispatcher: text → skill, permission check, run; any failure becomes a polite reply."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from skills.access import Access
from skills.core import (
    Invocation,
    ProgressSink,
    Reply,
    SkillContext,
    SkillError,
    SkillRefused,
    SkillSpec,
    normalize,
)

log = logging.getLogger(__name__)

Observer = Callable[[str, float, str], None]  # (skill name, seconds, outcome)


@dataclass(frozen=True, slots=True)
class Match:
    skill: SkillSpec
    args: str


def _words(text: str) -> list[str]:
    words = text.split()
    if words:
        first = words[0].lstrip("/")
        words[0] = first.split("@", 1)[0]  # Telegram's `/status@MyBot`
        if not words[0]:
            words = words[1:]
    return words


class Router:
    """Finds the skill a text names: longest alias first, case and accents ignored."""

    def __init__(self, skills: Sequence[SkillSpec]) -> None:
        self.skills = tuple(skills)
        phrases: list[tuple[tuple[str, ...], SkillSpec, str]] = []
        for skill in self.skills:
            for phrase in (skill.name, *skill.aliases):
                phrases.append((tuple(normalize(phrase).split()), skill, ""))
            for phrase, args in skill.presets:
                phrases.append((tuple(normalize(phrase).split()), skill, args))
        phrases.sort(key=lambda p: len(p[0]), reverse=True)
        self._phrases = phrases

    def match(self, text: str) -> Match | None:
        original = _words(text)
        folded = [normalize(w) for w in original]
        for phrase, skill, preset in self._phrases:
            if tuple(folded[: len(phrase)]) == phrase:
                rest = " ".join(original[len(phrase) :])
                return Match(skill, f"{preset} {rest}".strip())
        return None

    def suggest(self, text: str) -> str | None:
        words = [normalize(w) for w in _words(text)]
        if not words:
            return None
        names = [normalize(s.name) for s in self.skills]
        names += [normalize(a) for s in self.skills for a in s.aliases if " " not in a]
        close = difflib.get_close_matches(words[0], names, n=1, cutoff=0.6)
        return close[0] if close else None


class Dispatcher:
    """Runs one invocation to one reply; never raises."""

    def __init__(
        self,
        skills: Sequence[SkillSpec],
        context: SkillContext,
        access: Access,
        observe: Observer | None = None,
    ) -> None:
        self.router = Router(skills)
        self._context = replace(context, skills=self.router.skills)
        self._access = access
        self._observe = observe

    @property
    def context(self) -> SkillContext:
        return self._context

    async def handle(self, inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        started = time.perf_counter()
        ctx = self._context
        role = self._access.role_of(inv.actor)
        if role is None:
            await self._audit_refusal(inv, "not in NIGHTSHIFT_OPERATORS or NIGHTSHIFT_ADMINS")
            return _refusal(ctx, inv)
        match = self.router.match(inv.text)
        if match is None:
            return self._unknown(inv)
        skill = match.skill
        if skill.access == "admin" and role != "admin":
            await self._audit_refusal(inv, f"{skill.name} needs an admin")
            return Reply(
                title=ctx.tr(
                    f"⛔ `{skill.name}` é só para administradores.",
                    f"⛔ `{skill.name}` is for admins only.",
                ),
                outcome="refused",
            )
        call_ctx = replace(ctx, role=role, invocation=inv, progress=progress)
        outcome = "ok"
        try:
            reply = await skill.run(inv, match.args, call_ctx)
            outcome = reply.outcome
        except SkillRefused as refused:
            await self._audit_refusal(inv, str(refused))
            reply, outcome = Reply(title=f"⛔ {refused}", outcome="refused"), "refused"
        except SkillError as error:
            reply, outcome = Reply(title=f"⚠️ {error}", outcome="error"), "error"
        except Exception:
            log.exception("skill %s failed for %s", skill.name, inv.actor)
            reply = Reply(
                title=ctx.tr(
                    f"⚠️ `{skill.name}` falhou por um erro interno; ele foi registrado no log.",
                    f"⚠️ `{skill.name}` failed with an internal error; it has been logged.",
                ),
                outcome="error",
            )
            outcome = "error"
        if self._observe is not None:
            self._observe(skill.name, time.perf_counter() - started, outcome)
        return reply

    def _unknown(self, inv: Invocation) -> Reply:
        ctx = self._context
        typed = " ".join(inv.text.split()[:3])[:40]
        hint = self.router.suggest(inv.text)
        maybe = ctx.tr(f" Você quis dizer `{hint}`?", f" Did you mean `{hint}`?") if hint else ""
        return Reply(
            title=ctx.tr(
                f"Não conheço o comando `{typed}`.{maybe} Digite `ajuda` para ver os comandos.",
                f"I don't know the command `{typed}`.{maybe} Type `help` for the commands.",
            ),
            outcome="error",
        )

    async def _audit_refusal(self, inv: Invocation, reason: str) -> None:
        ctx = self._context
        try:
            await ctx.call(
                ctx.store.record_audit,
                inv.actor,
                "chat.refused",
                {"text": inv.text[:200], "reason": reason},
                "refused",
                ctx.clock.now(),
            )
        except Exception:  # the refusal must still be answered if the store is down
            log.warning("could not audit a refusal for %s", inv.actor)


def _refusal(ctx: SkillContext, inv: Invocation) -> Reply:
    return Reply(
        title=ctx.tr(
            "⛔ Você não tem acesso a este bot. Peça a um administrador para incluir "
            f"`{inv.actor}` em NIGHTSHIFT_OPERATORS.",
            "⛔ You are not allowed to use this bot. Ask an admin to add "
            f"`{inv.actor}` to NIGHTSHIFT_OPERATORS.",
        ),
        sections=(),
        outcome="refused",
    )
