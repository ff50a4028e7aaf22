"""Nothing silently wrong: host OOM, identical cells, newer records, interrupts, a readable
console. Real `python launch.py` runs on real Ray with the simulator (declared NPUs)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import read_jsonl
from tests.integration.test_sweep_ray import Driver, records, sim_args, wait_for

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[")


# The host-OOM sweep's own limit. Its two cells take seconds; on a busy host the memory
# monitor can also kill each new worker while it starts, before it takes a job, and the
# launcher then starts another: the sweep is bounded here and its whole process group
# (driver and Ray) killed past the limit, with the driver's log in the failure.
OOM_LIMIT_S = 180


def test_host_oom_kill_becomes_an_oom_record_and_the_sweep_goes_on(tmp_path, tiny_cache):
    """Ray's memory monitor kills the worker (a threshold below what the host already uses
    makes it kill every worker): each cell gets an `oom` record, no traceback, exit 1."""
    env = {"RAY_memory_usage_threshold": "0.02", "RAY_memory_monitor_refresh_ms": "100"}
    driver = Driver(sim_args("1,2", scale=1.0, npus=1), tmp_path, tiny_cache, env=env)
    out, _ = driver.communicate(timeout=OOM_LIMIT_S)
    assert driver.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    recs = records(tmp_path / "multirun" / "sweep")
    assert len(recs) == 2
    for rec in recs.values():
        assert rec["status"] == "oom" and "worker_lost" in rec["flags"], rec
        assert "memory" in rec["error"]["message"] and rec["attempts"] == 1  # not retried
    assert len(read_jsonl(tmp_path / "multirun" / "sweep" / "results.jsonl")) == 2


def test_identical_cells_console_newer_and_truncated_records(launch_joined_npu, tmp_path):
    """One sweep, launched twice: identical cells run once; one console line per cell and no
    foreign noise; then a record from a newer version is never overwritten, and a truncated
    one counts as missing (re-run)."""
    launch = launch_joined_npu  # joins the shared NPU Ray (conftest.py)
    args = sim_args("1,1,2,3", scale=0.0, npus=2)
    sweep = tmp_path / "multirun" / "sweep"
    proc = launch(*args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "1 job(s) repeat a cell of this sweep: each cell runs once (3 cells)" in proc.stdout
    assert sorted(r["batch"] for r in read_jsonl(sweep / "results.jsonl")) == [1, 2, 3]
    assert "3 ok, 0 not ok, 0 missing of 3 cells" in proc.stdout
    for noise in ("Token authentication", "is now ignored by default", "Failed to detect NPU",
                  "Loading weights", "Traceback"):  # fmt: skip
        assert noise not in out, noise
    assert not ANSI.search(out), "colour codes in a log"
    cells = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(cells) == 3, proc.stdout  # the last cell's line included

    newer = next(sweep.glob("*-b2-*/record.json"))
    rec = json.loads(newer.read_text())
    rec.update(schema_version=99, status="failed")  # newer, and not ok: resume would re-run it
    newer.write_text(json.dumps(rec))
    before = newer.read_bytes()
    truncated = next(sweep.glob("*-b3-*/record.json"))
    truncated.write_text(truncated.read_text()[:100])  # a crash mid-write on another tool
    proc = launch(*args)
    out = proc.stdout + proc.stderr
    assert "schema_version 99" in out
    assert newer.read_bytes() == before
    assert "2 already done, 1 to run" in out
    assert json.loads(truncated.read_text())["status"] == "ok"


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.parametrize("how", ["ctrl-c twice", "sigterm"])
def test_interrupt_writes_outputs_and_leaves_no_ray_behind(tmp_path, tiny_cache, how):
    sweep = tmp_path / "multirun" / "sweep"
    driver = Driver(sim_args("1,2,3,4,5,6,7,8", scale=1.0, npus=1), tmp_path, tiny_cache)
    wait_for(lambda: len(records(sweep)) >= 1, 180, "a finished cell")
    children = _descendants(driver.pid)
    if how == "sigterm":
        os.kill(driver.pid, signal.SIGTERM)
    else:  # a terminal's Ctrl-C reaches the whole foreground process group, Ray's included
        os.killpg(driver.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(driver.pid, signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out[-3000:]
    assert "interrupted" in out and "Traceback" not in out
    assert "SIGTERM received" not in out and "*** " not in out  # no C++ stack dump
    rows = read_jsonl(sweep / "results.jsonl")
    assert rows and all(r["status"] == "ok" for r in rows)
    assert (sweep / "report.md").is_file()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.is_running() for p in children):
        time.sleep(0.5)
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [" ".join(p.cmdline()[:2]) for p in left]


def test_console_one_line_per_cell_and_no_foreign_noise(launch_joined_npu, tmp_path):
    launch = launch_joined_npu  # joins the shared NPU Ray (conftest.py)
    proc = launch(*sim_args("1,2,3", scale=0.0, npus=2))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for noise in ("Token authentication", "is now ignored by default", "Failed to detect NPU",
                  "Loading weights", "Traceback"):  # fmt: skip
        assert noise not in out, noise
    assert not ANSI.search(out), "colour codes in a log"
    cells = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(cells) == 3, proc.stdout  # the last cell's line included


def test_expected_conditions_of_the_host(tmp_path: Path):
    """Unit level: a CPU allocation failure is `oom`; a cell that cannot fit is refused."""
    from jobs.config import BenchConfig, CellConfig, DeviceConfig
    from workers.device.devices import Device
    from workers.device.host import check_fits
    from workers.models import model_config_json

    cpu = Device("cpu")
    alloc = RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't "
                         "allocate memory: you tried to allocate 7516192768 bytes")  # fmt: skip
    assert cpu.is_oom(alloc) and cpu.is_oom(MemoryError()) and not cpu.is_oom(ValueError("x"))
    cell = CellConfig(batch=100000, seq=8, prompt_len=8, device=DeviceConfig(name="cpu"),
                      bench=BenchConfig(name="quick", warmup=1, iterations=2))  # fmt: skip
    config = model_config_json(cell.model)[1]
    from workers.base import CellOOM

    with pytest.raises(CellOOM, match="does not fit"):
        check_fits(cell, config, "float32", loaded=True, available=2 * 10**9)
    small = CellConfig(batch=1, seq=8, prompt_len=8, device=DeviceConfig(name="cpu"))
    assert check_fits(small, config, "float32", loaded=True, available=2 * 10**9) > 0
