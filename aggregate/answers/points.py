"""What the answers (SLO, Pareto, OOM frontier) look at: usable cells, per-card throughput,
and the load a cell put on its devices.

Works on whole records and on the flat rows a sweep keeps in memory alike: every key read
here is a flat top-level key, with a fallback into ``config`` for records written before
``devices_per_cell`` existed.
"""

from __future__ import annotations

import math
from typing import Any

from aggregate.serving import is_serving
from aggregate.tables import ok_number

Record = dict[str, Any]

# Serving records (a load generator against a server) carry these instead of a batch.
SERVING_LOAD_KEYS = ("request_rate", "concurrency")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def devices_per_cell(rec: Record) -> int:
    """Devices one cell ran on: the flat ``devices_per_cell``, else what its config says
    (``device.per_cell``, and SGLang's ``tp_size``), else 1."""
    flat = _int(rec.get("devices_per_cell"))
    if flat and flat >= 1:
        return flat
    config = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    device = config.get("device") if isinstance(config.get("device"), dict) else {}
    n = _int(device.get("per_cell")) or 1
    backend = config.get("backend") if isinstance(config.get("backend"), dict) else {}
    if backend.get("name") == "sglang" and isinstance(backend.get("sglang"), dict):
        n = max(n, _int(backend["sglang"].get("tp_size")) or 1)
    return max(n, 1)


def per_card(rec: Record, key: str = "output_tokens_per_s") -> float | None:
    """``key`` of an ok record divided by the devices the cell ran on (for output tokens/s,
    a serving record's own ``output_tokens_per_s_per_card`` when it has one)."""
    if key == "output_tokens_per_s":
        own = ok_number(rec, "output_tokens_per_s_per_card")
        if own is not None:
            return own
    value = ok_number(rec, key)
    return None if value is None else value / devices_per_cell(rec)


def usable(rec: Record) -> bool:
    """An ok cell whose numbers can be believed: not flagged ``above_bound``."""
    return rec.get("status") == "ok" and "above_bound" not in (rec.get("flags") or [])


def has_serving_load(rec: Record) -> bool:
    """Judged as serving by the answers: a serving record (``workload == "serve"``), or any
    record with a serving load (``request_rate`` / ``concurrency``), not a static batch."""
    return is_serving(rec) or any(rec.get(k) is not None for k in SERVING_LOAD_KEYS)


def server_settings(rec: Record) -> str:
    """What tells one server configuration from another (serving records), else ''."""
    if not has_serving_load(rec):
        return ""
    return str(rec.get("server_settings") or rec.get("server") or rec.get("backend"))


def number(value: Any) -> float | None:
    """A float for int/float values (inf allowed, NaN not); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def load_text(value: float | None) -> str:
    if value is None:
        return "?"
    if math.isinf(value):
        return "inf"
    return f"{value:g}"


def tokens_per_s_per_sequence(rec: Record) -> float | None:
    """1 / TPOT (mean, else p50): how fast one sequence's tokens arrive, tokens/s."""
    tpot = ok_number(rec, "tpot_s_mean")
    if tpot is None:
        tpot = ok_number(rec, "tpot_s_p50")
    return 1.0 / tpot if tpot and tpot > 0 else None
