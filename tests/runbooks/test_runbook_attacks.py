"""Hostile parameter values: nothing outside the whitelist ever runs, and what runs is exact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from runbooks.catalog import Plan
from runbooks.errors import RunbookInvalidParams
from runbooks.service import RunbookService

from .conftest import RecordingAudit, RecordingSpawner

ECHO = "import sys, json; print(json.dumps(sys.argv[1:]))"
RUNBOOK = """\
name: echo-args
params:
  name: '[a-z][a-z0-9-]{0,30}'
  word: '\\w{1,20}'
  path: [/, /var]
  note: {pattern: '.{1,200}', max_length: 200}
steps:
  - name: echo
    run: [python3, -c, "ECHO", "{name}", "{word}", "--path={path}", "{note}"]
    timeout: 10
""".replace("ECHO", ECHO)
BENIGN = {"name": "ok", "word": "abc", "path": "/", "note": "hello"}

ATTACKS = [
    # shell metacharacters and command substitution
    "; rm -rf /",
    "&& id",
    "| cat /etc/passwd",
    "|| true",
    "$(id)",
    "`id`",
    "${IFS}cat${IFS}/etc/passwd",
    "$HOME",
    "a;b",
    "a|b",
    "a&b",
    "> /tmp/pwned",
    "< /etc/shadow",
    "*",
    "~root",
    "$(curl http://169.254.169.254/)",
    "'; DROP TABLE audit; --",
    '" onmouseover="alert(1)',
    "<script>alert(1)</script>",
    # newlines, NUL and other control characters
    "a\nb",
    "ok\n--now",
    "a\rb",
    "x\x00y",
    "\x00",
    "\\x00",
    "\x1b[31mred",
    "\ttab",
    "\u2028id",
    "\x7f",
    # option injection
    "--output=/etc/passwd",
    "-rf",
    "-",
    "--",
    "-o/tmp/x",
    " -rf",
    # paths
    "../../etc/passwd",
    "/etc/passwd",
    "....//....//etc/passwd",
    "%2e%2e%2fetc%2fpasswd",
    "file:///etc/passwd",
    "/var; ls",
    "/var\n/etc",
    "/ ",
    "C:\\Windows\\System32",
    # length
    "a" * 201,
    "a" * 100_000,
    "",
    # Unicode look-alikes and invisible characters
    "ｎｇｉｎｘ",
    "nginх",  # Cyrillic х
    "ok\u200b",
    "\u202eevil",
    "ng\u00adinx",
    "－rf",
    "‐rf",
    "—rf",
    "\ud800",
    "٣",  # Arabic-Indic digit three
    # YAML and template syntax in values
    "!!python/object/apply:os.system ['id']",
    "{a: 1}",
    "[1, 2]",
    "key: value\nother: x",
    "&anchor *anchor",
    "{name}",
    "{{name}}",
    "%s%s%s%n",
]
# Values the permissive `note` must refuse whatever its regex says.
NOTE_REFUSED = {
    "a\nb", "ok\n--now", "a\rb", "x\x00y", "\x00", "\x1b[31mred", "\ttab", "\u2028id", "\x7f",
    "--output=/etc/passwd", "-rf", "-", "--", "-o/tmp/x", "a" * 201, "a" * 100_000, "",
    "ok\u200b", "\u202eevil", "ng\u00adinx", "\ud800", "/var\n/etc", "key: value\nother: x",
}  # fmt: skip
CASES = [(param, value) for param in ("name", "word", "path", "note") for value in ATTACKS]


def test_the_corpus_is_big_enough() -> None:
    assert len(set(ATTACKS)) == len(ATTACKS) >= 50


@pytest.fixture
def service(
    write_runbook: Callable[[str, str], Path], make_service: Callable[..., RunbookService]
) -> RunbookService:
    write_runbook("echo.yaml", RUNBOOK)
    return make_service()


@pytest.mark.parametrize(("param", "value"), CASES, ids=lambda v: ascii(v)[:40])
async def test_hostile_value_never_runs_outside_the_whitelist(
    service: RunbookService, spawner: object, param: str, value: str
) -> None:
    params = {**BENIGN, param: value}
    expected = (
        "python3",
        "-c",
        ECHO,
        params["name"],
        params["word"],
        f"--path={params['path']}",
        params["note"],
    )
    executed: list[tuple[str, ...]] = spawner.argvs  # type: ignore[attr-defined]

    if param != "note" or value in NOTE_REFUSED:
        with pytest.raises(RunbookInvalidParams) as refused:
            await service.request("console:root", "operator", "echo-args", params)
        assert refused.value.param == param
        assert executed == []
        return

    plan = await service.request("console:root", "operator", "echo-args", params)
    assert value not in NOTE_REFUSED
    assert isinstance(plan, Plan)
    result = await service.execute(plan, "console:root")
    # Exactly one execution, the whitelisted program, the value as one whole argv element.
    assert executed == [expected]
    assert result.status == "ok"
    assert json.loads(result.steps[0].output[0]) == list(expected[3:])


async def test_shell_syntax_reaches_the_program_as_inert_text(
    service: RunbookService, spawner: object
) -> None:
    for value in ("; rm -rf /", "$(id)", "`id`", "| cat /etc/passwd", "{name}"):
        plan = await service.request(
            "console:root", "operator", "echo-args", {**BENIGN, "note": value}
        )
        assert isinstance(plan, Plan)
        result = await service.execute(plan, "console:root")
        assert json.loads(result.steps[0].output[0])[-1] == value
    assert len(spawner.argvs) == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "tokens",
    [
        ["note=a", ";", "rm", "-rf", "/"],
        ["note=x", "--path=/etc"],
        ["note=x", "path=/var", "path=/"],
        ["shell=true"],
    ],
)
async def test_extra_words_and_unknown_names_are_refused_and_audited(
    service: RunbookService, spawner: RecordingSpawner, audit: RecordingAudit, tokens: list[str]
) -> None:
    with pytest.raises(RunbookInvalidParams):
        await service.request("console:root", "operator", "echo-args", tokens)

    assert spawner.argvs == []
    assert audit.actions() == [("runbook.request", "invalid")]
