"""sweep/compose_once.py: a launch composes its config once, and that is only right while no
config of ours sets ``hydra.mode`` (Hydra's first composition exists to read it)."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.utils import JobRuntime
from hydra.types import RunMode

from sweep.compose_once import mode_from_overrides
from sweep.schema import register
from tests.conftest import ROOT

SWEEPERS = ["cells", "slo_search", "batch_until_oom", "fleet"]
LAUNCHERS = ["cells", "basic"]


@pytest.mark.parametrize("run_mode", [RunMode.RUN, RunMode.MULTIRUN])
@pytest.mark.parametrize("sweeper", SWEEPERS)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_no_config_of_ours_sets_hydra_mode(sweeper, launcher, run_mode):
    register()
    JobRuntime.instance().set("name", "launch")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    overrides = [f"hydra/sweeper={sweeper}", f"hydra/launcher={launcher}"]
    cfg = loader.load_configuration("config", overrides, run_mode=run_mode)
    assert cfg.hydra.mode is None
    assert cfg.hydra.sweeper._target_ and cfg.hydra.launcher._target_  # the options composed


@pytest.mark.parametrize(
    "overrides,mode",
    [
        ([], None),
        (["batch=1", "seq=8"], None),
        (["hydra.mode=RUN"], RunMode.RUN),
        (["+hydra.mode=MULTIRUN"], RunMode.MULTIRUN),
        (["++hydra.mode=RUN"], RunMode.RUN),
        (["hydra.mode=RUN", "hydra.mode=MULTIRUN"], RunMode.MULTIRUN),  # the last one wins
        (["hydra.mode=RUN", "~hydra.mode"], None),
        (["hydra.mode=1"], RunMode.RUN),  # by number, as OmegaConf converts an enum
        (["hydra.mode=2"], RunMode.MULTIRUN),
        (["hydra.mode=7"], None),
        (["hydra.mode=SIDEWAYS"], None),  # the composition reports it
        (["hydra.mode=run"], None),  # so does OmegaConf: enum names are case-sensitive
        (["hydra.model=RUN", "xhydra.mode=RUN"], None),
    ],
)
def test_mode_from_overrides(overrides, mode):
    assert mode_from_overrides(overrides) is mode


def test_a_launch_composes_its_config_once(launch_here, monkeypatch):
    calls = []
    real = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("run_mode", args[2] if len(args) > 2 else None))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    proc = launch_here("batch=0")  # refused by planning, after the composition
    assert proc.returncode == 2 and "batch" in proc.stderr
    assert calls == [RunMode.RUN]
    calls.clear()
    proc = launch_here("hydra.mode=MULTIRUN", "batch=0,1")  # a sweep, asked by the config key
    assert proc.returncode == 2 and "batch" in proc.stderr
    assert calls[0] == RunMode.MULTIRUN and calls.count(RunMode.MULTIRUN) == 1
