"""The launcher's fast planning values equal what Hydra's own composition gives."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.utils import JobRuntime
from hydra.types import RunMode

from hydra_plugins.ray_cells_launcher._compose import Composer
from sweep.plan import task_values
from sweep.schema import register
from tests.conftest import ROOT

JOBS = [
    ["batch=1", "seq=64"],
    ["batch=16", "seq=256"],
    ["batch=2", "seq=8", "backend=sim", "device=npu"],
    ["batch=4", "seq=8", "backend=sim", "device=npu", "backend.sim.efficiency=1"],
    ["model=llama3_8b", "model.load_format=dummy", "batch=3"],
    ["model.path=/some/dir", "bench=quick", "prompt_len=7"],
    ["model.path='/a dir/with space'", "model.trust_remote_code=true"],
]
SLOW = [
    ["hydra.job.chdir=true", "batch=5"],  # a hydra override: composed by Hydra itself
    ["~model.tiny", "batch=5"],  # a deletion
    ["model.path=${oc.env:HOME}", "batch=5"],  # an interpolation in a value
]


@pytest.fixture(scope="module")
def composer():
    register()
    JobRuntime.instance().set("name", "launch")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    master = loader.load_configuration("config", ["bench=quick"], run_mode=RunMode.MULTIRUN)
    c = Composer(master, loader)
    c.task_values(["batch=99"])  # warm a template for the default groups
    return c


@pytest.mark.parametrize("overrides", JOBS, ids=[" ".join(j) for j in JOBS])
def test_fast_values_equal_hydra(composer, overrides):
    assert composer.task_values(overrides) == task_values(composer.compose(overrides))


@pytest.mark.parametrize("overrides", SLOW, ids=[" ".join(j) for j in SLOW])
def test_what_the_fast_path_cannot_express_is_left_to_hydra(composer, overrides):
    assert composer.task_values(overrides) is None


INT_LINES = ["batch=17", "batch=-3", "batch=0", "backend.sim.seed=12345678901234567890",
             "a_b.c2=5", "batch=007", "batch=1_000", "batch=+5", "batch=-0", "hydra.x=1", "batch=",
             "+batch=3", "~batch=3", "batch@pkg=3", "batch=3.0", "batch= 3", "b-c=1"]  # fmt: skip


@pytest.mark.parametrize("line", INT_LINES)
def test_a_key_int_line_is_the_override_hydras_parser_gives(composer, line):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        want = OverridesParser.create().parse_override(line)
    except OverrideParseException:  # Hydra refuses it: so must the shortcut (the parser's)
        with pytest.raises(OverrideParseException):
            composer._parse(line)
        return
    composer._parsed.pop(line, None)
    got = composer._parse(line)
    assert got == want and type(got.value()) is type(want.value())
    assert got.is_hydra_override() == want.is_hydra_override()
