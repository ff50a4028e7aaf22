"""A one-line live progress display for the driver (only on a terminal by default)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, skipped: int, mode: str = "auto") -> None:
        self.total = total
        self.skipped = skipped
        self.ok = 0
        self.failed = 0
        self.running = 0
        self.t0 = time.monotonic()
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self._last = 0.0

    def finished(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.update(self.running, force=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        done = self.ok + self.failed
        left = self.total - self.skipped - done
        eta = f"{elapsed / done * left:.0f}s" if done and left else ("0s" if not left else "?")
        return (
            f"[sweep] done {done + self.skipped}/{self.total} (ok {self.ok}, failed {self.failed}, "
            f"skipped {self.skipped}) running {self.running} | elapsed {elapsed:.0f}s ETA {eta}"
        )

    def update(self, running: int, force: bool = False) -> None:
        self.running = running
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last > 1.0:
            self._last = now
            sys.stderr.write("\r" + self.line() + "\x1b[K")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + self.line() + "\x1b[K\n")
            sys.stderr.flush()
