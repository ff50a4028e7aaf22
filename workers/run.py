"""One cell on this process: the one dispatch of static and serving cells, and the one place
where an exception inside a cell becomes a `failed` (or `oom`) outcome.

``measure(cell)`` always returns an :class:`~jobs.record.Outcome`, with the error and the end
of its traceback when the cell failed; the record is built from it by
:func:`jobs.record.build_record`. A static cell is measured by
:class:`workers.static.measure.StaticCell`, a serving cell (requests to a server) by
:class:`workers.serving.measure.ServingCell`, a simulated serving cell by
:class:`workers.backends.sim_serving.SimServingCell`; both keep their loaded model in
``workers.model_cache``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from jobs.config import CellConfig
from jobs.identity import PlannedCell
from jobs.record import Outcome, Status, build_record
from workers.env import environment, utc_now
from workers.model_cache import drop_models
from workers.static.measure import StaticCell

log = logging.getLogger(__name__)


class CellRun(Protocol):
    """The steps of one kind of cell, around the one failure wrapper below."""

    failure_level: int  # the level its failures are logged at

    def start(self, out: Outcome) -> None:
        """Record keys known before anything can fail (never raises)."""

    def run(self, out: Outcome) -> None:
        """Load (or reuse), measure and fill ``out`` with status ok; raises what the cell
        raised."""

    def is_oom(self, exc: BaseException) -> bool: ...

    def after_failure(self, exc: BaseException, out: Outcome) -> None:
        """After the models were dropped: what else a failure of this kind leaves."""

    def summary(self, out: Outcome) -> str:
        """The one-line summary of an ok cell for the log."""


def measure(cell: CellConfig, repeat: int | None = None) -> Outcome:
    """Measure one cell on this process's device. Never raises for a problem of the cell."""
    job: CellRun
    # The serving cells' modules (the HTTP client, aiohttp) are imported by serving cells
    # only: a static cell's worker goes without them.
    if cell.serving and cell.backend.name == "sim":  # a queueing model, no server process
        from workers.backends.sim_serving import SimServingCell

        job = SimServingCell(cell)
    elif cell.serving:
        from workers.serving.measure import ServingCell

        job = ServingCell(cell)
    else:
        job = StaticCell(cell, repeat)
    env = environment()
    out = Outcome(env=env, started_at=utc_now())
    out.fields.update(node=env["host"])
    job.start(out)
    try:
        job.run(out)
    except Exception as exc:  # every failure becomes a record; the sweep goes on
        failed = Outcome.failure(exc, Status.OOM if job.is_oom(exc) else Status.FAILED)
        out.status, out.error = failed.status, failed.error
        first = str(exc).splitlines()[0] if str(exc) else ""
        log.log(job.failure_level, "[%s] %s: %s", cell.model.name, out.status.value, first)
        drop_models()  # a failed cell may leave its model or server in a bad state
        job.after_failure(exc, out)
    out.finished_at = utc_now()
    if out.status == Status.OK:
        log.info("[%s] ok %s", cell.model.name, job.summary(out))
    return out


def run_planned(sent: PlannedCell | tuple) -> Outcome:
    """The runner a sweep's workers are given (``hydra.launcher.app``'s ``runner``): measure
    the planned cell here (sent as :meth:`PlannedCell.wire` makes it, or as itself). It lives
    here, not with the sweep's hooks, so that a worker imports the measuring code only (not
    Hydra, the outputs or the results store)."""
    planned = PlannedCell.unwire(sent)
    return measure(planned.cell, planned.repeat)


def run_cell(cell: CellConfig) -> dict[str, Any]:
    """Measure one cell and return its record (for notebooks, tests and single runs)."""
    return build_record(cell, measure(cell))
