"""The layering the folders show: each package imports only what lies below it.

Every import statement of every module counts, including those inside functions (a lazy
import is still a dependency). Lowest first:

    jobs/ (ground floor)   bounds/ (leaf)   ->   workers/, aggregate/   ->   sweep/   ->   launch.py
    hydra_plugins/ (the generic launcher: imports no project package)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROJECT = ("jobs", "bounds", "workers", "aggregate", "sweep", "hydra_plugins", "launch")

# package -> (project packages it may import, third-party top-level modules it must not)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "jobs": (set(), {"hydra", "omegaconf", "ray", "torch", "transformers", "matplotlib"}),
    "bounds": (set(), {"hydra", "omegaconf", "ray", "torch", "transformers", "matplotlib"}),
    "workers": ({"jobs", "bounds"}, {"hydra", "ray", "matplotlib"}),
    "aggregate": ({"jobs", "bounds"}, {"ray", "torch", "transformers", "hydra"}),
    "sweep": ({"jobs", "bounds", "workers", "aggregate", "hydra_plugins"}, set()),
    "hydra_plugins": (set(), {"torch", "transformers"}),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def modules_of(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_only_what_lies_below(package: str) -> None:
    allowed, banned = RULES[package]
    problems = []
    for path in modules_of(package):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in PROJECT and top != package and top not in allowed:
                problems.append(f"{path.relative_to(ROOT)} imports {name} (above {package}/)")
            if top in banned:
                problems.append(f"{path.relative_to(ROOT)} imports {name} ({package}/ must not)")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The rule is live: a module that reaches up is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sweep.app import CellSweepApp\n    import ray\n")
    assert {"sweep.app", "ray"} <= imported_modules(bad)


def test_every_package_has_a_rule() -> None:
    found = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    found |= {"hydra_plugins"}
    assert found <= set(RULES), f"packages without a layering rule: {found - set(RULES)}"
