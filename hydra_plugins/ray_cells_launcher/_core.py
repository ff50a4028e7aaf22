"""The work of the `ray_cells` launcher: plan jobs, skip the finished ones, run the rest.

Expected failures (a setting out of range, a cluster that is not there, a request no node can
meet) end in one `error:` line; Ctrl-C or SIGTERM, once or more, still write the app's
outputs and stop Ray. Scheduling is _scheduler.py; Ray and planning, _session.py.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import configure_log, setup_globals

from . import _cluster, _fleet
from ._app import App, Job
from ._compose import Composer
from ._progress import Progress
from ._scheduler import Scheduler
from ._session import Planner, finished_return, interrupt, open_session, release
from ._settings import Settings, SettingsError

log = logging.getLogger(__name__)


def _load_app(s: Settings) -> App:
    if not s.app:
        return App()
    module, _, name = s.app.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), name)(**s.app_options)


def _task_dir(task_function: Any) -> str | None:
    """The directory of the task function's source file, to ship to the workers.

    A callable object counts by its class. None when there is no file (an interactive
    ``__main__``, a builtin) or when the code is installed (site-packages): installed code is
    on the workers already, and shipping a library's folder would put it first on their path.
    """
    obj = task_function
    if not (inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj)):
        obj = type(obj)
    try:
        path = os.path.abspath(inspect.getfile(obj))
    except (TypeError, OSError):
        return None
    if any(part in ("site-packages", "dist-packages") for part in Path(path).parts):
        return None
    return os.path.dirname(path)


EXPECTED = (SettingsError, _cluster.Infeasible, _cluster.Unreachable, _cluster.Unshippable)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], start_idx: int) -> list:
    """Plan, skip what is done, run the rest; expected failures end in one `error:` line,
    and Ctrl-C or SIGTERM (once or more) still write the app's outputs and stop Ray."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    jobs: list[Job] = []
    old_term = signal.signal(signal.SIGTERM, interrupt)
    try:
        _launch(launcher, job_overrides, start_idx, jobs)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        signal.signal(signal.SIGTERM, old_term)
    return [job.ret for job in jobs if job.ret is not None]


def _launch(launcher: Any, overrides: Sequence[Sequence[str]], start: int, jobs: list) -> None:
    s = Settings.of(launcher.params)
    app = _load_app(s)
    sweep_dir = os.path.abspath(str(launcher.config.hydra.sweep.dir))
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    work_dir = _task_dir(launcher.task_function) if s.ship_working_dir else None
    session = open_session(s, work_dir, app.env_vars())  # a sweeper's rounds: one
    # Hydra's own lists of overrides, not copies (nothing changes them; 100,000 jobs).
    jobs += [Job(start + i, o if isinstance(o, list) else list(o)) for i, o in enumerate(overrides)]
    interrupted = frozen = False
    try:
        composer = Composer(launcher.config, launcher.hydra_context.config_loader)
        app.prepare(jobs, sweep_dir, Planner(composer, sweep_dir, session))
        # Planning's alone: its caches (a parsed override per distinct line, ~120 B per job
        # of a sweep over a range) are not kept through the run.
        del composer
        if s.fleet:  # every job on every device of the cluster
            _fleet.fan_out(app, jobs, session.nodes())
        todo = _skip_done(app, jobs, s)
        log.info(
            "ray_cells: %d jobs, %d already done, %d to run; sweep dir %s",
            len(jobs), len(jobs) - len(todo), len(todo), sweep_dir,
        )  # fmt: skip
        if todo:
            progress = Progress(len(jobs), len(jobs) - len(todo), s.progress)
            frozen = _freeze_planned()
            Scheduler(launcher, app, s, session, progress).run(todo)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: running jobs cancelled, finished results kept")
        raise
    finally:
        # Nothing interrupts the cleanup: a second Ctrl-C must not lose the outputs or leave
        # Ray running.
        old = (
            signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.signal(signal.SIGTERM, signal.SIG_IGN),
        )
        try:
            release(session)
            app.on_end(jobs, sweep_dir, interrupted)
        finally:
            if frozen:
                gc.unfreeze()
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])


def _freeze_planned() -> bool:
    """Leave what exists when the scheduler starts (the planned jobs and all loaded before:
    ~155,000 objects in a sweep of 30,000 cells) out of the cyclic garbage collector's scans
    until the outputs are written (``gc.freeze``; :func:`_launch` unfreezes them): each of
    its full collections walked them all again, while the run and the end make new objects.
    A freeze the host process made is its own: then nothing is frozen (or unfrozen)."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


def _skip_done(app: App, jobs: list[Job], s: Settings) -> list[Job]:
    todo = []
    for job in jobs:
        done = app.is_done(job) if s.resume else None
        if done is not None:
            job.ret = finished_return(job, done)
        else:
            todo.append(job)
        if not s.keep_job_configs:
            job.config = None  # composed again when dispatched: the driver's memory stays flat
    return todo


__all__ = ["launch"]
