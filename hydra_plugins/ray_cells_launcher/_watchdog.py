"""Ray's processes end with the driver, even after `kill -9` of the driver.

A private Ray (``ray.init(address="local")``, or the simulated nodes) runs as children of the
driver. Its GCS and raylet share the driver's fate (Ray sets that up), but its agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) and idle workers outlive a killed driver
by about a minute (measured: 64 s on a 2-core host). The watchdog is a small process of its
own (its own session, so the signals of the driver's terminal do not reach it) that the
driver tells, through a pipe, which processes each Ray start created. It follows them and
their descendants; when the driver ends (the pipe reads end-of-file, or the driver's pid is
gone) it sends SIGTERM to every one still running, and SIGKILL a second later. A Ray joined
at an address is not the driver's and is not watched.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

log = logging.getLogger(__name__)

# Run as `python -c`: the driver's pid, then root pids on stdin, one line per Ray start.
_WATCHDOG = r"""
import os, select, signal, sys, time
import psutil

driver = psutil.Process(int(sys.argv[1]))
roots, seen = {}, {}

def key(p):
    try:
        return (p.pid, p.create_time())
    except psutil.Error:
        return None

def refresh():
    # every live process that is, or descends from, a watched one (one scan of the table)
    table = {}
    for p in psutil.process_iter(["ppid", "create_time"]):
        table[p.pid] = (p.info["ppid"], p.info["create_time"])
    live = {pid: k for pid, k in {**seen, **roots}.items()
            if pid in table and table[pid][1] == k[1]}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, made) in table.items():
            if pid not in live and ppid in live:
                live[pid], grew = (pid, made), True
    seen.clear()
    seen.update(live)

def driver_alive():
    try:
        return driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False

buf = b""
while True:
    ready, _, _ = select.select([0], [], [], 0.5)
    if ready:
        data = os.read(0, 4096)
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            for pid in line.split():
                try:
                    roots[int(pid)] = key(psutil.Process(int(pid)))
                except (ValueError, psutil.Error):
                    pass
        roots = {k: v for k, v in roots.items() if v}
    refresh()
    if not driver_alive():
        break
refresh()
procs = []
for pid, k in seen.items():
    try:
        p = psutil.Process(pid)
        if p.create_time() == k[1]:
            procs.append(p)
    except psutil.Error:
        pass
for sig in (signal.SIGTERM, signal.SIGKILL):
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass
    procs = psutil.wait_procs(procs, timeout=1.0)[1]
    if not procs:
        break
"""

_STATE: dict[str, Any] = {}


def _watchdog() -> subprocess.Popen | None:
    """This driver's watchdog (started on first use; None where it cannot run)."""
    proc = _STATE.get("proc")
    if proc is not None and proc.poll() is None:
        return proc
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        log.warning("no watchdog for Ray's processes (%s): they may outlive a killed driver", exc)
        return None
    _STATE["proc"] = proc
    return proc


def children() -> set[int]:
    """The pids of this process's children now."""
    import psutil

    return {c.pid for c in psutil.Process().children()}


def watch(before: set[int]) -> None:
    """Hand the watchdog the children this process got since ``before`` (a Ray start)."""
    dog = _watchdog()
    if dog is None or dog.stdin is None:
        return
    new = children() - before - {dog.pid}
    if not new:
        return
    try:
        dog.stdin.write((" ".join(map(str, sorted(new))) + "\n").encode())
        dog.stdin.flush()
    except OSError as exc:
        log.warning("the watchdog of Ray's processes is gone (%s)", exc)


def start_watchdog() -> set[int]:
    """Start the watchdog (before Ray starts: it is no Ray process) and return the
    children this process has now, for ``watch``."""
    _watchdog()
    return children()
