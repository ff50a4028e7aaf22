"""Failed servers as real processes (`tests.standins.talking`, started by the worker as
`server=command`): the log part that holds the error, read after the server ended; each
cell's own log of a reused server; and no Ray process left after `kill -9` of the driver
(issue 22, "Servers misdiagnosed" and "Leftovers")."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from jobs.config import from_values
from tests.conftest import ROOT, launch_env
from workers import model_cache
from workers import run as measure
from workers.serving import server as server_module
from workers.serving.process import free_port

TALKING = str(ROOT / "tests" / "standins" / "talking.py")
RAY_GONE_WITHIN_S = 30.0  # measured on a 2-core host: about 2 s (about 64 s without it)


@pytest.fixture(autouse=True)
def _no_server_left():
    yield
    model_cache.drop_models()


@pytest.fixture
def started(monkeypatch) -> list:
    """The ServerProcess objects the test's cells made, in order."""
    made = []

    class Kept(server_module.ServerProcess):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(server_module, "ServerProcess", Kept)
    return made


def command_cell(tiny_cache: Path, *args: str, **values):
    cmd = ["{python}", TALKING, "--port", "{port}", *args]
    server = {"kind": "command", "command": cmd, "api": "vllm", "request_timeout_s": 30,
              "startup_timeout_s": values.pop("startup_timeout_s", 60)}  # fmt: skip
    return from_values({
        "workload": {"name": "serve", "num_requests": 3, "warmup_requests": 0},
        "server": server, "model": {"cache_dir": str(tiny_cache)}, "device": {"name": "cpu"},
        "seq": 4, "prompt_len": 4, **values,
    })  # fmt: skip


def test_the_log_part_of_a_crashed_server_holds_its_traceback(tiny_cache):
    out = measure.measure(command_cell(tiny_cache, "--mode", "crash"))
    message = out.error["message"]
    assert message.splitlines()[0] == "server could not start: exit code 1"
    # The error is followed by 60 lines of noise: the last 40 lines alone would miss it.
    assert "ValueError: the checkpoint has 3 layers, the config says 4" in message
    assert "shutting down helper 59" in message
    assert out.files["server.log"].startswith("talking server starting")


def test_a_server_whose_port_was_taken_is_started_again_on_another(tiny_cache, monkeypatch):
    """A port is free when chosen, not reserved: a server that exits because another process
    bound it first is started again on another port (3 starts at most); a server that fails
    for another reason is not started again."""
    with socket.socket() as taken:
        # Bound without SO_REUSEADDR and not listening: the server's bind fails (EADDRINUSE),
        # and its health checks are refused at once (a silent listener would hold each for
        # its 5 s timeout).
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        given: list[int] = []

        def pick(host: str, first_free: int = 1) -> int:
            port = busy if len(given) < first_free else free_port(host)
            given.append(port)
            return port

        monkeypatch.setattr(server_module, "free_port", pick)
        out = measure.measure(command_cell(tiny_cache))
        assert out.status.value == "ok", out.error
        assert given[0] == busy and len(given) == 2
        assert out.details["server_info"]["base_url"].endswith(f":{given[1]}")
        model_cache.drop_models()

        given.clear()
        monkeypatch.setattr(server_module, "free_port", lambda host: pick(host, first_free=9))
        out = measure.measure(command_cell(tiny_cache))
        assert out.status.value == "failed" and given == [busy] * server_module.PORT_TRIES
        assert out.error["message"].startswith("server could not start")
        assert "Address already in use" in out.error["message"]

        given.clear()
        monkeypatch.setattr(server_module, "free_port", pick)
        out = measure.measure(command_cell(tiny_cache, "--mode", "crash"))
        assert out.status.value == "failed" and len(given) == 1  # not a taken port


def test_a_hung_server_says_what_it_answered_and_what_it_wrote_when_stopped(tiny_cache, started):
    cell = command_cell(tiny_cache, "--mode", "health503", "--error-on-term", startup_timeout_s=3)
    out = measure.measure(cell)
    (proc,) = started
    assert not proc.alive() and not proc.log_path.exists()  # its log file: read, then removed
    first, *rest = out.error["message"].splitlines()
    assert first == (
        "server hung: no healthy answer within 3 s "
        "(last: /health answered HTTP 503: loading the model)"
    )
    # Written on SIGTERM, after the timeout: the log is read once the server has ended.
    assert "ERROR: stuck in all_reduce (rank 0 waits for rank 1)" in "\n".join(rest)
    assert "ERROR: stuck in all_reduce" in out.files["server.log"]


def test_a_reused_servers_second_cell_log_has_no_line_of_the_first(tiny_cache, started):
    a = measure.measure(command_cell(tiny_cache, concurrency=1))
    b = measure.measure(command_cell(tiny_cache, concurrency=2))
    assert a.status.value == "ok" and b.status.value == "ok", (a.error, b.error)
    assert b.fields["server_reused"] is True
    (proc,) = started  # one server for both cells; its log file lives as long as it does
    assert proc.alive() and proc.log_path.exists()
    model_cache.drop_models()
    assert not proc.alive() and not proc.log_path.exists()
    log_a, log_b = a.files["server.log"].splitlines(), b.files["server.log"].splitlines()
    assert log_a[0].startswith("talking server on port")  # the cell that started it
    # Its completions (the server's own /metrics scrapes are logged too, and are not counted).
    completions = [ln for ln in log_b if ln.startswith("request ") and "/v1/completions" in ln]
    assert len(completions) == 3, log_b
    assert not set(log_a) & set(log_b), set(log_a) & set(log_b)


DRIVER = textwrap.dedent(
    """
    import json, os, sys, time, types
    import psutil, ray
    sys.path.insert(0, sys.argv[1])
    from hydra_plugins.ray_cells_launcher import _cluster

    cfg = types.SimpleNamespace(address=None, sim_nodes=0, include_dashboard=False,
                                num_cpus=1, num_gpus=None, resources=None)
    _cluster.start(cfg, None, {})

    @ray.remote
    def pid():
        return os.getpid()

    ray.get(pid.remote())
    time.sleep(2)  # the agents and the task's worker are up
    me = psutil.Process()
    procs = [(p.pid, p.create_time(), " ".join(p.cmdline())[:80])
             for p in me.children(recursive=True)]
    print(json.dumps(procs), flush=True)
    time.sleep(600)
    """
)


def _alive(procs: list) -> list[psutil.Process]:
    """The processes of ``procs`` still running (the same process: pid and start time)."""
    out = []
    for pid, made, _ in procs:
        try:
            p = psutil.Process(pid)
            if p.create_time() == made and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_ray_processes_end_with_a_killed_driver(tmp_path, tiny_cache):
    env = launch_env(tiny_cache)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(ROOT)], stdout=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        procs = json.loads(driver.stdout.readline())
    except ValueError:
        driver.kill()
        raise
    names = " ".join(cmd for _, _, cmd in procs)
    assert "raylet" in names and "ray::DashboardAgent" in names, names
    t0 = time.monotonic()
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    while _alive(procs) and time.monotonic() - t0 < 60:
        time.sleep(0.2)
    gone_s = time.monotonic() - t0
    left = _alive(procs)
    left_pids = [p.pid for p in left]
    for p in left:  # never leave them to the next test, whatever happened
        try:
            p.kill()
        except psutil.Error:
            pass
    assert not left, f"still running {gone_s:.1f} s after kill -9: {left_pids}"
    assert gone_s < RAY_GONE_WITHIN_S, gone_s
    print(f"Ray's processes gone {gone_s:.1f} s after kill -9 of the driver")
