"""Running a vendor's command-line tool (`npu-smi`, `nvidia-smi`): argv lists, never a shell.

``run_tool(argv, timeout)`` returns the tool's stdout or raises :class:`Unavailable` with a
one-line reason (which goes into the record); nothing else here raises.
"""

from __future__ import annotations

import subprocess


class Unavailable(RuntimeError):
    """A device tool or library is not usable here; the message says why (for the record)."""


def run_tool(argv: list[str], timeout: float) -> str:
    """stdout of ``argv``; raises Unavailable ("TimeoutExpired: ...", "exit N: stderr")."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()[-500:]
        raise Unavailable(f"exit {proc.returncode}: {msg}")
    return proc.stdout
