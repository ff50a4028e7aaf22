"""Do two sweeps come from the same environment? (before their numbers are compared)

Compared, over all records of each sweep: the device name (flat ``device_name``), and the
driver, CANN/CUDA, torch and engine versions of ``env`` (and of ``engine`` in whole
records). A different device name makes a comparison meaningless: it is refused unless the
user allows it; a different software version is what a baseline comparison is often for,
so it is a warning that names the key and both values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]

REFUSE = "refuse"
WARN = "warn"
# (where, key, severity): where is "flat", "env" or "engine".
ENV_KEYS = (
    ("flat", "device_name", REFUSE),
    ("env", "driver", WARN), ("env", "driver_version", WARN), ("env", "npu_driver", WARN),
    ("env", "cuda_driver", WARN), ("env", "cann", WARN), ("env", "cuda", WARN),
    ("env", "torch", WARN), ("env", "torch_npu", WARN), ("env", "transformers", WARN),
    ("env", "sglang", WARN), ("env", "vllm", WARN),
    ("engine", "name", WARN), ("engine", "sglang", WARN), ("engine", "version", WARN),
)  # fmt: skip


@dataclass(frozen=True)
class EnvDiff:
    key: str  # e.g. "device_name", "env.torch"
    new: tuple[str, ...]  # distinct values in the new sweep
    old: tuple[str, ...]  # distinct values in the baseline
    severity: str  # REFUSE or WARN

    def text(self) -> str:
        return f"{self.key}: new {', '.join(self.new)} vs baseline {', '.join(self.old)}"


def _value(rec: Record, where: str, key: str) -> Any:
    if where == "flat":
        return rec.get(key)
    part = rec.get(where)
    return part.get(key) if isinstance(part, dict) else None


def _values(records: Sequence[Record], where: str, key: str) -> tuple[str, ...]:
    seen = {_value(r, where, key) for r in records}
    seen.discard(None)
    return tuple(sorted(str(v) for v in seen))


def environment_diff(new: Sequence[Record], old: Sequence[Record]) -> list[EnvDiff]:
    """The keys whose values differ between the two sweeps; a key that neither sweep
    reports, or that only one of them reports, is not a difference."""
    out = []
    for where, key, severity in ENV_KEYS:
        a, b = _values(new, where, key), _values(old, where, key)
        if a and b and a != b:
            name = key if where == "flat" else f"{where}.{key}"
            out.append(EnvDiff(name, a, b, severity))
    return out


def refused(diffs: Sequence[EnvDiff]) -> list[EnvDiff]:
    return [d for d in diffs if d.severity == REFUSE]


def markdown_lines(diffs: Sequence[EnvDiff], allowed: bool) -> list[str]:
    """Lines for the top of compare.md; [] when the environments agree."""
    if not diffs:
        return []
    lines = ["**The two sweeps ran in different environments:**", ""]
    for d in diffs:
        tag = "different hardware" if d.severity == REFUSE else "different software"
        lines.append(f"- {tag}: `{d.text()}`")
    if refused(diffs) and allowed:
        lines += ["", "Compared anyway (`--allow-env-diff`): changes may come from the hardware."]
    return lines + [""]
