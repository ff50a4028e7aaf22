"""Starting or joining Ray, and checking that a resource request can ever be met."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

log = logging.getLogger(__name__)

_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "outputs",
    "multirun",
    "**/__pycache__",
    "*.pyc",
    ".ruff_cache",
]


class Infeasible(RuntimeError):
    """A job asks for resources that no node of the cluster has."""


@dataclass
class Session:
    """What `start` set up, so that `stop` undoes exactly that and nothing more."""

    owned: bool  # this launch called ray.init (and must shut it down)
    cluster: Any = None  # the simulated Cluster, when sim_nodes > 0


def start(ray_cfg: Any, working_dir: str | None, env_vars: dict[str, str]) -> Session:
    """Start/join Ray for one launch.

    A Ray already initialised in this process (by the caller) is used as it is and left
    running: its runtime_env and resources are the caller's, the launcher's ray settings
    do not apply to it.
    """
    if ray.is_initialized():
        log.info("using the Ray already initialised in this process; launcher ray settings ignored")
        return Session(owned=False)
    runtime_env: dict[str, Any] = {}
    if working_dir:
        runtime_env["working_dir"] = working_dir
        runtime_env["excludes"] = _EXCLUDES
    if env_vars:
        runtime_env["env_vars"] = env_vars
    common: dict[str, Any] = {
        "runtime_env": runtime_env or None,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
    }
    node_args: dict[str, Any] = {
        "num_cpus": ray_cfg.num_cpus,
        "num_gpus": ray_cfg.num_gpus,
        "resources": dict(ray_cfg.resources or {}) or None,
    }
    node_args = {k: v for k, v in node_args.items() if v is not None}
    session = Session(owned=True)
    try:
        if ray_cfg.address:
            log.info("joining Ray cluster at %s", ray_cfg.address)
            ray.init(address=ray_cfg.address, **common)
        elif ray_cfg.sim_nodes and ray_cfg.sim_nodes > 0:
            from ray.cluster_utils import Cluster

            head = dict(node_args, include_dashboard=False)
            session.cluster = Cluster(initialize_head=True, head_node_args=head)
            for _ in range(ray_cfg.sim_nodes - 1):
                session.cluster.add_node(**node_args)
            session.cluster.wait_for_nodes()
            ray.init(address=session.cluster.address, **common)
            log.info("started %d simulated Ray nodes", ray_cfg.sim_nodes)
        else:
            # address="local": always a fresh private instance, never one left behind by
            # another run.
            ray.init(
                address="local",
                include_dashboard=bool(ray_cfg.include_dashboard),
                dashboard_host="127.0.0.1",
                **node_args,
                **common,
            )
    except BaseException:
        stop(session)  # nothing half-started is left behind
        raise
    return session


def stop(session: Session) -> None:
    if session.owned and ray.is_initialized():
        ray.shutdown()
    if session.cluster is not None:
        session.cluster.shutdown()


def alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def _need(shape: dict[str, Any]) -> dict[str, float]:
    need = dict(shape.get("resources") or {})
    if shape.get("num_cpus"):
        need["CPU"] = float(shape["num_cpus"])
    if shape.get("num_gpus"):
        need["GPU"] = float(shape["num_gpus"])
    return need


def capacity(shape: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> int:
    """How many workers of this shape the alive nodes can hold at once."""
    need = {k: v for k, v in _need(shape).items() if v > 0}
    total = 0
    for node in alive_nodes() if nodes is None else nodes:
        have = node.get("Resources", {})
        if not need:
            total += max(1, int(have.get("CPU", 1)))
            continue
        total += int(min(have.get(k, 0.0) // v for k, v in need.items()))
    return total


def check_feasible(shape: dict[str, Any], what: str) -> None:
    """Raise Infeasible at once (Ray itself would wait forever)."""
    if capacity(shape) > 0:
        return
    need = _need(shape)
    have: dict[str, float] = {}
    for node in alive_nodes():
        for k, v in node.get("Resources", {}).items():
            if k in ("CPU", "GPU", "memory", "object_store_memory") or k.isupper():
                have[k] = max(have.get(k, 0.0), v)
    need_s = ", ".join(f"{k}: {v:g}" for k, v in need.items())
    have_s = ", ".join(f"{k}: {v:g}" for k, v in sorted(have.items()) if "memory" not in k)
    raise Infeasible(
        f"{what} needs {{{need_s}}} on one node, but no node of the Ray cluster has that "
        f"(largest node offers {{{have_s}}})"
    )


def project_root() -> str:
    return str(Path.cwd())
