"""Shared fixtures: offline Hugging Face, a tiny-model cache per test session, and a helper
that runs `python launch.py` for real in a subprocess.

Two tiers, by folder: tests/unit runs in this process only (no subprocess, Ray or server);
tests/integration (every test marked `slow`) runs real Ray, servers, launches and faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray's memory monitor stays off (a busy host must not get a worker killed) except in the
# host-OOM test, which turns it on in its own launch's environment.
os.environ["RAY_memory_monitor_refresh_ms"] = "0"
# The tests' models are tiny: one compute thread each. Two threads per process on a busy
# 2-core host cost ~10x the CPU time (measured: a tiny Linear loop 0.5 s on 1 thread, 38 s on
# 2 at load 2.5), for the tests' own processes and those they start (servers, workers).
os.environ["OMP_NUM_THREADS"] = "1"


# The files that take longest, longest first (seconds of one test process on a quiet 2-core
# machine, pytest --durations=0). With `--dist loadfile --no-loadscope-reorder`
# (pyproject.toml) the two test processes take files in this order, so the long ones start
# at once and the many short ones fill the end on both sides; a file not listed keeps its
# place after them. A stale list costs only balance, never a test.
LONGEST_FIRST = [  # seconds: a quiet run of 2026-12-07 13:40 (docs/benchmarks.md §10)
    "integration/test_sweep_ray.py",  # 125 s (the node-loss tests merged since: ~121)
    "integration/test_serving_sweep.py",  # 78 s
    "integration/test_launcher_hydra.py",  # 44 s
    "integration/test_reliability.py",  # 44 s
    "integration/test_launch.py",  # 43 s
    "integration/test_slo_search_sweep.py",  # 39 s
    "integration/test_gpu_check.py",  # 37 s
    "integration/test_docs_commands.py",  # 35 s
    "integration/test_serving_workloads.py",  # 35 s
    "integration/test_fleet.py",  # 24 s
    "integration/test_ray_job_submit.py",  # 23 s
    "unit/test_bad_input.py",  # 20 s
    "integration/test_real_widths.py",  # 19 s
    "integration/test_server_diagnosis.py",  # 16 s
    "integration/test_serving_books.py",  # 13 s
    "integration/test_repeats_frontier.py",  # 12 s
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (LONGEST_FIRST), each file's tests in their own order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    here = Path(__file__).resolve().parent

    def key(item: pytest.Item) -> int:
        rel = Path(str(item.fspath)).resolve().relative_to(here).as_posix()
        return rank.get(rel, len(rank))

    items[:] = sorted(items, key=key)  # stable: the rest keep collection order


def _thread_cpu_ticks(native_id: int) -> int | None:
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def busy_threads(
    window_s: float = 0.25, share: float = 0.4, exclude: frozenset[int] = frozenset()
) -> list[str]:
    """Python threads of this process (but those whose ``ident`` is in ``exclude``) that used
    more than ``share`` of a core while the main thread slept ``window_s`` (Linux; none
    elsewhere). No other thread: no sleep."""
    threads = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.ident not in exclude
    ]
    before = {t: _thread_cpu_ticks(t.native_id) for t in threads if t.native_id}
    if not any(v is not None for v in before.values()):
        return []
    time.sleep(window_s)
    limit = share * window_s * os.sysconf("SC_CLK_TCK")
    busy = []
    for t, ticks in before.items():
        after = _thread_cpu_ticks(t.native_id) if ticks is not None else None
        if after is not None and after - ticks > limit:
            busy.append(t.name)
    return busy


@pytest.fixture(scope="module", autouse=True)
def no_thread_left_busy():
    """A module leaves no thread of its own spinning in the test process: one did (a
    library's polling loop after its engine stopped) and slowed every later test ~2x. Only
    threads started while the module ran are looked at (an earlier module's threads were
    looked at when it ended), so a module that starts none pays no 0.25 s sample: before,
    one lingering idle thread made every later module sleep it (~7 s of each test process
    in the unit tier)."""
    before = frozenset(t.ident for t in threading.enumerate())
    yield
    busy = busy_threads(exclude=before)
    assert not busy, f"threads left busy in the test process by this module: {busy}"


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-cache")
    os.environ["LLM_SWEEP_CACHE"] = str(path)
    return path


def launch_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        LLM_SWEEP_CACHE=str(cache),
        RAY_DEDUP_LOGS="0",
        PYTHONUNBUFFERED="1",
        RAY_memory_monitor_refresh_ms="0",
        OMP_NUM_THREADS="1",
    )
    env.pop("RAY_ADDRESS", None)
    return env


PLOTS_OFF = "hydra.launcher.app_options.plots=false"


def with_plots(args: list[str], plots: bool) -> list[str]:
    """A test's sweep writes its PNG plots only when the test reads them (``plots=True``):
    matplotlib's import and the figures are ~2 s of a 2-cell launch's ~2.5 s of driver CPU
    (docs/benchmarks.md §11); the plots themselves are tested in tests/unit. Only sweeps on
    the cells launcher make plots; a test that sets the key itself keeps its own value."""
    if (
        plots
        or not {"-m", "--multirun"} & set(args)
        or "hydra/launcher=basic" in args
        or any(a.startswith("hydra.launcher.app_options.plots=") for a in args)
    ):
        return list(args)
    return [*args, PLOTS_OFF]


def run_launch(
    args: list[str],
    cwd: Path,
    cache: Path,
    timeout: float = 300,
    env: dict | None = None,
    plots: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run launch.py with Hydra overrides in `cwd`; outputs land under `cwd` (no PNG plots
    unless ``plots``: :func:`with_plots`)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *with_plots(args, plots)],
        cwd=cwd,
        env={**launch_env(cache), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sweep_dir(cwd: Path) -> Path:
    """The one sweep directory a launch in ``cwd`` wrote (named from its overrides)."""
    dirs = [p for p in (cwd / "multirun").iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def launch(tmp_path: Path, tiny_cache: Path):
    def _run(
        *args: str, timeout: float = 300, env: dict | None = None, plots: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run_launch(list(args), tmp_path, tiny_cache, timeout, env, plots)

    return _run
