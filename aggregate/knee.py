"""The SLO search's section of report.md: SWEEP/knee.md as `hydra/sweeper=slo_search` wrote it
(hydra_plugins/ray_cells_launcher/_slo_write.py), so a report written again keeps it."""

from __future__ import annotations

import os
from pathlib import Path

KNEE_MD = "knee.md"


def knee_section(sweep_dir: str | os.PathLike[str]) -> list[str]:
    """The lines of SWEEP/knee.md, or none when the sweep had no SLO search."""
    path = Path(sweep_dir) / KNEE_MD
    try:
        return [*path.read_text(encoding="utf-8").rstrip("\n").splitlines(), ""]
    except OSError:
        return []
