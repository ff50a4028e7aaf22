"""The launcher's fast job composition gives exactly what Hydra's own composition gives."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.utils import JobRuntime
from hydra.types import RunMode
from omegaconf import OmegaConf

import launch
from hydra_plugins.ray_cells_launcher._compose import Composer
from tests.conftest import ROOT

JOBS = [
    ["batch=1", "seq=64"],
    ["batch=16", "seq=256"],
    ["batch=2", "seq=8", "backend=sim", "device=npu", "+hydra.launcher.ray.resources.NPU=8"],
    ["batch=4", "seq=8", "backend=sim", "device=npu", "+hydra.launcher.ray.resources.NPU=8"],
    ["model=llama3_8b", "model.load_format=dummy", "batch=3"],
    ["model.path=/some/dir", "bench=quick", "prompt_len=7"],
    ["hydra.job.chdir=true", "batch=5"],  # a hydra override: Hydra composes it itself
]


@pytest.fixture(scope="module")
def loader():
    launch.register()
    JobRuntime.instance().set("name", "launch")
    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))


@pytest.mark.parametrize("overrides", JOBS, ids=[" ".join(j) for j in JOBS])
def test_fast_composition_equals_hydra(loader, overrides):
    master = loader.load_configuration("config", ["bench=quick"], run_mode=RunMode.MULTIRUN)
    composer = Composer(master, loader)
    composer.compose(["batch=99"])  # warm a template for the default groups
    fast = composer.compose(overrides)
    slow = loader.load_sweep_config(master, overrides)
    a = OmegaConf.to_container(fast, resolve=False)
    b = OmegaConf.to_container(slow, resolve=False)
    assert a == b
    assert OmegaConf.select(fast, "hydra.sweep.subdir") == OmegaConf.select(
        slow, "hydra.sweep.subdir"
    )
