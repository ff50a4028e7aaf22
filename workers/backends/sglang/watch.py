"""An SGLang engine failure becomes the cell's exception, not the end of this process.

SGLang runs the model in a scheduler process (and a detokenizer process). When one of them
fails (an exception such as device out-of-memory, or a crash its watchdog notices) it sends
SIGQUIT to this process, and SGLang's own handlers answer by killing this process's whole
tree: under Ray the worker dies and the cell is retried as `worker_lost`. Two hooks of SGLang
replace those handlers (both read from sglang 0.5.23's code, see tests/unit/test_sglang_contract.py):

- ``ServerArgs.custom_sigquit_handler``: installed with ``signal.signal`` while the engine
  starts (``_set_envs_and_config``), instead of the handler that kills the tree;
- ``TokenizerManager.signal_handler_class``: on the first request the tokenizer manager
  installs ``signal_handler_class(tm).running_phase_sigquit_handler`` on the engine's event
  loop (``loop.add_signal_handler``); :func:`guard_running_phase` swaps in a subclass whose
  handler calls ours.

:func:`on_sigquit` (module level, so it pickles by reference into the scheduler process with
ServerArgs) marks the active :class:`EngineWatch` failed and stops the engine's event loop if
a request is waiting on it: the blocked ``generate`` then raises, and the backend turns that
into :class:`EngineFailed` or :class:`~workers.base.CellOOM` with the reason taken from the
engine's error log. SGLang's processes log through ``SGLANG_LOGGING_CONFIG_PATH`` (a
``logging.config.dictConfig`` JSON every SGLang process applies): :meth:`EngineWatch.log_env`
adds a file handler for ERROR lines, so the scheduler's traceback is at hand here.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from workers.base import CellOOM

log = logging.getLogger(__name__)

LOG_CONFIG_ENV = "SGLANG_LOGGING_CONFIG_PATH"
TAIL_LINES = 12
_OOM = re.compile(r"out of memory|outofmemoryerror|not enough memory", re.IGNORECASE)

_ACTIVE: list[EngineWatch] = []  # the watch of this process's engine (one engine per process)


class EngineFailed(RuntimeError):
    """An SGLang engine process failed; the message carries the engine's own error."""


def on_sigquit(signum: int | None = None, frame: Any = None) -> None:
    """SGLang's ``custom_sigquit_handler``: a child process of the engine failed."""
    if not _ACTIVE:
        log.error("SIGQUIT from an SGLang child process, but no engine is being watched")
        return
    _ACTIVE[-1].trip()


def is_oom_text(text: str) -> bool:
    return bool(_OOM.search(text or ""))


class EngineWatch:
    """Failure state and error log of one engine (see the module docstring)."""

    def __init__(self, log_level: str = "error") -> None:
        self.failed = False
        self.loop: Any = None
        self._dir = Path(tempfile.mkdtemp(prefix="llm-sweep-sglang-"))
        self.error_log = self._dir / "errors.log"
        self._config = self._dir / "logging.json"
        self._config.write_text(json.dumps(logging_config(log_level, self.error_log)))
        self._previous: Any = None

    # -- lifecycle ----------------------------------------------------------------------
    def activate(self) -> None:
        """Become the watch ``on_sigquit`` reports to; remember the SIGQUIT disposition."""
        _ACTIVE.append(self)
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGQUIT)
        else:
            log.warning(
                "the SGLang engine starts outside the main thread: no SIGQUIT handler can be "
                "installed, and an engine failure may end this process"
            )

    def log_env(self) -> dict[str, str]:
        """Environment for the engine's processes: SGLang's logging config with our file."""
        return {LOG_CONFIG_ENV: str(self._config)}

    def attach(self, engine: Any) -> None:
        """After the engine started: its event loop, and the running-phase handler."""
        self.loop = getattr(engine, "loop", None)
        guard_running_phase(engine)

    def close(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGQUIT, self._previous)
            self._previous = None
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- failure --------------------------------------------------------------------------
    def trip(self) -> None:
        log.error("an SGLang engine process failed (SIGQUIT from a child process)")
        self.failed = True
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)  # the waiting generate() raises

    def errors(self) -> str:
        """The last ERROR lines SGLang's processes logged (their tracebacks), or ''."""
        try:
            lines = self.error_log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-TAIL_LINES:])

    def failure(self, exc: BaseException | None = None) -> Exception:
        """The exception the cell should end with: CellOOM or EngineFailed, with the reason."""
        engine_text = self.errors()
        parts = [p for p in (engine_text, str(exc) if exc is not None else "") if p]
        what = "the SGLang engine failed" if self.failed else "the SGLang engine raised"
        message = what + (": " + "\n".join(parts) if parts else " (no error was logged)")
        kind = CellOOM if is_oom_text("\n".join(parts)) else EngineFailed
        return kind(message)


def logging_config(level: str, error_log: Path) -> dict[str, Any]:
    """A dictConfig like SGLang's default (console at `level`) plus the ERROR lines of
    SGLang's own loggers (``sglang.*``) to a file: only the engine's errors, not this
    process's other logs, can end up as a cell's reason."""
    lvl = level.upper()
    fmt = {"format": "[%(asctime)s] %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": fmt},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain", "level": lvl},
            "errors": {
                "class": "logging.FileHandler",
                "filename": str(error_log),
                "formatter": "plain",
                "level": "ERROR",
            },
        },
        "loggers": {"sglang": {"level": lvl, "handlers": ["errors"], "propagate": True}},
        "root": {"level": lvl, "handlers": ["console"]},
    }


def guard_running_phase(engine: Any) -> bool:
    """Make the tokenizer manager's running-phase SIGQUIT handler call ``on_sigquit``.

    Returns False (and logs) when the engine has no such hook (another SGLang layout)."""
    manager = getattr(engine, "tokenizer_manager", None)
    base = getattr(manager, "signal_handler_class", None)
    if base is None or not hasattr(base, "running_phase_sigquit_handler"):
        log.warning("this SGLang has no tokenizer_manager.signal_handler_class hook: an engine "
                    "failure while running a request may end this process")  # fmt: skip
        return False

    def running_phase_sigquit_handler(self: Any, signum: Any = None, frame: Any = None) -> None:
        on_sigquit(signum, frame)

    manager.signal_handler_class = type(
        "WatchedSignalHandler",
        (base,),
        {"running_phase_sigquit_handler": running_phase_sigquit_handler},
    )
    return True
