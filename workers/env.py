"""The environment a record came from: host, versions, commit, time."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

_PACKAGES = ("torch", "transformers", "torch_npu", "sglang", "ray", "hydra-core")


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """{"git_commit": the checkout's commit or None, "git_dirty": uncommitted changes to
    tracked files (True/False) or None}. A sweep's workers get the code without .git: the
    driver's state goes into their records (cells.record.build_record's ``code``)."""
    root = Path(__file__).resolve().parent.parent
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return {"git_commit": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def cann_version() -> str | None:
    home = os.environ.get("ASCEND_TOOLKIT_HOME") or "/usr/local/Ascend/ascend-toolkit/latest"
    for name in ("version.cfg", "version.info"):
        p = Path(home) / name
        if p.is_file():
            for line in p.read_text(errors="replace").splitlines():
                if "version" in line.lower() and "=" in line:
                    return line.split("=", 1)[1].strip()
    return None


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def environment() -> dict[str, Any]:
    """Host, versions and commit of this process (read once per process: they do not change)."""
    return dict(_environment())


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        **git_state(),
        "cann": cann_version(),
    }
    for pkg in _PACKAGES:
        env[pkg.replace("-", "_")] = _version(pkg)
    return env
