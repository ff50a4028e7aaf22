"""A sweep sent to a running Ray cluster the way people do it: `ray start --head` with 2
declared NPUs, then `ray job submit --working-dir . -- python launch.py -m ...`. The job's
driver gets RAY_ADDRESS from Ray and the launcher joins that cluster (no private Ray), so the
simulated NPU cells run on the cluster's NPUs and their records say which cluster.

The cluster is started with `ray start --head --block` in its own process group and ended
through that process (and its group) only: `ray stop` would end every Ray on the machine,
other people's too. Token authentication with a token of its own, dashboard on loopback,
usage stats off, its own --temp-dir, memory monitor off, every port chosen free. Needs Ray's
Jobs API (the dashboard: `pip install -e '.[cluster]'`, i.e. ray[default]), which the README's
test command installs, so CI runs it; skipped with that reason where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PORT_FLAGS = (
    "--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
    "--node-manager-port", "--object-manager-port",
)  # fmt: skip


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


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
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
    worker_lo = _free_ports(1)[0]
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_memory_monitor_refresh_ms="0",
        RAY_USAGE_STATS_ENABLED="0",
        # Ray 2.60 turns token authentication on for `ray start`; the CLI sends a token only
        # in mode "token": one made for this cluster, never ~/.ray's.
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    argv = [
        str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--num-cpus", "2", "--resources", json.dumps({"NPU": 2}),
        "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
        "--include-dashboard", "true", "--temp-dir", temp_dir,
        "--min-worker-port", str(max(worker_lo, 20000)),
        "--max-worker-port", str(max(worker_lo, 20000) + 200),
        *(x for flag, port in ports.items() for x in (flag, str(port))),
    ]  # fmt: skip
    log = (tmp_path / "ray-start.log").open("w")
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    dashboard = f"http://127.0.0.1:{ports['--dashboard-port']}"
    try:
        _wait_for_jobs_api(dashboard, env, proc, tmp_path / "ray-start.log")
        yield env, dashboard
    finally:
        _end(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_jobs_api(url: str, env: dict, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        got = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", url],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if got.returncode == 0:
            return
        time.sleep(2)
    pytest.fail(f"the Jobs API at {url} did not answer in 180 s:\n{log.read_text()[-3000:]}")


def _end(proc: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` (it ends the processes it started), then its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group of the process this test started
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=30)


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
