"""A sweep sent to a running Ray cluster the way people do it: `ray start --head` with 2
declared NPUs, then `ray job submit --working-dir . -- python launch.py -m ...`. The job's
driver gets RAY_ADDRESS from Ray and the launcher joins that cluster (no private Ray), so the
simulated NPU cells run on the cluster's NPUs and their records say which cluster.

The cluster is started by tests/ray_head.py (`ray start --head --block` in its own process
group, ended through it only; a token of its own, loopback, every port free), here with its
dashboard on loopback. Needs Ray's Jobs API (the dashboard: `pip install -e '.[cluster]'`,
i.e. ray[default]), which the README's test command installs, so CI runs it; skipped with
that reason where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.ray_head import BIN, running_head

pytestmark = pytest.mark.slow


def _dashboard_installed() -> bool:
    return shutil.which("ray", path=str(BIN)) is not None and all(
        importlib.util.find_spec(m) is not None for m in ("aiohttp_cors", "opencensus")
    )


@pytest.fixture
def head(tmp_path):
    """A one-node Ray cluster: 2 CPUs, 2 declared NPUs; yields (env, dashboard URL)."""
    if not _dashboard_installed():
        pytest.skip(
            "ray[default] (the Jobs API's dashboard) is not installed: pip install -e '.[cluster]'"
        )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with running_head(env, tmp_path / "ray-start.log", 2, {"NPU": 2}, dashboard=True) as cluster:
        yield cluster.env, cluster.dashboard


def test_ray_job_submit_runs_the_sweep_on_the_cluster(head, tmp_path):
    env, dashboard = head
    sweep = tmp_path / "sweep"
    cmd = [
        str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", ".",
        "--",
        "python", "launch.py", "-m", "batch=1,2", "seq=8", "backend=sim", "device=npu",
        "model=llama3_8b", "bench=quick", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    got = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = got.stdout + got.stderr
    assert got.returncode == 0, out[-4000:]
    assert "no node offers" not in out
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/record.json"))]
    assert len(records) == 2, out[-4000:]
    for rec in records:
        assert rec["status"] == "ok", rec.get("error")
        assert rec["visible_devices"] in ("0", "1")  # Ray handed it one of the 2 NPUs
        assert rec["ray_cluster"].startswith("joined ") and "(RAY_ADDRESS)" in rec["ray_cluster"]
    assert {rec["batch"] for rec in records} == {1, 2}
    assert (sweep / "results.csv").is_file() and (sweep / "report.md").is_file()
