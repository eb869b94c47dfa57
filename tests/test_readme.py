"""The README's "How it is built" names every module of the five packages, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "skills", "detector", "runbooks", "storage")


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## How it is built")
    return text[start : text.index("\n## ", start + 1)]


def _named() -> set[str]:
    """Modules the section's tables name: `pkg/mod.py`, a bare `mod.py` after one in the same
    cell (same folder), or a folder `pkg/sub/` (all of its modules)."""
    named: set[str] = set()
    for line in _section().splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        folder = ""
        for ref in re.findall(r"`([^`]+)`", cell):
            if ref.endswith("/"):
                named.update(str(p.relative_to(ROOT)) for p in (ROOT / ref).glob("*.py"))
                continue
            if "/" in ref:
                folder = ref.rsplit("/", 1)[0]
                named.add(ref)
            else:
                named.add(f"{folder}/{ref}")
    return named


def _modules() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in {"__init__.py", "__main__.py"}
    }


def test_every_module_is_named_in_the_readme() -> None:
    assert sorted(_modules() - _named()) == []


def test_the_readme_names_no_module_that_does_not_exist() -> None:
    assert sorted(_named() - _modules() - {"storage/dialects/__init__.py"}) == []
