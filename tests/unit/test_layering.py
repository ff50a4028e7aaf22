"""The layering the folders show: each package imports only what lies below it, and the
modules inside a package import one another without a circle.

Every import statement of every module counts, including those inside functions (a lazy
import is still a dependency), relative ones resolved. Lowest first:

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


def modules_of(package: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, root: Path = ROOT) -> str:
    """pkg/sub/mod.py -> pkg.sub.mod; pkg/sub/__init__.py -> pkg.sub."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_targets(path: Path, root: Path = ROOT) -> set[tuple[str, str]]:
    """Every import of this module as (module, name), relative imports resolved:
    `import X` is (X, ""), `from X import Y` is (X, Y), Y being a module or not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out |= {(stem, alias.name) for alias in node.names}
    return out


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (itself left out); `from X
    import Y` depends on the module X.Y when there is one, else on X."""
    paths = {module_name(p, root): p for p in modules_of(package, root)}
    graph = {}
    for name, path in paths.items():
        found = {
            f"{stem}.{y}" if y and f"{stem}.{y}" in paths else stem
            for stem, y in imported_targets(path, root)
        }
        graph[name] = {t for t in found if t in paths and t != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def one_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One shortest import path from the group's first module back to itself."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return group


def describe_circle(graph: dict[str, set[str]], group: list[str], root: Path = ROOT) -> str:
    def file(m: str) -> str:
        path = root / m.replace(".", "/")
        return str(
            (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(root)
        )

    cycle = " -> ".join(file(m) for m in one_cycle(graph, group))
    return (
        f"{len(group)} modules import one another: {', '.join(map(file, group))}\n    e.g. {cycle}"
    )


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


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_import_circle_inside_a_package(package: str) -> None:
    graph = import_graph(package)
    circles = import_circles(graph)
    assert not circles, f"import circles in {package}/:\n" + "\n".join(
        "  " + describe_circle(graph, c) for c in circles
    )


def test_the_circle_check_sees_a_circle(tmp_path: Path) -> None:
    """The circle rule is live: two modules that import each other (one lazily, one through a
    relative import) are caught, and a third that only imports them is not part of it."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pkg.a import g\n")
    (pkg / "c.py").write_text("from . import a\nimport pkg.sub.b\n")
    graph = import_graph("pkg", tmp_path)
    assert import_circles(graph) == [["pkg.a", "pkg.sub.b"]]
    text = describe_circle(graph, ["pkg.a", "pkg.sub.b"], tmp_path)
    assert "pkg/a.py -> pkg/sub/b.py -> pkg/a.py" in text


def test_the_readme_layout_table_and_the_folders_agree() -> None:
    """Every top-level folder of the repo has a row in the README's layout table, every row
    names something that exists, and the design's own top level comes first."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = [
        line.split("|")[1].strip().strip("`").rstrip("/")
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    design = ["conf", "jobs", "workers", "aggregate", "tests", "launch.py", "README.md"]
    assert named[: len(design)] == design, named
    folders = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name not in {"outputs", "multirun", "build", "dist", "__pycache__"}
        and not p.name.endswith(".egg-info")
        and any(p.iterdir())
    }
    assert folders <= set(named), f"folders without a row: {sorted(folders - set(named))}"
    assert all((ROOT / n).exists() for n in named), [n for n in named if not (ROOT / n).exists()]
