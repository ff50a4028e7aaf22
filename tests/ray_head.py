"""A one-node Ray cluster as people start one (`ray start --head --block`), for the tests that
join a running cluster: the `ray job submit` test, and the integration tests that share one
cluster per test process (tests/integration/conftest.py: `launch_joined`).

It is started in its own process group and ended through that process (and its group) only:
`ray stop` would end every Ray on the machine, other people's too. Token authentication with a
token of its own, loopback only, usage stats off, its own --temp-dir, Ray's memory monitor off,
every port chosen free outside the kernel's ephemeral range (two heads and private Rays run
side by side under pytest-xdist): see :func:`port_window`.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
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
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_HANDED: set[int] = set()  # ports this process has handed to heads


def port_window(env: Mapping[str, str] = os.environ, ephemeral: Path = EPHEMERAL) -> range:
    """The ports this test process may hand a head.

    Above 19999 (a private Ray's workers take 10002-19999 by default) and below the kernel's
    ephemeral range: every outgoing connection on the machine takes its local port from that
    range, so a port found free there can be taken before Ray binds it (stop 33's CI: a shared
    head's client server lost its port that way, and `ray start --block` ended the head under
    seven tests). One share of that window per pytest-xdist worker, so two workers' heads never
    pick the same ports."""
    try:
        high = int(ephemeral.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768  # Linux's default ephemeral range starts there
    low = 20000
    if high - low < 4 * (len(PORT_FLAGS) + WORKER_PORTS):
        high = 65536  # an unusual ephemeral range: no room below it
    count = int(env.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(env.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % count
    share = (high - low) // count
    return range(low + index * share, low + (index + 1) * share)


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def head_ports(
    window: range, rng: random.Random, is_free: Callable[[int], bool] = _port_is_free
) -> tuple[dict[str, int], int]:
    """One free block of the window for a head: its components' ports, then its workers'
    range (Ray refuses to start a head with a component's port among its workers' ports, so
    the two never overlap). Returns ({flag: port}, first worker port)."""
    size = len(PORT_FLAGS) + WORKER_PORTS + 1
    for _ in range(500):
        first = rng.randrange(window.start, window.stop - size + 1)
        block = range(first, first + size)
        if not _HANDED.intersection(block) and all(is_free(p) for p in block):
            _HANDED.update(block)
            ports = dict(zip(PORT_FLAGS, block, strict=False))
            return ports, first + len(PORT_FLAGS)
    raise RuntimeError(f"no {size} free ports in a row in {window.start}-{window.stop - 1}")


@dataclass
class Head:
    proc: subprocess.Popen
    env: dict[str, str]  # what a driver needs to join it (the token)
    address: str  # HOST:PORT of its GCS
    dashboard: str  # the Jobs API's URL ("" without the dashboard)
    temp_dir: str
    log: Path
    listening: tuple[int, ...] = ()  # ports that accept connections once it is up

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
    ports, worker_lo = head_ports(port_window(), random.Random())
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
    listening = (ports["--port"], ports["--node-manager-port"], ports["--ray-client-server-port"])
    if dashboard:
        listening += (ports["--dashboard-port"],)
    return Head(proc, env, f"127.0.0.1:{ports['--port']}", url, temp_dir, log, listening)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(head: Head, timeout_s: float = 180) -> None:
    """Until the cluster answers: `ray job list` where it has the Jobs API, else `ray status`.
    Raises RuntimeError (with the head's log) when it exits or does not answer in time.

    The probe is a Python process of ~1 s of CPU, so it is first run once the head's GCS,
    raylet and client server (and dashboard) accept connections, found by connecting to their ports every
    0.2 s: one probe per head instead of one per second of its start (~3 per head)."""
    if head.dashboard:
        probe = [str(BIN / "ray"), "job", "list", "--address", head.dashboard]
    else:
        probe = [str(BIN / "ray"), "status", "--address", head.address]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and head.proc.poll() is None:
        if all(_accepts(port) for port in head.listening):
            break
        time.sleep(0.2)
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
