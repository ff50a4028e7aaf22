"""What a sweep's Ray worker imports to run a static cell. The runner the workers are given is
pickled by reference, so its module is imported in every worker: it must be the measuring
code alone, not the sweep's hooks (Hydra, the outputs, the results store), and a static cell
needs no HTTP client. Measured: a simulated static cell's worker went from ~1.16 to ~0.86 s
of CPU when the runner moved out of sweep/app.py (docs/benchmarks.md §11)."""

from __future__ import annotations

from pathlib import Path

from sweep.app import CellSweepApp
from tests.unit.test_layering import ROOT, module_name
from tests.unit.test_plugin_discovery import import_closure

# Never imported by a static cell's worker while it imports its runner.
DRIVER_ONLY = ("hydra", "hydra_plugins", "omegaconf", "sweep", "aggregate", "ray", "duckdb",
               "matplotlib", "aiohttp", "workers.serving", "workers.backends.sim_serving")  # fmt: skip


def project_paths(root: Path = ROOT) -> dict[str, Path]:
    """The project's modules by name: its top-level packages and modules (not the virtual
    environment, the tests or the benches)."""
    tops = [p for p in root.iterdir() if not p.name.startswith(".")
            and p.name not in {"tests", "bench"} and (p.is_dir() or p.suffix == ".py")]  # fmt: skip
    files = [f for top in tops for f in ([top] if top.is_file() else top.rglob("*.py"))]
    return {module_name(p, root): p for p in files}


def _driver_only(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in DRIVER_ONLY
                  or any(m == p or m.startswith(p + ".") for p in DRIVER_ONLY))  # fmt: skip


def test_the_workers_runner_is_the_measuring_code_and_imports_nothing_of_the_driver() -> None:
    runner = CellSweepApp().runner()
    assert runner.__module__ == "workers.run" and runner.__name__ == "run_planned"
    assert _driver_only(import_closure(["workers.run"], project_paths())) == []


def test_the_check_sees_a_driver_module_imported_through_another(tmp_path: Path) -> None:
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "__init__.py").write_text("")
    (tmp_path / "workers" / "run.py").write_text("from workers import helper\n")
    (tmp_path / "workers" / "helper.py").write_text(
        "import json\ntry:\n    import aiohttp\nexcept ImportError:\n    pass\n"
        "def later():\n    import duckdb\n"
    )
    seen = import_closure(["workers.run"], project_paths(tmp_path), tmp_path)
    assert _driver_only(seen) == ["aiohttp"]  # duckdb is imported when called, not before
