"""Hydra imports every module of `hydra_plugins/` on each launch to find its plugins (also a
launch on Hydra's basic launcher and one refused for bad input). None of them may import Ray
while it is being imported: `import ray` is ~0.4 s of a launch's CPU, for nothing when no
Ray is used (the sweepers import the session when a sweep starts)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layering import ROOT, module_name

PLUGINS = ROOT / "hydra_plugins" / "ray_cells_launcher"


def import_time_targets(path: Path, root: Path = ROOT) -> set[str]:
    """The modules this module imports while it is imported: its top-level statements (and
    those of top-level if/try blocks), not function bodies; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for h in getattr(node, "handlers", []):
                todo += h.body
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.add(stem)
            out |= {f"{stem}.{alias.name}" for alias in node.names}
    return out


def import_closure(starts: list[str], paths: dict[str, Path], root: Path = ROOT) -> set[str]:
    """Every module imported, transitively through the modules of ``paths`` (module name ->
    file), when the modules ``starts`` are imported: their packages too, as Python imports
    a package before its modules."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        if name in paths:
            todo += sorted(import_time_targets(paths[name], root))
    return seen


def imported_while_discovering(paths: dict[str, Path], root: Path = ROOT) -> set[str]:
    """Every module imported, transitively through the package's own modules, when Hydra
    looks for plugins among ``paths`` (module name -> file). Like Hydra's scan, it starts
    from every module whose name does not start with one underscore (``__init__`` does)."""
    starts = [n for n in paths if not n.rsplit(".", 1)[-1].startswith("_") or "__" in n]
    return import_closure(starts, paths, root)


def package_paths(folder: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(folder.glob("*.py"))}


def test_discovering_the_plugins_imports_no_ray() -> None:
    got = imported_while_discovering(package_paths(PLUGINS))
    assert "hydra_plugins.ray_cells_launcher.ray_cells_launcher" in got  # the check sees them
    ray = sorted(m for m in got if m == "ray" or m.startswith("ray."))
    assert not ray, f"imported while Hydra looks for plugins: {ray}"


def test_the_check_sees_ray_imported_through_a_module(tmp_path: Path) -> None:
    pkg = tmp_path / "hydra_plugins" / "p"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sweeper.py").write_text("from ._session import go\n\ndef f():\n    import torch\n")
    (pkg / "_session.py").write_text("import ray\n")
    paths = {module_name(p, tmp_path): p for p in pkg.glob("*.py")}
    got = imported_while_discovering(paths, tmp_path)
    assert "ray" in got and "torch" not in got
