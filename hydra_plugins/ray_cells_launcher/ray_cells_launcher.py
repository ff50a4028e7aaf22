"""The `ray_cells` Hydra launcher: config dataclass and a thin Launcher class.

Works for any Hydra app: each job runs through Hydra's own ``run_job`` (overrides, job
numbering, ``hydra.sweep.dir``/``subdir``, callbacks, ``JobReturn``) inside a long-lived Ray
actor, so state kept in the worker process (a loaded model) survives from one job to the next.
An optional ``app`` (a dotted path to a class) customises placement, resume, result writing
and the end of the sweep; without it every job takes one CPU and nothing is skipped.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class RayInitConf:
    # None: start a private local Ray. "auto" or "HOST:PORT": join an existing cluster.
    address: Optional[str] = None
    # Resources of the local Ray (ignored when joining a cluster).
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    resources: Dict[str, float] = field(default_factory=dict)
    # >0: start this many Ray nodes on this machine (ray.cluster_utils.Cluster), each with
    # num_cpus/num_gpus/resources as above. For rehearsals and tests.
    sim_nodes: int = 0
    # The dashboard stays off unless asked; when on it binds to 127.0.0.1 only.
    include_dashboard: bool = False


@dataclass
class RayCellsLauncherConf:
    _target_: str = "hydra_plugins.ray_cells_launcher.ray_cells_launcher.RayCellsLauncher"
    ray: RayInitConf = field(default_factory=RayInitConf)
    # Dotted path of a class with the app's hooks (see _core.App); None: generic jobs.
    app: Optional[str] = None
    # Keyword arguments of the app's constructor (the app's own settings).
    app_options: Dict[str, Any] = field(default_factory=dict)
    # Skip the jobs the app says are already done (a finished result from an earlier launch).
    resume: bool = True
    # Re-runs of a job whose worker process died (killed, segfault, node lost).
    max_retries: int = 2
    # Seconds a job may run before its worker is killed and the job failed (0: no limit).
    job_timeout_s: float = 0.0
    # Seconds jobs may wait while no alive node could ever run them (their nodes died)
    # before they are failed; with nodes that merely are busy, jobs wait as long as needed.
    stall_timeout_s: float = 60.0
    # Ship the project directory to the workers through Ray's runtime_env working_dir.
    ship_working_dir: bool = True
    # Live progress line: auto (only on a terminal) | on | off.
    progress: str = "auto"
    # Keep each job's composed config in its JobReturn (cfg, hydra_cfg), as Hydra's own
    # launchers do. false: drop them so the driver's memory stays flat over thousands of
    # jobs (every job's config is still saved in its .hydra/ directory).
    keep_job_configs: bool = True
    # Fleet mode (hydra/sweeper=fleet sets it): every job runs once on every device of the
    # cluster (all nodes), each copy on its own device (_fleet.py).
    fleet: bool = False


ConfigStore.instance().store(
    group="hydra/launcher", name="ray_cells", node=RayCellsLauncherConf, provider="ray_cells"
)


class RayCellsLauncher(Launcher):
    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from . import _core  # imported lazily: keeps Hydra's plugin discovery fast

        return _core.launch(self, job_overrides, initial_job_idx)
