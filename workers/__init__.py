"""What runs on a device: backends, device helpers, the measuring loop and the metrics.

Plain Python: ``workers.run_cell(cell)`` takes a validated ``CellConfig`` and returns its
result record (a dict); ``workers.run.measure(cell)`` returns the bare ``Outcome`` that
a sweep's driver turns into the record. No Ray, no Hydra launcher, no reports.
"""

from __future__ import annotations

from typing import Any


def run_cell(cell: Any) -> dict[str, Any]:
    from workers.run import run_cell as _run_cell

    return _run_cell(cell)


__all__ = ["run_cell"]
