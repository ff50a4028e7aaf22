"""`hydra/sweeper=slo_search` end to end (`python launch.py`, Hydra's basic launcher, the
simulator's serving mode): a static sim sweep predicts the knee, the search starts there and
finds it; a second run re-runs nothing; a run interrupted mid-search resumes without
re-running its finished probes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, launch_env, with_plots

pytestmark = pytest.mark.slow

CELL = ["backend=sim", "model=llama3_8b", "prompt_len=512", "seq=128"]
SEARCH = [
    "-m", "hydra/launcher=basic", "hydra/sweeper=slo_search", "workload=serve", *CELL,
    "slo.tpot_ms=40", "workload.num_requests=200",
]  # fmt: skip
BRUTE_KNEE = (
    13.8  # the highest rate of a 0.2/s grid meeting the SLO (tests/unit/test_slo_search.py)
)


def knee(sweep: Path) -> dict:
    answer = json.loads((sweep / "knee.json").read_text())
    assert answer["key"] == "request_rate" and len(answer["groups"]) == 1
    return answer["groups"][0]


def records(sweep: Path) -> dict[str, str]:
    """cell dir -> finished_at of every record."""
    return {
        p.parent.name: json.loads(p.read_text())["finished_at"] for p in sweep.glob("*/record.json")
    }


def test_prediction_then_search_then_a_rerun_runs_nothing(launch, tmp_path):
    """From one static sweep's prediction: the search under Hydra's basic launcher, its rerun
    (nothing run again), then the same search under the ray_cells launcher (one private Ray
    for every round, the knee in its report)."""
    batches = ",".join(str(2**i) for i in range(9))  # 1 .. 256
    static = launch("-m", "hydra/launcher=basic", *CELL, f"batch={batches}", "bench=quick",
                    "hydra.sweep.dir=static")  # fmt: skip
    assert static.returncode == 0, static.stdout[-2000:] + static.stderr[-2000:]
    args = [*SEARCH, "hydra.sweeper.predict_from=static", "hydra.sweep.dir=knee"]
    proc = launch(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    g = knee(tmp_path / "knee")
    assert g["status"] == "found" and g["probe_count"] <= 8
    lo, hi = g["bracket"]
    assert hi - lo <= 0.1 * lo and abs(g["knee"] - BRUTE_KNEE) <= 0.1 * BRUTE_KNEE
    assert g["predicted"] is not None and abs(g["prediction_error"]) <= 0.2
    assert g["prediction"]["static_cells"] == 9
    assert [p["meets"] for p in g["probes"] if p["value"] in (lo, hi)] in (
        [True, False],
        [False, True],
    )
    assert "## SLO search: the knee" in (tmp_path / "knee" / "knee.md").read_text()
    before = records(tmp_path / "knee")
    assert len(before) == g["probe_count"]
    again = launch(*args)
    assert again.returncode == 0
    out = again.stdout
    assert out.count("skipped ") == g["probe_count"] and "\nok " not in out, out[-2000:]
    assert records(tmp_path / "knee") == before
    assert knee(tmp_path / "knee")["probes"] == g["probes"]

    # Under the ray_cells launcher (its rerun's "0 to run" is test_launch.py's resume case)
    args = [a for a in SEARCH if a != "hydra/launcher=basic"]
    args += ["hydra.sweeper.predict_from=static", "hydra.launcher.ray.num_cpus=2"]
    proc = launch(*args, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (sweep,) = [p for p in (tmp_path / "multirun").iterdir() if p.is_dir()]  # one sweep dir
    on_ray = knee(sweep)
    assert on_ray["status"] == "found" and on_ray["probe_count"] <= 8
    assert abs(on_ray["prediction_error"]) <= 0.2
    report = (sweep / "report.md").read_text()
    assert report.count("## SLO search: the knee") == 1
    assert f"knee request_rate = **{on_ray['knee']:g}**" in report
    rows = [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]
    assert len(rows) == on_ray["probe_count"] and all(r["simulated"] for r in rows)
    # one private Ray for every round (a Ray per probe round cost ~6 s each)
    nodes = {json.loads((sweep / r["cell_dir"] / "record.json").read_text())["ray_node_id"]
             for r in rows}  # fmt: skip
    assert len(nodes) == 1 and None not in nodes, nodes


def _driver(args: list[str], cwd: Path, cache: Path) -> subprocess.Popen:
    log = (cwd / "driver.log").open("w")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *with_plots(args, False)], cwd=cwd,
        env=launch_env(cache),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def test_an_interrupted_search_resumes_without_rerunning_finished_probes(
    launch, tmp_path, tiny_cache
):
    # Each probe sleeps 0.1 x its simulated duration (seconds of real time), so the driver is
    # interrupted while a probe runs.
    args = [*SEARCH, "hydra.sweeper.start=4", "backend.sim.time_scale=0.1", "hydra.sweep.dir=k"]
    driver = _driver(args, tmp_path, tiny_cache)
    sweep = tmp_path / "k"
    end = time.monotonic() + 240
    while len(records(sweep) if sweep.is_dir() else {}) < 2:
        assert driver.poll() is None and time.monotonic() < end, (
            tmp_path / "driver.log"
        ).read_text()
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGINT)
    assert driver.wait(timeout=60) != 0
    done = records(sweep)
    assert 2 <= len(done) < 6
    proc = launch(*args, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("skipped ") == len(done)
    after = records(sweep)
    assert {d: after[d] for d in done} == done  # finished probes were not run again
    g = knee(sweep)
    assert g["status"] == "found" and g["probe_count"] == len(after) <= 8
    assert abs(g["knee"] - BRUTE_KNEE) <= 0.1 * BRUTE_KNEE
