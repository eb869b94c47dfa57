"""The chat core: names and aliases in both languages, periods, permissions, failures."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import timedelta

import pytest

import skills
from bot.app import Core
from skills.core import Invocation, Reply, SkillContext, SkillError, SkillSpec
from skills.periods import parse_period
from skills.registry import SKILLS
from skills.router import Dispatcher, Router

ROUTER = Router(SKILLS)


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("status", "status", ""),
        ("STATUS do Sistema", "status", ""),
        ("como está o sistema", "status", ""),
        ("/status@NightshiftBot", "status", ""),
        ("health", "status", ""),
        ("Alertas todos", "alertas", "todos"),
        ("alerts", "alertas", ""),
        ("anomalias últimas 2 horas", "anomalias", "últimas 2 horas"),
        ("anomalies last 30m", "anomalias", "last 30m"),
        ("Métricas failed", "metricas", "failed"),
        ("taxa de aprovação", "metricas", "aprovacao"),
        ("incidente Aprovações caindo no Pix", "incidente", "Aprovações caindo no Pix"),
        ("?", "ajuda", ""),
        ("help", "ajuda", ""),
    ],
)
def test_names_and_aliases_regardless_of_case_and_accents(text: str, name: str, args: str) -> None:
    match = ROUTER.match(text)
    assert match is not None
    assert (match.skill.name, match.args) == (name, args)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30m", 30),
        ("2h", 120),
        ("24h", 1440),
        ("1d", 1440),
        ("última hora", 60),
        ("últimas 2 horas", 120),
        ("last 30 minutes", 30),
        ("last 2 hours", 120),
        ("", 60),
    ],
)
def test_periods(text: str, minutes: int) -> None:
    assert parse_period(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["ontem", "2x", "0m", "100d"])
def test_unreadable_periods_are_refused_politely(text: str) -> None:
    with pytest.raises(SkillError, match=r"30m|1m"):
        parse_period(text)


def test_every_skill_module_is_registered_and_in_help() -> None:
    handlers = {spec.run.__module__ for spec in SKILLS}
    infrastructure = {
        "core",
        "router",
        "registry",
        "access",
        "periods",
        "formatting",
        "baseline",
        "notices",
        "wording",
        "findings",
    }
    modules = {
        f"skills.{m.name}"
        for m in pkgutil.iter_modules(skills.__path__)
        if m.name not in infrastructure
    }
    for module in modules:
        importlib.import_module(module)
    assert modules <= handlers


async def test_help_lists_every_skill(core: Core) -> None:
    reply = await core.handle(Invocation("console", "op", "ajuda"))
    text = reply.plain_text()
    for spec in SKILLS:
        assert spec.usage in text


async def test_stranger_is_refused_and_audited(core: Core) -> None:
    reply = await core.handle(Invocation("telegram", "666", "status"))
    assert reply.outcome == "refused"
    assert "telegram:666" in reply.title
    [entry] = core.store.audit_entries("chat.refused")
    assert entry.actor == "telegram:666"


async def test_operator_gets_answers(core: Core) -> None:
    reply = await core.handle(Invocation("telegram", "100", "status"))
    assert reply.outcome == "ok"


async def test_unknown_command_gets_a_hint(core: Core) -> None:
    reply = await core.handle(Invocation("console", "op", "stauts"))
    assert reply.outcome == "error"
    assert "status" in reply.title and "ajuda" in reply.title


async def test_english_replies(core: Core) -> None:
    from dataclasses import replace

    dispatcher = Dispatcher(
        SKILLS, replace(core.dispatcher.context, lang="en"), core.dispatcher._access
    )
    reply = await dispatcher.handle(Invocation("console", "op", "ajuda"))
    assert reply.title.endswith("commands")


async def test_a_crashing_skill_is_a_polite_reply(core: Core) -> None:
    async def boom(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
        raise RuntimeError("kaboom")

    spec = SkillSpec(name="boom", aliases=(), summary_pt="", summary_en="", usage="boom", run=boom)
    dispatcher = Dispatcher((spec,), core.dispatcher.context, core.dispatcher._access)
    reply = await dispatcher.handle(Invocation("console", "op", "boom"))
    assert reply.outcome == "error"
    assert "kaboom" not in reply.plain_text()
    assert "erro interno" in reply.title


async def test_admin_only_skill_refuses_operators(core: Core) -> None:
    async def secret(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
        return Reply(title="done")

    spec = SkillSpec(
        name="perigo",
        aliases=(),
        summary_pt="",
        summary_en="",
        usage="perigo",
        run=secret,
        access="admin",
    )
    dispatcher = Dispatcher((spec,), core.dispatcher.context, core.dispatcher._access)
    assert (await dispatcher.handle(Invocation("telegram", "100", "perigo"))).outcome == "refused"
    assert (await dispatcher.handle(Invocation("telegram", "1", "perigo"))).title == "done"
