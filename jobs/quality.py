"""What a cell checks about its tokens, and where it keeps the answers (docs/quality.md).

Two checks, both run after the measured window (never inside a timer):
  quality.*   the check prompts: a few seeded token-id prompts whose greedy continuations the
              record keeps, so the sweep's outputs can compare every cell with a reference
              cell of the same weights (aggregate/quality.py).
  accuracy.*  a task check on a local JSONL in gsm8k's format, scored by exact match on the
              final number, with a Wilson 95% interval; off until ``accuracy.path`` is set.
The settings are not part of a cell's identity (jobs/identity.py): checking tokens does not
change what is timed, so the cell ids stay what they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.checks import ConfigError

# record["quality"]["check_status"] and the flat key ``check_status``.
CHECK_OK = "ok"
CHECK_OFF = "off"  # quality.check=false
CHECK_NOT_APPLICABLE = "not_applicable"  # the backend has no tokens (the simulator, serving)
CHECK_FAILED = "failed"  # the check raised; the cell's timed numbers stand
CHECK_STATUSES = (CHECK_OK, CHECK_OFF, CHECK_NOT_APPLICABLE, CHECK_FAILED)

# Flat record keys of the two checks (null where a check did not run).
QUALITY_KEYS = (
    "check_status", "check_tokens", "check_s",
    "accuracy", "accuracy_low_95", "accuracy_high_95", "accuracy_n", "accuracy_correct",
    "accuracy_s",
)  # fmt: skip
# Flat keys the sweep's outputs add to results.csv and the report (never in record.json).
AGREEMENT_KEYS = (
    "agreement", "agreement_first_divergence", "agreement_reference", "agreement_verdict",
)  # fmt: skip


def _whole(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{name}={value!r} is not allowed: {name} must be a whole number in [{low}, {high}]"
        )


@dataclass
class QualityConfig:
    # Greedy continuations of the check prompts kept in the record (hf, sglang; the
    # simulator and serving cells say not_applicable).
    check: bool = True
    # How many check prompts, their length in tokens, and the greedy tokens kept per prompt.
    prompts: int = 4
    prompt_len: int = 16
    tokens: int = 32
    # Seed of the check prompts: the same for every cell, so cells can be compared.
    seed: int = 0

    def __post_init__(self) -> None:
        _whole("quality.prompts", self.prompts, 1, 64)
        _whole("quality.prompt_len", self.prompt_len, 1, 4096)
        _whole("quality.tokens", self.tokens, 1, 1024)
        _whole("quality.seed", self.seed, 0, 2**31 - 1)


@dataclass
class AccuracyConfig:
    # A local JSONL of {"question": ..., "answer": "... #### 42"} lines; empty: no task check.
    # The shipped arithmetic set: workers/quality/arith.jsonl.
    path: str | None = None
    # Flag `accuracy_low` below this exact-match score (0 = never).
    min: float = 0.0
    # Score the first N lines (0 = all of them).
    limit: int = 0
    # Greedy tokens generated per question.
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if self.path is not None and not str(self.path).strip():
            self.path = None
        if isinstance(self.min, bool) or not (
            isinstance(self.min, (int, float)) and 0.0 <= self.min <= 1.0
        ):
            raise ConfigError(
                f"accuracy.min={self.min!r} is not allowed: a score in [0, 1] (e.g. 0.5)"
            )
        _whole("accuracy.limit", self.limit, 0, 1_000_000)
        _whole("accuracy.max_new_tokens", self.max_new_tokens, 1, 4096)


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` successes in ``n`` trials (95% by default):
    honest at 0 and n correct, where the normal interval collapses to a point."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got {correct} of {n}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Rounding must not leave the score outside its own interval (at 0 or n correct).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))
