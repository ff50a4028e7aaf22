"""A sweep's files written by a process of its own, the writer, in a sweep of many cells.

The driver makes every file's bytes (sweep/records.py) and, from :data:`MIN_CELLS` cells on,
hands them to the writer over a pipe instead of writing them itself: a dispatched job's
``.hydra`` files and a finished job's record (and its cell files). The system calls of a
cell (two directories, three files and a rename, in a directory of every cell's: ~0.4 ms of
the driver's ~0.8 ms per cell at 20,000 cells, docs/benchmarks.md section 4) become two
pipe writes, and the writer makes the files on another core meanwhile. A smaller sweep
writes them in the driver's process (a process start costs more than its files).

- **Order**: the writer writes what it is given in the order given (a job's files before its
  record), with the same functions the driver uses (:mod:`jobs.files`): each record
  atomically, synced in bulk (:class:`jobs.files.RecordSync`).
- **Errors**: the first write that fails ends the writer, its error on its stderr; the driver's
  next message to it, or the sweep's end, raises :class:`WriterFailed` with that error.
- **Interrupts**: the writer runs in a session (and process group) of its own, so Ctrl-C in
  a terminal reaches only the driver, which ends the sweep as always and then closes the
  pipe. When the pipe closes (the driver is done, or was killed), the writer writes all it
  was given, syncs, and exits: a killed driver loses no record it had handed over.
"""

from __future__ import annotations

import marshal
import os
import signal
import struct
import subprocess
import sys

from jobs.files import RecordSync, write_hydra_files, write_record_files

MIN_CELLS = 256  # a sweep of fewer cells writes its files in the driver's process
_HEAD = struct.Struct("<I")  # each message: its length, then its marshal bytes
_JOB, _RECORD = 0, 1
_PIPE_BYTES = 1 << 20  # the pipe's buffer (Linux): the driver waits only when far ahead
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The writer's command: this project first on its path, whatever the driver's directory holds.
_START = f"import sys; sys.path.insert(0, {_ROOT!r}); from sweep.writer import serve; serve()"


class WriterFailed(OSError):
    """A write of the sweep's writer failed (the message is its error)."""


class FileWriter:
    """The driver's end of a writer process that syncs the filesystem of ``sweep_dir``."""

    def __init__(self, sweep_dir: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _START, sweep_dir],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            bufsize=0, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdin is not None
        self._fd = self.proc.stdin.fileno()
        self._error: str | None = None
        try:  # fcntl.F_SETPIPE_SZ (Linux); elsewhere the pipe's default
            import fcntl

            fcntl.fcntl(self._fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
        except (ImportError, OSError):
            pass

    def job_files(self, cell_dir: str, files: list[tuple[str, bytes]]) -> None:
        """:func:`jobs.files.write_hydra_files`, by the writer."""
        self._send((_JOB, cell_dir, files))

    def record(self, cell_dir: str, text: str, files: dict[str, str]) -> None:
        """:func:`jobs.files.write_record_files` (synced in bulk), by the writer."""
        self._send((_RECORD, cell_dir, text, files))

    def _send(self, message: tuple) -> None:
        blob = marshal.dumps(message)
        view = memoryview(_HEAD.pack(len(blob)) + blob)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BrokenPipeError:  # the writer has ended: a write failed
            raise self._failed() from None

    def close(self) -> None:
        """The end: close the pipe and wait until the writer has written and synced all it
        was given (its stderr read meanwhile); raises :class:`WriterFailed` if a write
        failed."""
        self._end()
        if self._error is not None:
            raise WriterFailed(self._error)

    def _failed(self) -> WriterFailed:
        """The writer's error (its last line on stderr), once it has ended."""
        self._end()
        return WriterFailed(self._error or "the sweep's file writer ended early (exit 0)")

    def _end(self) -> None:
        """Close the pipe, read the writer's stderr until it exits, keep its error (once)."""
        if self.proc.returncode is not None and self.proc.stderr is None:
            return
        _, err = self.proc.communicate()  # closes stdin (a broken pipe is ignored), waits
        self.proc.stderr = None
        if self.proc.returncode != 0:
            lines = (err or b"").decode(errors="replace").strip().splitlines()
            last = lines[-1] if lines else "no error written"
            self._error = f"the sweep's file writer failed (exit {self.proc.returncode}): {last}"


def serve() -> None:
    """The writer (a process of its own): messages from stdin until it closes, then a sync.
    ``sys.argv[1]``: the sweep directory, whose filesystem is synced."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver ends the sweep, then the pipe
    sync = RecordSync(sys.argv[1])
    read = sys.stdin.buffer.read
    while True:
        head = read(_HEAD.size)
        if len(head) < _HEAD.size:  # closed: the driver is done, or gone
            break
        size = _HEAD.unpack(head)[0]
        body = read(size)
        if len(body) < size:  # the driver died while sending it: the rest was written
            break
        message = marshal.loads(body)
        if message[0] == _JOB:
            write_hydra_files(message[1], message[2])
        else:
            write_record_files(message[1], message[2], message[3], sync)
    sync.flush()


__all__ = ["MIN_CELLS", "FileWriter", "WriterFailed", "serve"]
