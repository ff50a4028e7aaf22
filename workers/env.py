"""The environment a record came from: host, versions, commit, time."""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from collections.abc import Mapping
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
    driver's state goes into their records (jobs.record.build_record's ``code``)."""
    root = Path(__file__).resolve().parent.parent
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return {"git_commit": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


ASCEND_BASE = Path("/usr/local/Ascend")
_PLAIN_VERSION = re.compile(r"^\d+\.\d+(?:\.[0-9A-Za-z]+)*(?:-[0-9A-Za-z.]+)?$")
_BRACKETED = re.compile(r"\[[^\]:]*:([^\]]+)\]")  # runtime_running_version=[7.1.0.3.220:8.0.RC2]


def _cann_roots(env: Mapping[str, str], base: Path) -> list[Path]:
    """Where a CANN toolkit may live, most specific first: what set_env.sh exported, then
    the 8.5+ layout (``cann`` / ``cann-<version>``), then the older ``ascend-toolkit/latest``."""
    roots = [Path(env[v]) for v in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH") if env.get(v)]
    versioned = sorted(base.glob("cann-*"), key=lambda p: _version_key(p.name[5:]), reverse=True)
    return [*roots, base / "cann", *versioned, base / "ascend-toolkit" / "latest"]


def _version_key(text: str) -> tuple:
    return tuple(int(n) if n.isdigit() else -1 for n in re.split(r"[.\-]", text))


def _version_in(path: Path) -> str | None:
    """The plain version in an install-info or version file (``version=8.3.RC2``, or the
    CANN part of ``..._running_version=[7.1.0.3.220:8.0.RC2]``), or None."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        value = value.strip()
        if key.strip().lower() == "version" and _PLAIN_VERSION.match(value):
            return value
        bracketed = _BRACKETED.search(value)
        if "version" in key.lower() and bracketed and _PLAIN_VERSION.match(bracketed.group(1)):
            return bracketed.group(1)
    return None


def cann_version(env: Mapping[str, str] | None = None, base: Path = ASCEND_BASE) -> str | None:
    """The CANN toolkit version as a plain string ("8.3.RC2", "8.5.0"), from the old
    (``ascend-toolkit/<version>``, ``latest`` linked to it) and the 8.5+ (``cann-<version>``,
    ``cann``) layouts; None where no toolkit is found."""
    env = os.environ if env is None else env
    arches = dict.fromkeys([platform.machine(), "aarch64", "x86_64"])
    for root in _cann_roots(env, base):
        if not root.is_dir():
            continue
        candidates = [root / f"{arch}-linux" / "ascend_toolkit_install.info" for arch in arches]
        candidates += sorted(root.glob("*-linux/ascend_toolkit_install.info"))
        candidates += [root / "version.cfg", root / "version.info"]
        for path in candidates:
            version = _version_in(path)
            if version:
                return version
        name = root.resolve().name.removeprefix("cann-")  # latest -> 8.3.RC2, cann-8.5.0
        if _PLAIN_VERSION.match(name):
            return name
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
