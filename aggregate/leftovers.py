"""What an abandoned sweep leaves in its directory and nobody reads: its partial results.

A sweep appends each record to ``.results.jsonl.partial`` and renames it to ``results.jsonl``
at its end; a sweep killed before that leaves the partial behind. It is stale when no live
sweep holds the directory's lock (``.sweep.lock``, an flock held for the sweep's life by
``hydra_plugins.ray_cells_launcher._lock``), or, in a directory without that lock file, when
it is older than the newest record. ``python -m aggregate DIR`` reads only ``record.json``
files, and removes a stale partial; a sweep removes it at its own start.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

PARTIAL_RESULTS = ".results.jsonl.partial"
SWEEP_LOCK = ".sweep.lock"  # the name hydra_plugins.ray_cells_launcher._lock gives it


def _live_sweep(sweep_dir: Path) -> bool | None:
    """Whether a live sweep holds the directory's lock (None: there is no lock file)."""
    try:
        fd = os.open(sweep_dir / SWEEP_LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def _newest_record(sweep_dir: Path) -> float:
    times = [p.stat().st_mtime for p in sweep_dir.rglob("record.json") if p.is_file()]
    return max(times, default=0.0)


def remove_stale_partial(sweep_dir: str | os.PathLike[str]) -> Path | None:
    """Remove the directory's stale partial results; the path removed, or None."""
    path = Path(sweep_dir) / PARTIAL_RESULTS
    if not path.is_file():
        return None
    live = _live_sweep(Path(sweep_dir))
    if live or (live is None and path.stat().st_mtime >= _newest_record(Path(sweep_dir))):
        return None
    try:
        path.unlink()
    except OSError as exc:
        log.warning("could not remove the stale %s: %s", path, exc)
        return None
    log.info("removed %s, left by a sweep that did not finish", path)
    return path
