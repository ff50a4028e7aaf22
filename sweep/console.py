"""The one console line of a finished cell (single runs and sweeps alike)."""

from __future__ import annotations

from typing import Any


def cell_line(rec: dict[str, Any], skipped: bool = False) -> str:
    """The one console line of a finished cell."""
    status = str(rec.get("status"))
    head = f"{'skipped' if skipped else status:<8} {rec.get('cell_dir')}"
    if status != "ok":
        err = rec.get("error") or {}
        first = (str(err.get("message") or "").strip().splitlines() or [""])[0]
        return f"{head}  {err.get('type', '')}: {first[:240]}"
    tps, e2e = rec.get("output_tokens_per_s"), rec.get("e2e_s_p50")
    flags = ",".join(rec.get("flags") or [])
    nums = f"{tps:.1f} tok/s, e2e p50 {e2e:.4f} s" if tps and e2e else ""
    return f"{head}  {nums}{'  [' + flags + ']' if flags else ''}"


__all__ = ["cell_line"]
