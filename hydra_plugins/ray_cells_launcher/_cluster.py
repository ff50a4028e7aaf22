"""The Ray cluster: starting or joining it, stopping what was started, and checking that a
resource request can ever be met."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RuntimeEnvSetupError

from . import _watchdog

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


class Unreachable(RuntimeError):
    """No Ray cluster answers at the address the launcher was given."""


class Unshippable(RuntimeError):
    """Ray refused to ship the project directory to its workers (most often: over its size
    limit, a model or a virtual environment inside the project)."""


# Ray's walk logs each ignore file it honours (INFO): not on the console of a refused launch.
_WALK_LOG = logging.getLogger(f"{__name__}.walk")
_WALK_LOG.setLevel(logging.WARNING)


def shipped_sizes(working_dir: str, top: int = 3) -> list[tuple[str, int]]:
    """The ``top`` largest entries of ``working_dir`` that Ray ships, by their files' bytes,
    walked the way Ray walks it (its own traversal: our excludes, .gitignore and .rayignore,
    symlinks followed). [] when Ray's private walk is not what this code expects."""
    try:
        from ray._private.runtime_env.packaging import _dir_travel, _get_excludes
    except ImportError:
        return []
    root = Path(working_dir).absolute()
    sizes: dict[str, int] = {}

    def add(path: Path) -> None:
        if path != root and not path.is_dir():
            name = path.relative_to(root).parts[0]
            sizes[name] = sizes.get(name, 0) + path.stat().st_size

    gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    try:
        _dir_travel(root, [_get_excludes(root, list(_EXCLUDES))], add, include_gitignore=gitignore,
                    logger=_WALK_LOG)  # fmt: skip
    except (TypeError, OSError):
        return []
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:top]


def unshippable(exc: BaseException, working_dir: str) -> Unshippable:
    """Ray's refusal to ship ``working_dir`` as one line: Ray's reason, what is largest
    there, and the two ways out."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = next((line for line in lines if "upload" in line.lower()), lines[-1] if lines else "")
    reason = reason.split(" to the Ray cluster: ", 1)[-1].split(". ", 1)[0].rstrip(".")
    largest = ", ".join(f"{name} ({size / 2**20:.1f} MiB)" for name, size in
                        shipped_sizes(working_dir))  # fmt: skip
    return Unshippable(
        f"hydra.launcher.ship_working_dir=true: Ray could not ship {working_dir} to its "
        f"workers ({reason}){'; largest there: ' + largest if largest else ''}. List large "
        "folders in .gitignore or .rayignore there, or set "
        "hydra.launcher.ship_working_dir=false where every node has the code at this path"
    )


CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str, origin: str = "hydra.launcher.ray.address") -> None:
    """Fail within seconds for an address where nothing listens (ray.init would retry for
    minutes). "auto" and ray:// addresses are left to Ray, which fails fast for them."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise Unreachable(f"{origin}={address!r} is not allowed: use HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise Unreachable(
            f"{origin}={address}: no Ray cluster answers there ({exc}); "
            "start one with `ray start --head`, or check the address"
        ) from None


def quiet_ray() -> None:
    """Keep Ray's console to what matters, before Ray starts: no notice that token
    authentication is on (its default, which stays), our working_dir excludes replace Ray's
    defaults (it warns about each), and no colour codes in worker log prefixes when the
    console is not a terminal."""
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    os.environ.setdefault("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", "")
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    # Ray looks for Ascend NPUs by importing CANN's `acl` and logs a traceback when it is
    # absent (a rehearsal with declared NPUs); the resources are declared, nothing is lost.
    logging.getLogger("ray._private.accelerators.npu").setLevel(logging.CRITICAL)


@dataclass
class Cluster:
    """The Ray cluster `start` started or joined, so that `stop` undoes exactly that and
    nothing more."""

    owned: bool  # this launch called ray.init (and must shut it down)
    simulated: Any = None  # ray.cluster_utils.Cluster, when sim_nodes > 0
    used: str = ""  # which Ray this launch ran on, in words (the records' ray_cluster)


def join_address(ray_cfg: Any) -> tuple[str | None, str]:
    """(the address to join or None, where it came from). hydra.launcher.ray.address (what
    cluster=existing sets) comes first; then simulated nodes (sim_nodes > 0) are started;
    then RAY_ADDRESS, Ray's own way to name a cluster (set by `ray job submit` for its
    entrypoint, or by the user); else None: a private local Ray. A RAY_ADDRESS that is an
    http(s) URL names a dashboard (for `ray job submit`), not a cluster a driver can join:
    it is left alone."""
    if ray_cfg.address:
        return str(ray_cfg.address), "hydra.launcher.ray.address"
    if ray_cfg.sim_nodes and ray_cfg.sim_nodes > 0:
        return None, "hydra.launcher.ray.sim_nodes"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and not env.startswith(("http://", "https://")):
        return env, "RAY_ADDRESS"
    if env:
        log.warning("RAY_ADDRESS=%s is a dashboard URL, not a cluster: starting a private Ray", env)
    return None, "default"


JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray for the driver of a Ray job


def job_runtime_env() -> dict[str, Any]:
    """The runtime_env of the Ray job this driver runs in (`ray job submit`), or {}."""
    try:
        return dict(json.loads(os.environ[JOB_CONFIG_ENV]).get("runtime_env") or {})
    except (KeyError, ValueError, TypeError, AttributeError):
        return {}


def _init_args(ray_cfg: Any, working_dir: str | None, env_vars: dict[str, str]) -> tuple:
    """(arguments of every ray.init, the resources of nodes this launch starts). Inside a
    Ray job whose runtime_env ships a working_dir (`ray job submit --working-dir .`), that
    one ships the code to the workers: Ray refuses a second (and env_vars the job sets)."""
    job = job_runtime_env()
    if working_dir and job.get("working_dir"):
        log.info("running in a Ray job: its working_dir ships the code to the workers")
        working_dir = None
    env_vars = {k: v for k, v in env_vars.items() if k not in (job.get("env_vars") or {})}
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
    return common, {k: v for k, v in node_args.items() if v is not None}


def _private_auth() -> None:
    """Ray binds its gRPC servers to every interface (Ray 2.60: not configurable); what keeps
    a private Ray private is its token authentication, on by default in Ray 2.60 (Ray makes
    and keeps the token itself; setting RAY_AUTH_MODE=token here instead would make Ray look
    for a token nobody made). A user's RAY_AUTH_MODE is kept, with a warning when it turns the
    token off."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode and mode != "token":
        log.warning("RAY_AUTH_MODE=%s: the private Ray's servers listen on every interface of "
                    "this host and accept callers without a token", mode)  # fmt: skip


# A Ray this launch starts prestarts no idle workers: Ray would start some at once for the
# default runtime env, and every cell's actor runs in ours (the working_dir, the cells' env
# vars), so none of them could be used: they only took CPU while Ray starts (two processes
# on a 2-core machine) and memory until the end.
PRIVATE_SYSTEM_CONFIG = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}


def _join(address: str, common: dict[str, Any]) -> None:
    log.info("joining Ray cluster at %s", address)
    try:
        ray.init(address=address, **common)
    except ConnectionError as exc:
        raise Unreachable(f"hydra.launcher.ray.address={address}: {exc}") from None


def _simulated_nodes(n: int, node_args: dict[str, Any], common: dict[str, Any]) -> Any:
    from ray.cluster_utils import Cluster as SimulatedCluster

    nodes = SimulatedCluster(
        initialize_head=True,
        head_node_args=dict(
            node_args, include_dashboard=False, _system_config=PRIVATE_SYSTEM_CONFIG
        ),
    )
    for _ in range(n - 1):
        nodes.add_node(**node_args)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, **common)
    log.info("started %d simulated Ray nodes", n)
    return nodes


def start(ray_cfg: Any, working_dir: str | None, env_vars: dict[str, str]) -> Cluster:
    """Start/join Ray for one launch.

    A Ray already initialised in this process (by the caller) is used as it is and left
    running: its runtime_env and resources are the caller's, the launcher's ray settings
    do not apply to it.
    """
    if ray.is_initialized():
        log.info("using the Ray already initialised in this process; launcher ray settings ignored")
        return Cluster(owned=False, used="the caller's Ray (already initialised)")
    quiet_ray()
    address, origin = join_address(ray_cfg)
    if address:
        check_reachable(address, origin)
    common, node_args = _init_args(ray_cfg, working_dir, env_vars)
    cluster = Cluster(owned=True)
    # A Ray this launch starts runs as its children: they end with it, even after kill -9.
    before = None if address else _watchdog.start_watchdog()
    if not address:
        _private_auth()
    try:
        if address:
            _join(address, common)
            cluster.used = f"joined {address} ({origin})"
        elif ray_cfg.sim_nodes and ray_cfg.sim_nodes > 0:
            cluster.simulated = _simulated_nodes(ray_cfg.sim_nodes, node_args, common)
            cluster.used = f"private, {ray_cfg.sim_nodes} simulated nodes"
        else:
            cluster.used = "private local Ray"
            # address="local": always a fresh private instance, never one left behind.
            ray.init(
                address="local",
                include_dashboard=bool(ray_cfg.include_dashboard),
                dashboard_host="127.0.0.1",
                _system_config=PRIVATE_SYSTEM_CONFIG,
                **node_args,
                **common,
            )
    except BaseException as exc:
        stop(cluster)  # nothing half-started is left behind
        shipped = (common.get("runtime_env") or {}).get("working_dir")  # none in a Ray job's
        if shipped and isinstance(exc, RuntimeEnvSetupError) and "working_dir" in str(exc):
            raise unshippable(exc, shipped) from None
        raise
    finally:
        if before is not None:
            _watchdog.watch(before)
    return cluster


def stop(cluster: Cluster) -> None:
    if cluster.owned and ray.is_initialized():
        ray.shutdown()
    if cluster.simulated is not None:
        cluster.simulated.shutdown()


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
