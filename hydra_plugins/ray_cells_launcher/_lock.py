"""One live sweep per sweep directory: an exclusive flock, released when the process ends."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class SweepBusy(RuntimeError):
    """Another live sweep is using this sweep directory."""


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
