"""The unit tier: everything in this process (no subprocess, no Ray, no server).

`launch_here` runs launch.py's own entry point (Hydra's command line, the sweep's callbacks
and the ray_cells launcher's planning and validation) in this process, for inputs that are
refused before anything starts: the same code as `python launch.py`, without a new
interpreter."""

from __future__ import annotations

import logging
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

# One intra-op thread: the unit tier's tensors are tiny, so a second thread only adds
# fork/join cost (and spins badly on a busy host); records do not keep the thread count.
torch.set_num_threads(1)


def _launch_main(args: list[str]) -> int:
    """launch.py run as `__main__` in this process: its exit code. Hydra's process-wide
    state (its singletons: the version_base launch.py sets, the config store, the job's
    runtime; its get_mode) is put back afterwards, as if the launch had run in a process of
    its own: later tests in this process (the integration tier's too, under pytest-xdist)
    see none of it."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from omegaconf.basecontainer import BaseContainer

    from sweep.schema import register
    from sweep.status import PROCESS

    # The schema and resolvers launch.py registers, once per test process: kept in the
    # state put back below, so launch.py's own register() finds them (it is idempotent).
    register()
    # Hydra's plugins, scanned once per test process and before the state is saved (the scan
    # also fills the config-source registry that state holds); a scan in every launch would
    # cost ~0.1 s each.
    plugins = Plugins.instance()
    saved = Singleton.get_state()  # a deep copy, Plugins left out
    get_mode = Hydra.get_mode  # launch.py replaces it (sweep/compose_once.py)
    GlobalHydra.instance().clear()
    PROCESS.not_ok = 0  # a new process starts with no cell not ok
    sys.argv = [str(ROOT / "launch.py"), *args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
        # Singleton.set_state(saved) would scan every plugin again: this process's plugins
        # are the ones it found before the launch.
        Singleton._instances = saved["instances"]
        Singleton._instances[Plugins] = plugins
        BaseContainer._resolvers = saved["omegaconf_resolvers"]
        Hydra.get_mode = get_mode  # type: ignore[method-assign]
    return 0


@pytest.fixture
def launch_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, tiny_cache: Path):
    """`launch_here(*overrides)`: launch.py's main in this process with cwd `tmp_path`; a
    CompletedProcess (returncode, stdout, stderr) as `launch` gives for a subprocess."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def _run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        try:
            code = _launch_main(list(args))
        finally:
            root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return _run


@pytest.fixture
def launch():
    """The subprocess launch of tests/conftest.py is for the integration tier."""
    pytest.fail("tests/unit runs no subprocess: use launch_here (or move the test)")


@pytest.fixture(autouse=True)
def _no_writer_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep of many cells writes its files through a writer process (sweep/writer.py):
    not in this tier, whose sweeps write them in-process (tests/integration/test_file_writer.py
    runs the writer)."""
    import sweep.app

    monkeypatch.setattr(sweep.app, "MIN_CELLS", 10**9)
