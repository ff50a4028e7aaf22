"""How a `launch.py` process ends: its exit code.

0: every cell it ran or skipped ended ok; 1: some cell did not (or has no record);
2: bad input (:func:`die`, nothing written); 130: interrupted (the launcher's own exit).
"""

from __future__ import annotations

import sys
from typing import Any

BAD_INPUT = 2


class ExitStatus:
    """How the cells of one process ended, for its exit code. The app of a sweep
    (:class:`sweep.app.CellSweepApp`) and the single-run task count into the one they are
    given; launch.py exits with its :meth:`code`."""

    def __init__(self) -> None:
        self.not_ok = 0

    def count(self, record: dict[str, Any]) -> None:
        """One finished (or resumed) cell's record."""
        if record.get("status") != "ok":
            self.not_ok += 1

    def count_missing(self, n: int) -> None:
        """Cells of the sweep left without a record."""
        self.not_ok += n

    def code(self) -> int:
        return 1 if self.not_ok else 0


#: This process's status. launch.py passes it to the single-run task and exits with its code;
#: the launcher builds the sweep's app from a dotted path (Hydra passes it no object), so the
#: app counts into this one unless it is given another.
PROCESS = ExitStatus()


def die(message: str, code: int = BAD_INPUT) -> None:
    """Bad input: one clear line on stderr and a non-zero exit, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


__all__ = ["BAD_INPUT", "PROCESS", "ExitStatus", "die"]
