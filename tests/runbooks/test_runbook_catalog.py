"""The whitelist: shipped runbooks load; a broken file is one line naming the file and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runbooks.catalog import default_folder, load_catalog
from runbooks.errors import RunbookConfigError, RunbookInvalidParams, RunbookNotFound
from runbooks.params import Template, parse_assignments

GOOD = """\
name: ok
steps:
  - name: echo
    run: [python3, -c, "print(1)"]
    timeout: 5
"""


def test_shipped_library_loads_with_the_promised_runbooks() -> None:
    catalog = load_catalog()

    names = {runbook.name for runbook in catalog}
    assert {
        "check-feed",
        "check-http",
        "disk-space",
        "alertmanager-status",
        "restart-service",
    } <= names
    assert catalog.get("restart-service").danger is True
    assert not any(r.danger for r in catalog if r.name != "restart-service")
    assert default_folder().name == "library"


def test_shipped_runbooks_build_exact_argv() -> None:
    catalog = load_catalog()

    restart = catalog.get("restart-service").plan({"service": "nginx"})
    assert restart.argvs == (
        ("systemctl", "--no-ask-password", "restart", "--", "nginx"),
        ("systemctl", "--no-ask-password", "is-active", "--", "nginx"),
    )
    assert catalog.get("disk-space").plan({}).argvs[0] == ("df", "-h", "--", "/")
    probe = catalog.get("check-http").plan({"url": "http://127.0.0.1:9093/-/healthy"})
    assert probe.argvs[0][0] == "python3"
    assert probe.argvs[0][-1] == "http://127.0.0.1:9093/-/healthy"


def test_shipped_service_choice_list_is_the_law() -> None:
    restart = load_catalog().get("restart-service")

    with pytest.raises(RunbookInvalidParams, match="must be one of"):
        restart.plan({"service": "sshd"})
    with pytest.raises(RunbookInvalidParams, match="missing parameter service"):
        restart.plan({})


def test_unknown_runbook_is_not_found(write_runbook: Callable[[str, str], Path]) -> None:
    path = write_runbook("ok.yaml", GOOD)

    with pytest.raises(RunbookNotFound):
        load_catalog(path.parent).get("rm")


def test_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RunbookConfigError, match="NIGHTSHIFT_RUNBOOKS_DIR"):
        load_catalog(tmp_path / "nope")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: [\n", "invalid YAML at line"),
        ("- just a list\n", "(top level)"),
        (GOOD.replace("name: ok", "name: Bad Name"), "name:"),
        (GOOD + "dangerous: true\n", "dangerous: unknown key"),
        (GOOD + "danger: 'yes please'\n", "danger:"),
        (GOOD.replace('run: [python3, -c, "print(1)"]', 'run: "rm -rf /tmp/x"'), "steps[0].run:"),
        (GOOD.replace('run: [python3, -c, "print(1)"]', "run: []"), "steps[0].run:"),
        (GOOD.replace("timeout: 5", "timeout: -1"), "steps[0].timeout:"),
        (GOOD.replace("timeout: 5", "timeout: forever"), "steps[0].timeout:"),
        (GOOD.replace("timeout: 5", "timeout: 5\n    shell: true"), "steps[0].shell:"),
        (GOOD.replace("name: echo", "name: ''"), "steps[0].name:"),
        (GOOD.replace('"print(1)"', '"{what}"'), "steps[0].run[2]: unknown parameter"),
        (GOOD.replace('"print(1)"', '"print({1})"'), "steps[0].run[2]: lone '{'"),
        (GOOD.replace("[python3,", '["{prog}",') + "params:\n  prog: [ls]\n", "steps[0].run[0]"),
        (GOOD + "params:\n  x: '[a-z'\n", "params.x.pattern: invalid regex"),
        (GOOD + "params:\n  x: []\n", "params.x.choices:"),
        (GOOD + "params:\n  x: {pattern: a, choices: [a]}\n", "params.x: needs exactly one"),
        (GOOD + "params:\n  x: {choices: [a], default: b}\n", "params.x.default:"),
        (GOOD + "params:\n  x: {choices: ['-rf']}\n", "params.x.choices:"),
        (GOOD + "params:\n  x: {pattern: '.*', max_length: 0}\n", "params.x.max_length:"),
        (GOOD + "params:\n  Bad: '.*'\n", "params.Bad:"),
        (GOOD + "params:\n  x: '[a-z]+'\n", "params.x: declared but used by no step"),
        (GOOD + "env: {PATH: /tmp}\n", "env.PATH:"),
        (GOOD + "env: {'A B': x}\n", "env.A B:"),
        (GOOD + "cwd: relative/dir\n", "cwd:"),
    ],
)
def test_invalid_file_is_one_line_naming_file_and_field(
    write_runbook: Callable[[str, str], Path], text: str, field: str
) -> None:
    path = write_runbook("broken.yaml", text)

    with pytest.raises(RunbookConfigError) as caught:
        load_catalog(path.parent)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert field in message


def test_duplicate_names_are_refused(write_runbook: Callable[[str, str], Path]) -> None:
    write_runbook("a.yaml", GOOD)
    path = write_runbook("b.yaml", GOOD)

    with pytest.raises(RunbookConfigError, match=r"b\.yaml: name: 'ok' already defined in a\.yaml"):
        load_catalog(path.parent)


def test_short_forms_and_options(write_runbook: Callable[[str, str], Path]) -> None:
    path = write_runbook(
        "full.yml",
        """\
        name: full
        description: >
          Two lines
          folded
        params:
          host: '[a-z.]+'
          mode: [fast, slow]
          delta: {pattern: '-?[0-9]+', allow_dash: true, default: '-1'}
        env:
          KEEP:
          FIXED: value
        cwd: /tmp
        steps:
          - name: s
            run: [prog, "--host={host}", "{mode}", "{delta}", "{{literal}}", 7]
        """,
    )

    runbook = load_catalog(path.parent).get("full")

    assert runbook.description == "Two lines folded"
    assert runbook.env == (("KEEP", None), ("FIXED", "value"))
    assert runbook.cwd == Path("/tmp")
    assert runbook.steps[0].timeout == 60
    plan = runbook.plan({"host": "db.local", "mode": "fast"})
    assert plan.argvs == (("prog", "--host=db.local", "fast", "-1", "{literal}", "7"),)


def test_template_fills_once_and_never_rereads_values() -> None:
    template = Template.parse("--a={a}-{b}")

    assert template.fill({"a": "{b}", "b": "x"}) == "--a={b}-x"
    assert template.placeholders == ("a", "b")


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    for bad in (["a"], ["=1"], ["A=1"], ["--a=1"], ["a=1", "a=2"], ["a b=1"]):
        with pytest.raises(RunbookInvalidParams):
            parse_assignments(bad)
