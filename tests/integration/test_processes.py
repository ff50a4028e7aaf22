"""What only a fresh interpreter shows: the real command lines of `python -m aggregate` and
`python -m aggregate.check`, import hygiene (no torch, Ray or heavy packages where none is
needed), a crash fault that kills its process, a sweep lock that dies with its process, an npu-smi
sampler that leaves no process behind, and SGLang's logging setup (which reconfigures the root
logger of the process that runs it).
Their in-process counterparts are in tests/unit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hydra_plugins.ray_cells_launcher._lock import SweepBusy, SweepLock
from tests.conftest import ROOT
from tests.unit.test_aggregate import grid, oom_record, write_sweep
from tests.unit.test_energy_meter import _wait_for, sampler_threads


def python(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw
    )


def test_aggregate_command_line_exit_codes(tmp_path: Path) -> None:
    good = write_sweep(tmp_path / "good", grid())
    res = python("-m", "aggregate", str(good), "--no-plots")
    assert res.returncode == 0, res.stderr
    assert "out tok/s" in res.stdout and (good / "report.md").exists()
    bad = write_sweep(tmp_path / "bad", grid() + [oom_record()])
    assert python("-m", "aggregate", str(bad), "--quiet", "--no-plots").returncode == 1
    missing = python("-m", "aggregate", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_check_usage_error_exit_code_from_the_command_line(tmp_path: Path) -> None:
    from aggregate.check import EXIT_USAGE

    argv = ["-m", "aggregate.check", str(tmp_path / "missing.csv"), "--model", "llama3_8b"]
    proc = python(*argv, "--device", "atlas_800t", timeout=60)
    assert proc.returncode == EXIT_USAGE and "cannot read" in proc.stderr
    proc = python("-m", "aggregate.check", "--model", "llama3_8b", timeout=60)  # argparse
    assert proc.returncode == EXIT_USAGE


def test_aggregate_has_no_heavy_imports() -> None:
    code = (
        "import sys, aggregate, aggregate.render.plots.static, aggregate.__main__; "
        "bad = [m for m in ('ray', 'torch', 'workers', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    res = python("-c", code)
    assert res.returncode == 0, res.stderr


def test_bounds_importable_without_torch_or_ray() -> None:
    code = (
        "import sys, bounds.roofline, bounds.specs, aggregate.check; "
        "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad"
    )
    res = python("-c", code)
    assert res.returncode == 0, res.stderr


def test_simulator_imports_no_torch() -> None:
    code = (
        "import sys; from tests.unit.test_sim import sim_cell, loaded; "
        "b, _ = loaded(sim_cell()); b.run_iteration(); assert 'torch' not in sys.modules"
    )
    res = python("-c", code, timeout=60)
    assert res.returncode == 0, res.stderr


def test_crash_fault_kills_the_worker_process() -> None:
    code = (
        "from tests.unit.test_sim import sim_cell, loaded; "
        "b, _ = loaded(sim_cell(fault='crash')); b.run_iteration(); print('survived')"
    )
    proc = python("-c", code, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "survived" not in proc.stdout


def test_sweep_lock_is_exclusive_and_dies_with_its_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from hydra_plugins.ray_cells_launcher._lock import SweepLock; "
         f"SweepLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SweepBusy, match="in use by a live sweep"):
            SweepLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = SweepLock(tmp_path)
    lock.acquire()  # the kernel released it with the process
    lock.release()


def test_sglang_processes_log_through_the_watch_config() -> None:
    """SGLang's configure_logger (run by each of its processes) applies the dictConfig the
    watch writes: an ERROR line reaches the watch's file. In a subprocess, because
    configure_logger reconfigures the root logger of the process that calls it."""
    pytest.importorskip("sglang.srt.server_args", reason="sglang is not installed here")
    from workers.backends.sglang.watch import EngineWatch
    from workers.base import CellOOM

    watch = EngineWatch("warning")
    code = (
        "import logging\n"
        "from sglang.srt.server_args import ServerArgs\n"
        "from sglang.srt.utils.common import configure_logger\n"
        "configure_logger(ServerArgs(model_path='/m', log_level='warning'))\n"
        "logging.getLogger('sglang.srt.managers.scheduler').error("
        "'Scheduler hit an exception: torch.OutOfMemoryError: CUDA out of memory')\n"
        "logging.getLogger('workers.run').error('a log line of this project')\n"
    )
    env = {**os.environ, **watch.log_env()}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert "CUDA out of memory" in watch.errors()
    assert "this project" not in watch.errors()  # only SGLang's loggers
    assert isinstance(watch.failure(), CellOOM)
    watch.close()


def test_npu_smi_sampler_leaves_no_process(tmp_path, monkeypatch):
    """A stand-in npu-smi that hangs on every read after the first two: reads time out, the
    window closes, and no npu-smi process is left running."""
    from workers.base import IterationResult
    from workers.device import npu_smi as energy_npu
    from workers.energy import meter as energy

    before = {p.pid for p in psutil.Process().children(recursive=True)}  # earlier tests' own

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    count = tmp_path / "count"
    count.write_text("0")
    script = bin_dir / "npu-smi"
    script.write_text(
        f"""#!/bin/sh
[ "$*" = "info" ] && exit 0
n=$(/bin/cat {count}); n=$((n+1)); echo $n > {count}
[ "$1 $2" = "info -m" ] && exit 1
[ $n -gt 2 ] && exec /bin/sleep 60
printf '\\t%-30s : %s\\n' "NPU Real-time Power(W)" 300.0
"""
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(energy_npu, "NPU_SMI_TIMEOUT_S", 0.5)
    meter = energy.EnergyMeter("npu", 1)
    with meter, meter.window():
        meter.iteration()
        assert _wait_for(lambda: int(count.read_text() or 0) > 3), "no read in the window"
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, left
    assert not sampler_threads()
    fields, block = meter.result([IterationResult(e2e_s=1.0, ttft_s=0.1, generated_tokens=4)])
    assert fields["energy_source"] == "npu_smi_power" and fields["energy_valid"] is False
