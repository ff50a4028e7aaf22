"""Settings that a cell would silently not use: named in a one-line warning each.

Options of another server kind (``server.sglang.*`` with server=transformers, or on a static
cell), of a backend the cell does not run on (``backend.sglang.*`` with backend=hf), and the
Ray cluster of a single run (a single run measures in this process). Settings
that act only together with another of the same cell are refused instead (jobs/config.py).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from omegaconf import OmegaConf

from jobs.config import BackendConfig, CellConfig
from jobs.serving import ServerConfig
from jobs.values import plain

_SERVER_KINDS = ("transformers", "sglang", "vllm")
_SAID: set[str] = set()


@functools.cache
def _defaults(owner: type, name: str) -> tuple[Any, dict[str, Any]]:
    """One option group's defaults, and as values (made once: a sweep asks for every cell)."""
    group = getattr(owner(), name)
    return group, plain(group)


def _changed(group: Any, owner: type, name: str) -> list[str]:
    default, then = _defaults(owner, name)
    if group == default:  # the common case: nothing set
        return []
    now = plain(group)
    return [k for k in now if now[k] != then.get(k)]


def _keys(prefix: str, names: list[str]) -> str:
    return ", ".join(f"{prefix}.{n}" for n in names)


def ignored_settings(cell: CellConfig) -> list[str]:
    """One line per group of set settings this cell does not use."""
    out = []
    used_backend = (
        cell.backend.name if not cell.serving else ("sim" if cell.backend.name == "sim" else None)
    )
    for name in ("hf", "sglang", "sim"):
        changed = _changed(getattr(cell.backend, name), BackendConfig, name)
        if name != used_backend and changed:
            why = f"backend={cell.backend.name}" + (" with workload=serve" if cell.serving else "")
            out.append(f"{_keys('backend.' + name, changed)} set but not used by {why}")
    for kind in _SERVER_KINDS:
        changed = _changed(getattr(cell.server, kind), ServerConfig, kind)
        used = cell.serving and cell.server.kind == kind and cell.backend.name != "sim"
        if changed and not used:
            where = f"server={cell.server.kind}" if cell.serving else "a static cell"
            if cell.serving and cell.backend.name == "sim":
                where = "backend=sim (its serving mode starts no server)"
            out.append(f"{_keys('server.' + kind, changed)} set but not used by {where} "
                       f"(they apply to workload=serve server={kind})")  # fmt: skip
    return out


def single_run_cluster(config: Any) -> list[str]:
    """The Ray cluster settings of a single run (no -m), which measures in this process."""
    ray = OmegaConf.select(config, "hydra.launcher.ray") or {}
    set_ = [f"hydra.launcher.ray.{k}={ray.get(k)}" for k in ("address", "sim_nodes") if ray.get(k)]
    if not set_:
        return []
    return [f"{', '.join(set_)} (cluster=...) set but not used: a single run measures in this "
            "process; add -m to run on the Ray cluster"]  # fmt: skip


def warn(lines: list[str], once: bool = True) -> None:
    """Each line on stderr; ``once``: only once per process (a sweep's many cells)."""
    for line in lines:
        if not once or line not in _SAID:
            _SAID.add(line)
            print(f"warning: {line}", file=sys.stderr, flush=True)


__all__ = ["ignored_settings", "single_run_cluster", "warn"]
