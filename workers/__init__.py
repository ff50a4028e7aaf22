"""What runs on a device: backends, device helpers, the measuring loop and the metrics.

Plain Python: ``workers.run_cell(cell)`` takes a validated ``CellConfig`` and returns a
result record (a dict). No Ray, no Hydra, no files.
"""

from __future__ import annotations

from typing import Any


def run_cell(cell: Any) -> dict[str, Any]:
    from workers.measure import run_cell as _run_cell

    return _run_cell(cell)


__all__ = ["run_cell"]
