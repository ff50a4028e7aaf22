"""The integration tier: real Ray, real servers, `python launch.py` in subprocesses, faults.
Every test here is `slow` (deselect the tier with -m "not slow", or run tests/unit).

`launch_joined` runs `python launch.py` like `launch`, joined to one running Ray cluster per
test process (`ray start --head`, 2 CPUs and no accelerator, so `device=auto` plans `cpu` as on
a private Ray of this machine); `launch_joined_npu` joins one with 4 declared NPUs, for
simulated NPU cells. Each is started on first use and ended with the session
(tests/ray_head.py). A private Ray costs ~7 s of start and stop per launch on a 2-core
machine; a 2-cell sweep joined took 2.7 s against 10.0 s (docs/benchmarks.md §11). Tests
about sweeps, records, servers and outputs join (a module opts in by defining `launch` as
`launch_joined`); tests about the private Ray itself (its start, stop, signals, node loss,
declared resources) keep `launch`. A joined launch's `hydra.launcher.ray.num_cpus` and
`resources` do not apply (the cluster's own count)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import launch_env, run_launch
from tests.ray_head import Head, running_head

HERE = Path(__file__).resolve().parent
SHARED_NPUS = 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


def _head(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory, resources: dict):
    log = tmp_path_factory.mktemp("shared-ray") / "ray-start.log"
    with running_head(launch_env(tiny_cache), log, 2, resources) as head:
        yield head


@pytest.fixture(scope="session")
def shared_ray(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """This test process's CPU cluster; its workers get the tests' launch environment."""
    yield from _head(tiny_cache, tmp_path_factory, {})


@pytest.fixture(scope="session")
def shared_ray_npu(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """This test process's cluster of 4 declared NPUs (simulated NPU cells)."""
    yield from _head(tiny_cache, tmp_path_factory, {"NPU": SHARED_NPUS})


def joined_args(head: Head, args: tuple[str, ...]) -> list[str]:
    """The launch's overrides, joined to ``head`` where the ray_cells launcher runs."""
    if "hydra/launcher=basic" in args:
        return list(args)
    return [*args, f"hydra.launcher.ray.address={head.address}"]


def _joined(head: Head, tmp_path: Path, tiny_cache: Path):
    def _run(
        *args: str, timeout: float = 300, env: dict | None = None, plots: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if not head.alive():
            pytest.fail(f"the shared Ray head is gone:\n{head.log.read_text()[-3000:]}")
        return run_launch(joined_args(head, args), tmp_path, tiny_cache, timeout,
                          {**head.join_env, **(env or {})}, plots)  # fmt: skip

    return _run


@pytest.fixture
def launch_joined(shared_ray: Head, tmp_path: Path, tiny_cache: Path):
    return _joined(shared_ray, tmp_path, tiny_cache)


@pytest.fixture
def launch_joined_npu(shared_ray_npu: Head, tmp_path: Path, tiny_cache: Path):
    return _joined(shared_ray_npu, tmp_path, tiny_cache)
