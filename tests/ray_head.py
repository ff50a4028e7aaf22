"""A one-node Ray cluster as people start one (`ray start --head --block`), for the tests that
join a running cluster: the `ray job submit` test, and the integration tests that share one
cluster per test process (tests/integration/conftest.py: `launch_joined`).

It is started in its own process group and ended through that process (and its group) only:
`ray stop` would end every Ray on the machine, other people's too. Token authentication with a
token of its own, loopback only, usage stats off, its own --temp-dir, Ray's memory monitor off,
every port chosen free (two heads and private Rays run side by side under pytest-xdist).
"""

from __future__ import annotations

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
PORT_FLAGS = (
    "--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
    "--node-manager-port", "--object-manager-port",
)  # fmt: skip


WORKER_PORTS = 200  # the head's worker port range: this many ports after its first


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _worker_range_start(taken: set[int], width: int = WORKER_PORTS) -> int:
    """The first of ``width + 1`` worker ports that holds none of the head's other ports
    (Ray refuses to start when one of its components' ports is in the workers' range)."""
    while True:
        lo = max(free_ports(1)[0], 20000)
        if lo + width <= 65535 and not any(lo <= p <= lo + width for p in taken):
            return lo


@dataclass
class Head:
    proc: subprocess.Popen
    env: dict[str, str]  # what a driver needs to join it (the token)
    address: str  # HOST:PORT of its GCS
    dashboard: str  # the Jobs API's URL ("" without the dashboard)
    temp_dir: str
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def join_env(self) -> dict[str, str]:
        """What a driver's environment needs to join this cluster (its token)."""
        return {k: self.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}

    def end(self) -> None:
        """SIGTERM to `ray start --block` (it ends the processes it started), then its group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this process started
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(
    base_env: dict[str, str], log: Path, num_cpus: int, resources: dict[str, float],
    dashboard: bool = False,
) -> Head:  # fmt: skip
    """Start the head (not yet ready: see :func:`wait_ready`)."""
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    worker_lo = _worker_range_start(set(ports.values()))
    env = dict(base_env)
    env.pop("RAY_ADDRESS", None)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_memory_monitor_refresh_ms="0",
        RAY_USAGE_STATS_ENABLED="0",
        # Ray 2.60 turns token authentication on for `ray start`; the CLI and drivers send a
        # token only in mode "token": one made for this cluster, never ~/.ray's.
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        PYTHONUNBUFFERED="1",
    )
    argv = [
        str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        "--num-cpus", str(num_cpus), "--resources", json.dumps(resources),
        "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
        "--include-dashboard", "true" if dashboard else "false", "--temp-dir", temp_dir,
        "--min-worker-port", str(worker_lo), "--max-worker-port", str(worker_lo + WORKER_PORTS),
        *(x for flag, port in ports.items() for x in (flag, str(port))),
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{ports['--dashboard-port']}" if dashboard else ""
    return Head(proc, env, f"127.0.0.1:{ports['--port']}", url, temp_dir, log)


def wait_ready(head: Head, timeout_s: float = 180) -> None:
    """Until the cluster answers: `ray job list` where it has the Jobs API, else `ray status`.
    Raises RuntimeError (with the head's log) when it exits or does not answer in time."""
    if head.dashboard:
        probe = [str(BIN / "ray"), "job", "list", "--address", head.dashboard]
    else:
        probe = [str(BIN / "ray"), "status", "--address", head.address]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.proc.poll() is not None:
            raise RuntimeError(
                f"ray start exited {head.proc.returncode}:\n{head.log.read_text()[-3000:]}"
            )
        got = subprocess.run(
            probe, env=head.env, capture_output=True, text=True, timeout=60, check=False
        )
        if got.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray head did not answer in {timeout_s:.0f} s:\n"
                       f"{head.log.read_text()[-3000:]}")  # fmt: skip


@contextmanager
def running_head(
    base_env: dict[str, str], log: Path, num_cpus: int, resources: dict[str, float],
    dashboard: bool = False,
) -> Iterator[Head]:  # fmt: skip
    """A started and answering head for the block (the test fails with the head's log if it
    does not start), ended after it."""
    head = start_head(base_env, log, num_cpus, resources, dashboard)
    try:
        try:
            wait_ready(head)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield head
    finally:
        head.end()
