"""The runbook whitelist: YAML files loaded and validated into frozen `Runbook` values."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import yaml

from runbooks.errors import RunbookConfigError, RunbookInvalidParams, RunbookNotFound
from runbooks.params import (
    DEFAULT_MAX_LENGTH,
    MAX_MAX_LENGTH,
    PARAM_NAME,
    ParamSpec,
    Template,
    compile_pattern,
    resolve,
)

logger = logging.getLogger(__name__)

RUNBOOK_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
_TOP_KEYS = frozenset({"name", "description", "danger", "params", "steps", "env", "cwd"})
_STEP_KEYS = frozenset({"name", "run", "timeout"})
_PARAM_KEYS = frozenset(
    {"pattern", "choices", "default", "allow_dash", "max_length", "description"}
)


def default_folder() -> Path:
    """The shipped whitelist, `runbooks/library`."""
    return Path(__file__).parent / "library"


@dataclass(frozen=True, slots=True)
class Step:
    """One program with its arguments; no shell, ever."""

    name: str
    run: tuple[Template, ...]
    timeout: float

    @property
    def program(self) -> str:
        return self.run[0].fill({})


@dataclass(frozen=True, slots=True)
class Runbook:
    """One whitelisted runbook as its file declares it."""

    name: str
    description: str
    danger: bool
    params: tuple[ParamSpec, ...]
    steps: tuple[Step, ...]
    env: tuple[tuple[str, str | None], ...] = ()  # value None: inherited from the bot
    cwd: Path | None = None
    source: Path | None = None

    def plan(self, given: Mapping[str, str]) -> Plan:
        """The exact argv of every step for these parameter values (checked first)."""
        values = resolve(self.params, given)
        argvs = tuple(tuple(element.fill(values) for element in step.run) for step in self.steps)
        return Plan(runbook=self, params=tuple(values.items()), argvs=argvs)


@dataclass(frozen=True, slots=True)
class Plan:
    """A runbook with checked parameters and the argv each step will run."""

    runbook: Runbook
    params: tuple[tuple[str, str], ...]
    argvs: tuple[tuple[str, ...], ...]
    ticket: str = field(default="", compare=False)  # set by the service when authorized

    @property
    def param_dict(self) -> dict[str, str]:
        return dict(self.params)


@dataclass(frozen=True, slots=True)
class Catalog:
    """All runbooks of one folder, by name."""

    runbooks: tuple[Runbook, ...]
    folder: Path | None = None

    def get(self, name: str) -> Runbook:
        """The runbook called `name`, or `RunbookNotFound`."""
        for runbook in self.runbooks:
            if runbook.name == name:
                return runbook
        raise RunbookNotFound(name)

    def __iter__(self) -> Iterator[Runbook]:
        return iter(self.runbooks)

    def __len__(self) -> int:
        return len(self.runbooks)


def load_catalog(folder: Path | None = None) -> Catalog:
    """Every `*.yaml`/`*.yml` of `folder` (default: the shipped library), validated.

    Raises `RunbookConfigError` with one line naming the file and the field at fault.
    """
    folder = default_folder() if folder is None else folder
    if not folder.is_dir():
        raise RunbookConfigError(f"{folder}: runbooks folder not found (NIGHTSHIFT_RUNBOOKS_DIR)")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    runbooks: list[Runbook] = []
    seen: dict[str, Path] = {}
    for path in files:
        runbook = load_runbook(path)
        if runbook.name in seen:
            raise RunbookConfigError(
                f"{path}: name: {runbook.name!r} already defined in {seen[runbook.name].name}"
            )
        seen[runbook.name] = path
        runbooks.append(runbook)
    logger.info("loaded %d runbooks from %s", len(runbooks), folder)
    return Catalog(tuple(sorted(runbooks, key=lambda r: r.name)), folder)


def load_runbook(path: Path) -> Runbook:
    """One runbook file, validated; `RunbookConfigError` naming the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise RunbookConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    return _Parser(path).runbook(data)


class _Parser:
    """Validation of one file's data, each error naming `file: field: problem`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> RunbookConfigError:
        return RunbookConfigError(f"{self.path}: {where}: {problem}")

    def runbook(self, data: object) -> Runbook:
        if not isinstance(data, dict):
            raise self.fail("(top level)", "must be a mapping with name, steps, …")
        self.keys(data, _TOP_KEYS, "")
        name = data.get("name")
        if not isinstance(name, str) or RUNBOOK_NAME.fullmatch(name) is None:
            raise self.fail("name", "required, lowercase letters, digits and '-' (max 63)")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be text")
        danger = data.get("danger", False)
        if not isinstance(danger, bool):
            raise self.fail("danger", "must be true or false")
        params = self.params(data.get("params") or {})
        steps = self.steps(data.get("steps"), {p.name for p in params})
        return Runbook(
            name=name,
            description=" ".join(description.split()),
            danger=danger,
            params=params,
            steps=steps,
            env=self.env(data.get("env")),
            cwd=self.cwd(data.get("cwd")),
            source=self.path,
        )

    def keys(self, data: dict[object, object], allowed: frozenset[str], where: str) -> None:
        for key in data:
            if key not in allowed:
                field_name = f"{where}.{key}" if where else str(key)
                raise self.fail(field_name, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def params(self, data: object) -> tuple[ParamSpec, ...]:
        if not isinstance(data, dict):
            raise self.fail("params", "must be a mapping of name to regex or choice list")
        return tuple(self.param(name, spec) for name, spec in data.items())

    def param(self, name: object, data: object) -> ParamSpec:
        where = f"params.{name}"
        if not isinstance(name, str) or PARAM_NAME.fullmatch(name) is None:
            raise self.fail(where, "parameter names are lowercase letters, digits and '_'")
        if isinstance(data, str):
            data = {"pattern": data}
        elif isinstance(data, list):
            data = {"choices": data}
        if not isinstance(data, dict):
            raise self.fail(where, "must be a regex, a choice list, or a mapping")
        self.keys(data, _PARAM_KEYS, where)
        pattern_text = data.get("pattern")
        choices_data = data.get("choices")
        if (pattern_text is None) == (choices_data is None):
            raise self.fail(where, "needs exactly one of pattern or choices")
        pattern = None
        choices: tuple[str, ...] = ()
        if pattern_text is not None:
            if not isinstance(pattern_text, str) or not pattern_text:
                raise self.fail(f"{where}.pattern", "must be a non-empty regex")
            try:
                pattern = compile_pattern(pattern_text)
            except re.error as exc:
                raise self.fail(f"{where}.pattern", f"invalid regex: {exc}") from exc
        else:
            if not isinstance(choices_data, list) or not choices_data:
                raise self.fail(f"{where}.choices", "must be a non-empty list")
            if not all(isinstance(c, str) and c for c in choices_data):
                raise self.fail(f"{where}.choices", "every choice must be non-empty text")
            choices = tuple(choices_data)
        allow_dash = data.get("allow_dash", False)
        if not isinstance(allow_dash, bool):
            raise self.fail(f"{where}.allow_dash", "must be true or false")
        max_length = data.get("max_length", DEFAULT_MAX_LENGTH)
        if (
            not isinstance(max_length, int)
            or isinstance(max_length, bool)
            or not 1 <= max_length <= MAX_MAX_LENGTH
        ):
            raise self.fail(f"{where}.max_length", f"must be an integer 1..{MAX_MAX_LENGTH}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail(f"{where}.description", "must be text")
        spec = ParamSpec(
            name=name,
            pattern=pattern,
            choices=choices,
            allow_dash=allow_dash,
            max_length=max_length,
            description=description,
        )
        for choice in choices:
            self.checked(spec, choice, f"{where}.choices")
        default = data.get("default")
        if default is not None:
            if not isinstance(default, str):
                raise self.fail(f"{where}.default", "must be text (quote it)")
            self.checked(spec, default, f"{where}.default")
        return replace(spec, default=default)

    def checked(self, spec: ParamSpec, value: str, where: str) -> None:
        try:
            spec.check(value)
        except RunbookInvalidParams as exc:
            raise self.fail(where, f"{value!r} refused by its own rules: {exc}") from exc

    def steps(self, data: object, params: set[str]) -> tuple[Step, ...]:
        if not isinstance(data, list) or not data:
            raise self.fail("steps", "required, a non-empty list")
        steps = tuple(self.step(i, item, params) for i, item in enumerate(data))
        used = {name for step in steps for element in step.run for name in element.placeholders}
        unused = sorted(params - used)
        if unused:
            raise self.fail(f"params.{unused[0]}", "declared but used by no step")
        return steps

    def step(self, index: int, data: object, params: set[str]) -> Step:
        where = f"steps[{index}]"
        if not isinstance(data, dict):
            raise self.fail(where, "must be a mapping with name, run, timeout")
        self.keys(data, _STEP_KEYS, where)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(f"{where}.name", "required text")
        run = data.get("run")
        if isinstance(run, str):
            raise self.fail(f"{where}.run", "must be an argv list, not a command line (no shell)")
        if not isinstance(run, list) or not run:
            raise self.fail(f"{where}.run", "required, a non-empty argv list")
        elements: list[Template] = []
        for i, item in enumerate(run):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.fail(f"{where}.run[{i}]", "must be text")
            try:
                element = Template.parse(str(item))
            except ValueError as exc:
                raise self.fail(f"{where}.run[{i}]", str(exc)) from exc
            for placeholder in element.placeholders:
                if i == 0:
                    raise self.fail(f"{where}.run[0]", "the program may not be a parameter")
                if placeholder not in params:
                    raise self.fail(f"{where}.run[{i}]", f"unknown parameter {{{placeholder}}}")
            elements.append(element)
        if not elements[0].fill({}):
            raise self.fail(f"{where}.run[0]", "the program is empty")
        timeout = data.get("timeout", DEFAULT_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise self.fail(
                f"{where}.timeout", f"must be seconds, more than 0, at most {MAX_TIMEOUT:g}"
            )
        return Step(name=name.strip(), run=tuple(elements), timeout=float(timeout))

    def env(self, data: object) -> tuple[tuple[str, str | None], ...]:
        if data is None:
            return ()
        if isinstance(data, list):
            data = dict.fromkeys(data)
        if not isinstance(data, dict):
            raise self.fail("env", "must be a list of names to pass on, or a mapping name: value")
        pairs: list[tuple[str, str | None]] = []
        for key, value in data.items():
            if not isinstance(key, str) or ENV_NAME.fullmatch(key) is None:
                raise self.fail(f"env.{key}", "not a valid variable name")
            if key == "PATH":
                raise self.fail("env.PATH", "PATH is set by the bot")
            if value is not None and not isinstance(value, str):
                raise self.fail(f"env.{key}", "value must be text (quote it) or empty to inherit")
            if value is not None and "\x00" in value:
                raise self.fail(f"env.{key}", "NUL in value")
            pairs.append((key, value))
        return tuple(pairs)

    def cwd(self, data: object) -> Path | None:
        if data is None:
            return None
        if not isinstance(data, str) or not PurePosixPath(data).is_absolute():
            raise self.fail("cwd", "must be an absolute path")
        return Path(data)
