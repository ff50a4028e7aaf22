# No `from __future__ import annotations` and no dataclasses here: Hydra's plugin scanner
# executes this module outside sys.modules. The definitions live in _app.py.
"""The hooks an application gives the `ray_cells` launcher: see :mod:`._app`."""

from ._app import App, HostOutOfMemory, Job, Planner, WorkerLost

__all__ = ["App", "HostOutOfMemory", "Job", "Planner", "WorkerLost"]
