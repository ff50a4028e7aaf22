"""Under Hydra's basic launcher, each job of a sweep is composed once: the cells sweeper
validates the batch as Hydra's BasicSweeper does (every job composed before any runs) and
hands the launcher those configs (hydra_plugins/ray_cells_launcher/cells_sweeper.py)."""

from __future__ import annotations

import json

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from hydra_plugins.ray_cells_launcher import cells_sweeper

SWEEP = ["-m", "hydra/launcher=basic", "backend=sim", "device=cpu", "bench=quick",
         "batch=1,2,3", "seq=8,16", "hydra.sweep.dir=multirun/s"]  # fmt: skip


@pytest.fixture
def compositions(monkeypatch):
    """Every composition of a job's config (Hydra's load_sweep_config), by its overrides."""
    seen: list[tuple[str, ...]] = []
    real = ConfigLoaderImpl.load_sweep_config

    def spy(self, master_config, sweep_overrides):
        seen.append(tuple(sweep_overrides))
        return real(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", spy)
    return seen


def _records(tmp_path):
    out = {}
    for p in sorted((tmp_path / "multirun" / "s").glob("*/record.json")):
        rec = json.loads(p.read_text())
        out[p.parent.name] = (rec["status"], rec["batch"], rec["seq"])
    return out


def test_each_job_is_composed_once_and_runs_as_before(launch_here, tmp_path, compositions,
                                                      monkeypatch):  # fmt: skip
    proc = launch_here(*SWEEP)
    assert proc.returncode == 0, proc.stderr[-2000:]
    once = _records(tmp_path)
    assert len(once) == 6 and {s for s, _, _ in once.values()} == {"ok"}
    assert len(compositions) == 6 and len(set(compositions)) == 6  # each job once

    # the same sweep composed twice (Hydra's own validation, then the launcher's): the
    # same cells, the same records
    compositions.clear()
    monkeypatch.setattr(cells_sweeper, "KEEP_COMPOSED_MAX", 0)
    (tmp_path / "multirun").rename(tmp_path / "first")
    proc = launch_here(*SWEEP)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(compositions) == 12 and len(set(compositions)) == 6
    assert _records(tmp_path) == once


def test_a_job_that_cannot_be_composed_stops_the_sweep_before_any_runs(launch_here, tmp_path,
                                                                        compositions):  # fmt: skip
    proc = launch_here(*SWEEP[:-2], "seq=8,16,x", "hydra.sweep.dir=multirun/s")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not list(tmp_path.rglob("record.json"))


def test_a_timestamped_sweep_dir_is_one_directory_for_every_job(launch_here, tmp_path):
    """The kept configs copy the master's resolver cache: a ${now:} in hydra.sweep.dir (to
    the microsecond) is the one the sweep resolved, in every job."""
    proc = launch_here(*SWEEP[:-1], "hydra.sweep.dir=multirun/${now:%H-%M-%S-%f}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert len(list(sweep.glob("*/record.json"))) == 6
