"""The benchmark report: figures beside their goals and baselines, rendered as markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Subject = Literal["value", "ratio"]
Verdict = Literal["pass", "MISS", "not measured", "—"]


@dataclass(frozen=True, slots=True)
class Goal:
    """A limit on a figure's value or on its ratio to the baseline, e.g. ratio >= 0.5."""

    subject: Subject
    op: Literal[">=", "<="]
    limit: float
    unit: str = ""

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        seen = value if self.subject == "value" else ratio
        if seen is None or math.isnan(seen):
            return None
        return seen >= self.limit if self.op == ">=" else seen <= self.limit

    def text(self) -> str:
        what = "ratio" if self.subject == "ratio" else ""
        unit = f" {self.unit}" if self.unit and self.subject == "value" else ""
        return f"{what} {self.op} {_number(self.limit)}{unit}".strip()


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number, the baseline measured beside it in the same run, and its goal."""

    section: int
    name: str
    store: str  # "SQLite", "PostgreSQL" or "—" when no store is involved
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: Goal | None = None
    note: str = ""  # why it is not measured, or what the number includes

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> Verdict:
        if self.value is None:
            return "not measured"
        if self.goal is None:
            return "—"
        met = self.goal.met(self.value, self.ratio)
        if met is None:
            return "not measured"
        return "pass" if met else "MISS"


def missing(section: int, name: str, store: str, reason: str, goal: Goal | None = None) -> Figure:
    """A figure that could not be measured in this run, with the reason shown in the table."""
    return Figure(section, name, store, None, "", goal=goal, note=reason)


@dataclass(frozen=True, slots=True)
class Machine:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Section:
    number: int
    title: str
    how: str  # how the figures of this section are measured


@dataclass(slots=True)
class Report:
    machine: Machine
    sections: Sequence[Section]
    figures: list[Figure] = field(default_factory=list)
    extra: dict[int, str] = field(default_factory=dict)  # markdown appended to a section
    seconds: float = 0.0
    command: str = "make bench"


def _number(value: float) -> str:
    if math.isnan(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{_number(value)} {unit}".strip()


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    """The whole of docs/benchmarks.md."""
    out = [
        "# nightshift benchmarks",
        "",
        f"Written by `{report.command}` (the `bench/` package) in {report.seconds:.0f} s; "
        "do not edit by hand, run it again. Every baseline is measured in the same run on the "
        "same machine, so the **ratio** is the figure to compare between machines; the absolute "
        "numbers only describe this one. All traffic stays on 127.0.0.1; the server under test "
        "is a real `python -m bot serve` process and the load generator another process.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {_escape(v)} |" for k, v in report.machine.rows),
        "",
    ]
    judged = [f for f in report.figures if f.goal is not None]
    missed = [f for f in judged if f.verdict == "MISS"]
    unmeasured = [f for f in judged if f.verdict == "not measured"]
    passed = [f for f in judged if f.verdict == "pass"]
    out += [
        "## Summary",
        "",
        f"{len(passed)} goals met, {len(missed)} missed, {len(unmeasured)} not measured "
        f"(of {len(judged)} figures with a goal; {len(report.figures)} figures in all).",
        "",
    ]
    if missed:
        out += ["Missed in this run:", ""]
        out += [
            f"- §{f.section} {f.name} ({f.store}): {_cell(f.value, f.unit)}"
            + (f", ratio {_number(f.ratio)}" if f.ratio is not None else "")
            + f"; goal {f.goal.text() if f.goal else ''}"
            for f in missed
        ]
        out.append("")
    for section in report.sections:
        rows = [f for f in report.figures if f.section == section.number]
        out += [f"## {section.number}. {section.title}", "", section.how, ""]
        if rows:
            out += [
                "| figure | store | value | baseline (same run) | ratio | goal | result |",
                "|---|---|---|---|---|---|---|",
            ]
            for f in rows:
                base = (
                    f"{_cell(f.baseline, f.unit)} ({_escape(f.baseline_name)})"
                    if f.baseline is not None
                    else (_escape(f.baseline_name) or "–")
                )
                name = _escape(f.name) + (f" — {_escape(f.note)}" if f.note else "")
                ratio = _number(f.ratio) if f.ratio is not None else "–"
                goal = f.goal.text() if f.goal else "–"
                verdict = f"**{f.verdict}**" if f.verdict == "MISS" else f.verdict
                out.append(
                    f"| {name} | {f.store} | {_cell(f.value, f.unit)} | {base} | {ratio} "
                    f"| {goal} | {verdict} |"
                )
            out.append("")
        if section.number in report.extra:
            out += [report.extra[section.number].rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"
