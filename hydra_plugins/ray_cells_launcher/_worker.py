"""The Ray actor that runs jobs, one after another, in one long-lived process."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import ray

# Accelerator ids Ray hands a worker, by the variable it sets.
VISIBLE_VARS = ("ASCEND_RT_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


@ray.remote(max_restarts=0, max_task_retries=0)
class JobWorker:
    """Runs a job through Hydra's ``run_job`` (``run``), or an app's runner on the job's
    payload (``run_direct``); state kept in the process (a loaded model) survives jobs."""

    def __init__(self, hydra_context: Any, task_function: Any, singletons: Any) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        if singletons is not None:  # run_job needs the driver's Hydra state
            from hydra.core.singleton import Singleton
            from hydra.core.utils import setup_globals

            # The driver's Hydra state (its OmegaConf resolvers included), through the
            # public Singleton API that Hydra's own joblib and ray launchers use.
            Singleton.set_state(singletons)
            setup_globals()

    def where(self) -> dict[str, Any]:
        ctx = ray.get_runtime_context()
        return {
            "ray_node_id": ctx.get_node_id(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "visible": {v: os.environ.get(v) for v in VISIBLE_VARS if os.environ.get(v)},
        }

    def run_direct(
        self, runner: Callable[[Any], Any], payload: Any, env: dict[str, str] | None = None
    ) -> tuple[tuple[bool, Any], dict[str, Any]]:
        """((True, result) or (False, the exception), where it ran); ``env``: variables set
        in this process first (its node's index)."""
        os.environ.update(env or {})
        try:
            result: tuple[bool, Any] = (True, runner(payload))
        except Exception as exc:
            result = (False, exc)
        return result, self.where()

    def run(
        self,
        sweep_config: Any,
        job_runtime: Any,
        keep: bool = True,
        env: dict[str, str] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobRuntime, run_job
        from omegaconf import OmegaConf

        os.environ.update(env or {})
        HydraConfig.instance().set_config(sweep_config)
        JobRuntime.instance().conf = job_runtime
        # The job starts where the app was launched, as with Hydra's own launchers (Ray would
        # leave it in its copy of the shipped working dir); run_job then moves into the
        # output dir if hydra.job.chdir. A node without that directory keeps Ray's.
        home = os.getcwd()
        launch_cwd = OmegaConf.select(sweep_config, "hydra.runtime.cwd", default=None)
        if launch_cwd and os.path.isdir(launch_cwd):
            os.chdir(launch_cwd)
        try:
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        finally:
            os.chdir(home)
        if not keep:  # the configs stay in the job's .hydra/ directory
            ret.cfg = ret.hydra_cfg = None
        return ret, self.where()
