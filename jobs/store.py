"""The result store: atomic record files, reading them back, and the sweep directory lock."""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

from aggregate.files import atomic_write_text
from jobs.record import RECORD_FILE, SCHEMA_VERSION


class SweepBusy(RuntimeError):
    """Another live sweep is using this sweep directory."""


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_record(cell_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(cell_dir) / RECORD_FILE
    atomic_write_text(path, json.dumps(_clean(record), indent=1, default=str) + "\n")
    return path


def read_record(cell_dir: Path) -> dict[str, Any] | None:
    """The cell's record, or None when it is missing, cut short or not a record."""
    path = Path(cell_dir) / RECORD_FILE
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or "cell_id" not in rec or "status" not in rec:
        return None
    return rec


def finished_record(cell_dir: Path, cell_id: str) -> dict[str, Any] | None:
    """A record that lets resume skip the cell: ok, current schema, same cell."""
    rec = read_record(cell_dir)
    if rec is None or rec.get("status") != "ok":
        return None
    if rec.get("schema_version") != SCHEMA_VERSION or rec.get("cell_id") != cell_id:
        return None
    return rec


class SweepLock:
    """An exclusive flock on SWEEP/.sweep.lock, released when the process ends, however."""

    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / ".sweep.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SweepBusy(
                f"sweep directory {self.path.parent} is in use by a live sweep ({owner}); "
                "wait for it to finish, or choose another hydra.sweep.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
