"""A server process started by a worker: free loopback port, log file, health check, stop.

The server inherits the worker's environment, so it sees only the worker's devices
(``ASCEND_RT_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES`` set by Ray). It runs in its own
process group (stopped as a group: engines start helper processes) and, on Linux, gets
SIGKILL when the worker dies (``PR_SET_PDEATHSIG``, set by a small trampoline before it
execs the server), so a killed Ray actor leaves no server
behind. Its output goes to a log file; a failure record shows the part of it that says
what went wrong (``workers.serving.diagnosis.log_excerpt``), read after the server ended, and
each cell keeps the lines written during that cell.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from workers.serving.diagnosis import log_excerpt, probe

log = logging.getLogger(__name__)

POLL_S = 0.5
RSS_EVERY_S = 0.2  # how often the server's resident memory is sampled


class ServerFailed(RuntimeError):
    """The server could not start, died, or stopped answering; the message's first line says
    which and what the server did, then comes the part of its log that says what went wrong
    (``log_tail``, renewed by ``ServerProcess.settle`` once the server has ended)."""

    def __init__(self, what: str, reason: str, log_tail: str = "") -> None:
        self.what, self.reason, self.log_tail = what, " ".join(reason.split()), log_tail
        self.log_text = ""  # the whole log, where the raiser has it (for server.log)
        super().__init__(what, self.reason)

    def __str__(self) -> str:
        tail = f"\n--- from the server log ---\n{self.log_tail}" if self.log_tail else ""
        return f"server {self.what}: {self.reason}{tail}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Run first in the child (a fresh single-threaded Python: no preexec_fn in the threaded
# worker): ask Linux for SIGKILL when the worker dies, then become the server (exec keeps it).
_TRAMPOLINE = (
    "import ctypes,os,sys\n"
    "try: ctypes.CDLL('libc.so.6').prctl(1, 9)\n"
    "except OSError: pass\n"
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def with_parent_death(argv: list[str]) -> list[str]:
    """``argv`` started so that the server dies with the process that started it."""
    return [sys.executable, "-c", _TRAMPOLINE, *argv]


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssPeak:
    """The peak of a process tree's resident memory, sampled on a thread of its own."""

    def __init__(self, pid: int, every_s: float = RSS_EVERY_S) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self.pid))
            if self._stop.wait(self.every_s):
                return

    def stop(self) -> None:
        self._stop.set()


class ServerProcess:
    """One running server: ``start`` it, ``wait_healthy``, read its log, ``stop`` it."""

    def __init__(self, argv: list[str], base_url: str, health_path: str, name: str) -> None:
        self.argv, self.base_url, self.health_path = argv, base_url.rstrip("/"), health_path
        self.name = name
        fd, path = tempfile.mkstemp(prefix=f"llm-sweep-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.proc: subprocess.Popen | None = None
        self.stopped = False  # stop() ran: a second call does nothing
        self.last_answer: str | None = None  # what the last health check got (None: 200)
        self.rss: RssPeak | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        log.info("starting server: %s (log %s)", " ".join(self.argv), self.log_path)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                with_parent_death(self.argv), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        self.rss = RssPeak(self.proc.pid)

    @property
    def peak_rss_bytes(self) -> int | None:
        """The server's peak resident memory so far (its helper processes included)."""
        if self.rss is None:
            return None
        self.rss.peak = max(self.rss.peak, tree_rss(self.rss.pid))
        return self.rss.peak or None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def state_after_errors(self, timeout_s: float) -> str:
        """After failed requests: "exited" if the server exits, "healthy" as soon as its
        health path answers 200, else "hung" after ``timeout_s`` (a dying server drops its
        connections a moment before its exit can be seen, and stops answering health)."""
        end = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                return "exited"
            left = end - time.monotonic()
            if left <= 0:
                return "hung"
            if self.healthy(max(min(left, 2.0), 0.1)):
                return "healthy"
            time.sleep(min(0.1, max(end - time.monotonic(), 0)))

    def exit_text(self) -> str:
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return "still running"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """Whether the health path answers 200 (else ``last_answer`` says what it did)."""
        self.last_answer = probe(self.base_url + self.health_path, timeout_s)
        return self.last_answer is None

    def health_text(self) -> str:
        """What the last health check got, for a message ('' before any)."""
        if self.last_answer is None:
            return ""
        return f"{self.health_path} {self.last_answer}"

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds until the health check passed; ServerFailed if it died or never did."""
        t0 = time.monotonic()
        while True:
            if self.proc is not None and not self.alive():
                raise ServerFailed("could not start", self.exit_text(), self.log_tail())
            if self.healthy():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                last = f" (last: {self.health_text()})" if self.health_text() else ""
                raise ServerFailed(
                    "hung", f"no healthy answer within {timeout_s:g} s{last}", self.log_tail()
                )
            time.sleep(POLL_S)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, start: int = 0, limit: int = 1 << 20) -> str:
        """The log from byte ``start`` (at most its last ``limit`` bytes)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(start, self.log_size() - limit))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def cell_log(self, start: int) -> str:
        """The log of one cell: what the server wrote from byte ``start`` (the size of its log
        when the cell began; 0 for the cell that started it, whose log begins with how the
        server started) on. A reused server's cell holds no line of an earlier cell."""
        if start == 0:
            return self.log_text()
        note = (
            f"[server {self.name} (pid {self.pid}) started in an earlier cell: its log from there]"
        )
        return f"{note}\n{self.log_text(start)}"

    def log_tail(self, lines: int = 40) -> str:
        """The part of the log that says what went wrong (its last error line, its end)."""
        return log_excerpt(self.log_text(limit=256 * 1024), lines)

    def settle(self, exc: ServerFailed) -> None:
        """Stop the server, then renew the failure's log part and whole log from the ended
        server's log: the lines it wrote last (a traceback on the way out) are in them."""
        self.stop()
        exc.log_tail, exc.log_text = self.log_tail(), self.log_text()

    def discard(self) -> None:
        """Stop the server and remove its log file (in the temporary directory): for the end
        of its life, when the cells' records have taken what they need of the log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``grace_s``. Once: a second
        call (the exit hook of a server already stopped) does nothing and says nothing."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        if self.rss is not None:
            self.rss.stop()
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        try:  # helpers the server left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log.info("server %s stopped (%s)", self.name, self.exit_text())
