"""A one-line live progress display for the driver (only on a terminal by default).

While it is shown, everything else written to stdout or stderr (the app's line per job, Ray's
forwarded worker logs) goes through a proxy that clears the progress line first and draws it
again after the text, so no output is ever appended to the progress line.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class _Proxy:
    """A stream that keeps the progress line at the bottom of the terminal."""

    def __init__(self, progress: Progress, stream: TextIO) -> None:
        self._progress = progress
        self._stream = stream

    def write(self, text: str) -> int:
        with self._progress.lock:
            self._progress.clear()
            n = self._stream.write(text)
            if text.endswith("\n"):
                self._stream.flush()
                self._progress.draw()
        return n

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Progress:
    def __init__(self, total: int, skipped: int, mode: str = "auto") -> None:
        self.total = total
        self.skipped = skipped
        self.ok = 0
        self.failed = 0
        self.running = 0
        self.longest = ""  # the longest-running job, e.g. "b100000-s8 for 2m10s"
        self.t0 = time.monotonic()
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self.lock = threading.RLock()
        self._shown = False
        self._last = 0.0
        self._term = sys.stderr
        self._saved: tuple[Any, Any] | None = None
        if self.enabled:
            self._saved = (sys.stdout, sys.stderr)
            sys.stdout = _Proxy(self, sys.stdout)  # type: ignore[assignment]
            sys.stderr = _Proxy(self, sys.stderr)  # type: ignore[assignment]

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
        longest = f" (longest: {self.longest})" if self.longest else ""
        return (
            f"[sweep] done {done + self.skipped}/{self.total} (ok {self.ok}, failed {self.failed}, "
            f"skipped {self.skipped}) running {self.running}{longest} | "
            f"elapsed {elapsed:.0f}s ETA {eta}"
        )

    def clear(self) -> None:
        if self._shown:
            self._term.write("\r\x1b[K")
            self._shown = False

    def draw(self) -> None:
        if self.enabled:
            self._term.write("\r" + self.line() + "\x1b[K")
            self._term.flush()
            self._shown = True

    def update(self, running: int, force: bool = False, longest: str = "") -> None:
        self.running = running
        self.longest = longest
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last > 1.0:
            self._last = now
            with self.lock:
                self.draw()

    def close(self) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.draw()
            self._term.write("\n")
            self._term.flush()
            self._shown = False
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None


def elapsed_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
