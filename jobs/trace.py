"""A recorded trace (the Mooncake format): what a `workload=trace` cell replays.

One JSON object a line: ``timestamp`` (ms since the trace's start), ``input_length`` and
``output_length`` (tokens), ``hash_ids`` (ids of the prompt's blocks of
``workload.trace.block_tokens`` tokens, 512 in Mooncake: requests that list the same id share
that block of their prompt). Read once here, checked, and refused with the line it failed on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from jobs.checks import ConfigError, at_least, positive_int

KEY = "workload.trace.path"


@dataclass(frozen=True)
class TraceRequest:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = field(default_factory=tuple)


def _request(obj: object, where: str) -> TraceRequest:
    if not isinstance(obj, dict):
        raise ConfigError(f"{KEY}: {where} is not a JSON object")
    try:
        ts = float(obj["timestamp"])
        inp, out = int(obj["input_length"]), int(obj["output_length"])
        ids = tuple(int(h) for h in obj.get("hash_ids") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{KEY}: {where} needs timestamp, input_length, output_length (and hash_ids): {exc}"
        ) from None
    if inp < 1 or out < 1 or ts < 0 or ts != ts:
        raise ConfigError(f"{KEY}: {where} needs lengths >= 1 and a timestamp >= 0")
    return TraceRequest(ts, inp, out, ids)


def read_trace(path: str | Path, max_requests: int = 0) -> list[TraceRequest]:
    """The trace's requests in timestamp order (the first ``max_requests``; 0 = all)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{KEY}={str(path)!r} is not allowed: no such file")
    reqs = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{KEY}: line {n} is not JSON ({exc.msg})") from None
        reqs.append(_request(obj, f"line {n}"))
    if not reqs:
        raise ConfigError(f"{KEY}={str(path)!r} is not allowed: the trace has no requests")
    reqs.sort(key=lambda r: r.timestamp_ms)
    return reqs[:max_requests] if max_requests else reqs


@dataclass
class TraceConfig:
    # A Mooncake-format JSONL trace: timestamp (ms), input_length, output_length, hash_ids.
    path: str | None = None
    speed: float = 1.0  # time scale: 2 = sent twice as fast as recorded
    max_requests: int = 0  # 0: every request of the trace
    block_tokens: int = 512  # tokens of one hash_ids block (Mooncake: 512)

    def check(self) -> None:
        if not self.path:
            raise ConfigError("workload.trace.path is not set: workload=trace needs a trace file")
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ConfigError(
                f"workload.trace.speed={self.speed!r} is not allowed: a finite number > 0"
            )
        at_least("workload.trace.max_requests", self.max_requests, 0)
        positive_int("workload.trace.block_tokens", self.block_tokens)
        read_trace(self.path, self.max_requests)  # a bad file is refused before anything runs


def trace_longest(trace: TraceConfig) -> int:
    """The longest request of a trace (input + output tokens)."""
    reqs = read_trace(trace.path or "", trace.max_requests)
    return max(r.input_length + r.output_length for r in reqs)


def trace_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
