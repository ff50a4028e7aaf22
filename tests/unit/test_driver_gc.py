"""The planned sweep is left out of the cyclic garbage collector's scans while it runs
(hydra_plugins/ray_cells_launcher/_core.py, ``gc.freeze``): an in-process launch through the
`ray_cells` launcher, its Ray calls answered in this process (tests/standins/ray_calls.py).
While the scheduler dispatches and while the outputs are written the objects planned before
are frozen; after the launch nothing is, and a freeze the host process made is left alone."""

from __future__ import annotations

import gc

import pytest

from hydra_plugins.ray_cells_launcher import _cluster
from sweep.app import CellSweepApp
from tests.standins import ray_calls

SIM = ["-m", "batch=1,2,3", "seq=8", "backend=sim", "device=npu", "model=llama3_8b",
       "bench=quick", "prompt_len=8", "backend.sim.noise=0", "backend.sim.time_scale=0",
       "hydra.launcher.app_options.plots=false", "hydra.launcher.app_options.store=false",
       "hydra.sweep.dir=sweep"]  # fmt: skip


@pytest.fixture
def frozen_counts(monkeypatch) -> dict[str, list[int]]:
    """A stand-in cluster of 2 NPUs; the frozen objects' count seen at each dispatch and at
    the end of the sweep."""
    ray_calls.install(monkeypatch, npus=2, keep=False)
    monkeypatch.setattr(_cluster, "start", lambda *a, **k: _cluster.Cluster(owned=False, used="t"))
    seen: dict[str, list[int]] = {"dispatch": [], "end": []}
    on_dispatch, on_end = CellSweepApp.on_dispatch, CellSweepApp.on_end

    def dispatch(self, job):
        seen["dispatch"].append(gc.get_freeze_count())
        return on_dispatch(self, job)

    def end(self, *args):
        seen["end"].append(gc.get_freeze_count())
        return on_end(self, *args)

    monkeypatch.setattr(CellSweepApp, "on_dispatch", dispatch)
    monkeypatch.setattr(CellSweepApp, "on_end", end)
    return seen


def test_the_planned_sweep_is_frozen_while_it_runs_and_unfrozen_after(
    launch_here, frozen_counts, tmp_path
):
    assert gc.get_freeze_count() == 0
    out = launch_here(*SIM)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(list((tmp_path / "sweep").glob("*/record.json"))) == 3
    dispatched, ended = frozen_counts["dispatch"], frozen_counts["end"]
    assert len(dispatched) == 3 and len(ended) == 1
    assert min(dispatched) > 10_000 and ended[0] > 10_000  # the modules and the planned cells
    assert gc.get_freeze_count() == 0  # all of it back under the collector


def test_a_freeze_the_host_made_is_left_as_it_was(launch_here, frozen_counts):
    gc.freeze()
    try:
        host = gc.get_freeze_count()
        out = launch_here(*SIM)
        assert out.returncode == 0, out.stderr[-2000:]
        # Nothing frozen by the launch (the count only falls, as frozen objects are freed) ...
        assert len(frozen_counts["dispatch"]) == 3
        assert max(frozen_counts["dispatch"] + frozen_counts["end"]) <= host
        assert gc.get_freeze_count() > host // 2  # ... and the host's freeze not undone
    finally:
        gc.unfreeze()
