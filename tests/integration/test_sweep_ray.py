"""Sweeps on real Ray: placement on declared NPUs, multi-node clusters, node loss, faults.

Cells use the simulator (`backend=sim`): the NPUs are declared Ray resources that do not
exist, and the simulator stands in for the device (no torch_npu). Ray itself, the launcher,
placement, retries and the record files are all real. `time_scale` makes each simulated
cell last about a second of real time so cells overlap and faults land mid-cell.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, launch_env, read_jsonl, with_plots

pytestmark = pytest.mark.slow

SIM = [
    "backend=sim",
    "device=npu",
    "model=llama3_8b",
    "model.load_format=dummy",
    "bench=quick",
    "prompt_len=32",
    "backend.sim.noise=0",
    "hydra.launcher.ray.num_cpus=2",
]


# The tests that remove a node: its death is declared after 2 failed health checks 1 s apart
# (Ray's defaults: 5, 3 s apart, so ~15 s of waiting per removal). A removed raylet refuses
# the check at once; a live one must miss 2 checks of up to 5 s each to be declared dead.
FAST_NODE_DEATH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2,
                   "health_check_timeout_ms": 5000}  # fmt: skip


def sim_args(
    batches: str, seq: str = "32", scale: float = 0.4, npus: int = 4, sweep: str = "multirun/sweep"
) -> list[str]:
    """A simulated sweep into an explicit directory (tests watch it while it runs)."""
    return ["-m", f"batch={batches}", f"seq={seq}", *SIM, f"backend.sim.time_scale={scale}",
            f"+hydra.launcher.ray.resources.NPU={npus}", f"hydra.sweep.dir={sweep}"]  # fmt: skip


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


def records(sweep: Path) -> dict[str, dict]:
    out = {}
    for p in sweep.glob("*/record.json"):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Driver:
    """`python launch.py` in the background, its output in a file (a pipe could fill up)."""

    def __init__(self, args: list[str], cwd: Path, cache: Path, env: dict | None = None) -> None:
        self.log = cwd / f"driver-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "launch.py"), *with_plots(args, False)],
                cwd=cwd,
                env={**launch_env(cache), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                # Ctrl-C reaches it as it reaches a terminal's foreground job, even when the
                # tests themselves run where SIGINT is ignored (e.g. `nohup ... &`), which a
                # child would otherwise inherit.
                preexec_fn=_sigint_default,
            )
        self.pid = self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def communicate(self, timeout: float) -> tuple[str, None]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            raise AssertionError(f"driver still running:\n{self.log.read_text()[-4000:]}") from None
        return self.log.read_text(), None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def start(args: list[str], cwd: Path, cache: Path) -> Driver:
    return Driver(args, cwd, cache)


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_npu_placement_distinct_devices_in_parallel(launch_joined_npu, tmp_path):
    proc = launch_joined_npu(*sim_args("1,2,3,4,5,6", scale=0.5, npus=4))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    recs = list(records(tmp_path / "multirun" / "sweep").values())
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs)
    assert all("simulated" in r["flags"] and r["simulated"] for r in recs)
    spans = [(ts(r["started_at"]), ts(r["finished_at"]), r["visible_devices"]) for r in recs]
    overlapping = 0
    for i, (a0, a1, av) in enumerate(spans):
        for b0, b1, bv in spans[i + 1 :]:
            if a0 < b1 and b0 < a1:  # ran at the same time
                overlapping += 1
                assert av != bv, "two concurrent cells saw the same NPU"
    assert overlapping > 0, "cells did not run in parallel"
    assert {r["visible_devices"] for r in recs} <= {"0", "1", "2", "3"}


def test_cell_exception_oom_and_crash_are_recorded(launch_joined_npu, tmp_path):
    launch = launch_joined_npu  # the shared NPU cluster: a dead actor is replaced on it too
    base = sim_args("1,2,4", scale=0.0)
    sweep = tmp_path / "multirun" / "sweep"
    proc = launch(*base, "backend.sim.fault=exception", "backend.sim.fault_batch=2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]  # a failed cell
    assert out.count("injected fault: exception") >= 2  # its console line and the summary
    recs = {r["batch"]: r for r in records(sweep).values()}
    assert recs[2]["status"] == "failed" and "injected" in recs[2]["error"]["message"]
    assert recs[1]["status"] == recs[4]["status"] == "ok"
    assert "not ok" in proc.stdout and recs[2]["cell_dir"] in proc.stdout

    # an exception while loading the model: that cell fails, the others are measured
    proc = launch(*sim_args("1,2,4", scale=0.0, sweep="load"), "backend.sim.fault=load_error",
                  "backend.sim.fault_batch=1")  # fmt: skip
    assert proc.returncode != 0
    recs = {r["batch"]: r for r in records(tmp_path / "load").values()}
    assert recs[1]["status"] == "failed" and recs[1]["error"]["traceback"]
    assert recs[2]["status"] == recs[4]["status"] == "ok"

    # a worker process that always dies: retried, then failed with worker_lost
    proc = launch(*sim_args("1,2,4", scale=0.0, sweep="crash"), "backend.sim.fault=crash",
                  "backend.sim.fault_batch=4", "hydra.launcher.max_retries=1")  # fmt: skip
    assert proc.returncode != 0
    recs = {r["batch"]: r for r in records(tmp_path / "crash").values()}
    assert recs[4]["status"] == "failed" and "worker_lost" in recs[4]["flags"]
    assert recs[4]["attempts"] == 2
    assert recs[1]["status"] == recs[2]["status"] == "ok"


def test_device_oom_is_recorded_as_oom(launch_joined_npu, tmp_path):
    # 70B in fp16 does not fit one 64 GB NPU: the simulator raises device OOM
    proc = launch_joined_npu("-m", "batch=1", "seq=8", *[a for a in SIM if not a.startswith("model=")],
                  "model=llama3_70b", "+hydra.launcher.ray.resources.NPU=1",
                  "hydra.sweep.dir=multirun/sweep")  # fmt: skip
    assert proc.returncode != 0
    (rec,) = records(tmp_path / "multirun" / "sweep").values()
    assert rec["status"] == "oom", rec


def _worker_pids(driver: psutil.Process, busy: bool) -> list[int]:
    pids = []
    for p in driver.children(recursive=True):
        try:
            title = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "ray::JobWorker" in title and (not busy or "JobWorker.run" in title):
            pids.append(p.pid)
    return pids


LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


def _host_address() -> str:
    """This host's address as another machine would reach it (loopback if it has none)."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return a.address
    return "127.0.0.1"


def _assert_strangers_are_refused(driver: psutil.Process) -> None:
    """Ray 2.60 binds its gRPC servers to every interface (not configurable): what keeps a
    private Ray private is its token authentication. A caller without the token, from this
    host's outward address, is refused by the GCS (gRPC) and by every HTTP entry point; only
    Prometheus' read-only metrics text is served without it."""
    import urllib.error
    import urllib.request

    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    host, gcs_ports, outward = _host_address(), [], []
    for p in [driver, *driver.children(recursive=True)]:
        try:
            conns, name = p.net_connections(kind="inet"), p.name()
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN and c.laddr.ip not in LOOPBACK:
                outward.append((name, c.laddr.port))
                if name == "gcs_server":
                    gcs_ports.append(c.laddr.port)
    assert gcs_ports, f"no GCS server found among {outward}"
    for port in gcs_ports:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(grpc.insecure_channel(f"{host}:{port}"))
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (port, refused.value)
    for name, port in outward:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/api/jobs/", timeout=10) as r:
                served = (r.status, r.headers.get("Content-Type", ""), r.read(64))
        except urllib.error.HTTPError as e:
            assert e.code == 401, (name, port, e.code)  # an HTTP entry point: refused
            continue
        except (OSError, ValueError, http.client.HTTPException):
            continue  # not HTTP (a gRPC server: checked on the GCS above)
        assert served[0] == 200 and served[1].startswith("text/plain; version=0.0.4"), (
            name, port, served)  # fmt: skip
        assert served[2].startswith(b"# HELP"), (name, port, served)  # metrics, read-only


def test_worker_sigkill_mid_cell_is_retried_and_the_private_ray_refuses_strangers(
    tmp_path, tiny_cache
):
    sweep = tmp_path / "multirun" / "sweep"
    proc = start(sim_args("1,2,3", scale=1.0, npus=1), tmp_path, tiny_cache)
    driver = psutil.Process(proc.pid)
    wait_for(lambda: _worker_pids(driver, busy=True), 180, "a busy worker")  # a busy host
    _assert_strangers_are_refused(driver)  # the private Ray's servers
    time.sleep(0.5)
    done_before = set(records(sweep))
    os.kill(_worker_pids(driver, busy=True)[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    recs = records(sweep)
    assert len(recs) == 3 and all(r["status"] == "ok" for r in recs.values())
    retried = [r for name, r in recs.items() if r["attempts"] == 2]
    assert len(retried) == 1 and retried[0]["cell_dir"] not in done_before


def test_second_launch_refused_ctrl_c_and_driver_kill_keep_records_and_resume(tmp_path, tiny_cache):
    args = sim_args("1,2,3,4,5,6,7,8", scale=1.0, npus=1)
    sweep = tmp_path / "multirun" / "sweep"
    first = start(args, tmp_path, tiny_cache)
    wait_for(lambda: len(records(sweep)) >= 1, 120, "a finished cell")
    live_multirun = (sweep / "multirun.yaml").read_bytes()
    second = subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *with_plots(args, False), "backend.sim.efficiency=0.5"], cwd=tmp_path,
        env=launch_env(tiny_cache), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode != 0
    assert "in use by a live sweep" in second.stderr
    assert (sweep / "multirun.yaml").read_bytes() == live_multirun  # refused before any write
    # Ctrl-C on the first: it stops, finished records stay whole
    os.kill(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode != 0
    kept = {p: p.read_bytes() for p in sweep.glob("*/record.json")}
    assert kept and all(json.loads(c)["status"] == "ok" for c in kept.values())
    # the same command goes on; its driver and the Ray it started are killed (SIGKILL)
    third = start(args, tmp_path, tiny_cache)
    wait_for(lambda: len(records(sweep)) > len(kept), 120, "another finished cell")
    os.killpg(third.pid, signal.SIGKILL)
    third.wait(timeout=30)
    before = {p: p.read_bytes() for p in sweep.glob("*/record.json")}
    assert len(kept) < len(before) < 8
    for p, content in kept.items():
        assert before[p] == content
    # and the same command finishes the sweep, finished records untouched
    again = start(args, tmp_path, tiny_cache)
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0, out[-3000:]
    assert f"{len(before)} already done, {8 - len(before)} to run" in out
    for p, content in before.items():
        assert p.read_bytes() == content, f"finished record {p} changed"
    rows = read_jsonl(sweep / "results.jsonl")
    assert len(rows) == 8 and len({r["cell_id"] for r in rows}) == 8


def _joined_sim(
    batches: str, address: str, *extra: str, sweep: str = "multirun/sweep"
) -> list[str]:
    """A simulated NPU sweep joined to a cluster that declares its own NPUs."""
    args = [*sim_args(batches, scale=1.0, sweep=sweep), f"hydra.launcher.ray.address={address}",
            *extra]  # fmt: skip
    skip = ("+hydra.launcher.ray.resources", "hydra.launcher.ray.num_cpus")
    return [a for a in args if not a.startswith(skip)]


def test_node_loss_moves_cells_to_a_live_node_and_fails_those_no_node_can_run(tmp_path, tiny_cache):
    """A real 3-node Ray cluster (ray.cluster_utils.Cluster): a head without NPUs and two nodes
    with 2 NPUs each, both scenarios on the one cluster (one start instead of two).

    1. A sweep spread over both NPU nodes; one is removed while it runs a cell: no finished
       record is lost and the sweep finishes on the other node.
    2. A second sweep on the last NPU node, which is then removed: the cells left fail after
       stall_timeout_s as worker_lost, finished ones stay."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False,
                        "_system_config": FAST_NODE_DEATH},
    )  # fmt: skip
    try:
        lost, kept = (cluster.add_node(num_cpus=1, resources={"NPU": 2}) for _ in range(2))
        cluster.wait_for_nodes()
        # 1. cells spread over two nodes survive the loss of one
        sweep = tmp_path / "multirun" / "sweep"
        proc = start(_joined_sim("1,2,3,4,5,6,7,8,9,10,11,12", cluster.address), tmp_path,
                     tiny_cache)  # fmt: skip

        def ran_on(node) -> bool:
            return any(r["ray_node_id"] == node.node_id for r in records(sweep).values())

        wait_for(lambda: ran_on(lost), 180, "a cell finished on the node to be removed")
        finished = {p: p.read_bytes() for p in sweep.glob("*/record.json")}
        cluster.remove_node(lost, allow_graceful=False)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
        recs = records(sweep)
        assert len(recs) == 12 and all(r["status"] == "ok" for r in recs.values())
        assert {r["ray_node_id"] for r in recs.values()} == {lost.node_id, kept.node_id}
        for p, content in finished.items():
            assert p.read_bytes() == content, f"finished record {p} changed"

        # 2. the only node that could run the cells is gone
        sweep2 = tmp_path / "multirun" / "sweep2"
        args = _joined_sim("1,2,3,4,5,6", cluster.address, "hydra.launcher.stall_timeout_s=3",
                           "hydra.launcher.max_retries=0", sweep="multirun/sweep2")  # fmt: skip
        proc = start(args, tmp_path, tiny_cache)
        wait_for(lambda: len(records(sweep2)) >= 1, 180, "a finished cell")
        finished = {p: p.read_bytes() for p in sweep2.glob("*/record.json")}
        cluster.remove_node(kept, allow_graceful=False)
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode != 0
        recs = records(sweep2)
        assert len(recs) == 6
        failed = [r for r in recs.values() if r["status"] == "failed"]
        assert failed and all("worker_lost" in r["flags"] for r in failed)
        for p, content in finished.items():
            assert p.read_bytes() == content
    finally:
        cluster.shutdown()
