"""The backend interface and the lazy registry of backends.

A backend loads a model once (``load``) and then runs one timed generate call per
``run_iteration``. The measuring loop in :mod:`workers.static.measure` owns warm-up, repetition and
metrics, so every backend is measured the same way.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from jobs.config import CellConfig


class CellOOM(RuntimeError):
    """The device ran out of memory in this cell (recorded with status `oom`)."""


class BackendUnavailable(RuntimeError):
    """The backend's package is not installed or not usable here."""


@dataclass
class IterationResult:
    """One timed generate call of `batch` sequences."""

    e2e_s: float  # submit to last token, device synchronised
    ttft_s: float | None  # submit to first token of the batch (prefill + first sample)
    step_times_s: list[float] = field(default_factory=list)  # end of each decode step, from submit
    generated_tokens: int = 0  # counted from the output, all sequences together
    per_sequence_tokens: list[int] = field(default_factory=list)


@dataclass
class BackendReport:
    """What a backend adds to its cell's record after measuring (every part optional)."""

    engine: dict[str, Any] | None = None  # record["engine"]: what really ran, with its settings
    flags: list[str] = field(default_factory=list)  # jobs.record.Flag values it raises
    # Peak memory keys (peak_memory_bytes, ...) where the device counters of this process
    # cannot see the model (an engine in another process); None: use the device's counters.
    memory: dict[str, int | None] | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the backend's own flat record keys


class Backend(ABC):
    """One model loaded on one device."""

    name: str = ""
    #: Simulated backends produce roofline-based numbers, never measurements.
    simulated: bool = False
    #: Which repeat of its cell is being measured (bench.repeats; None: the cell has one).
    #: Real devices vary by themselves; the simulator seeds its noise with it.
    repeat: int | None = None

    def __init__(self, cell: CellConfig, device: Any) -> None:
        self.cell = cell
        self.device = device

    @abstractmethod
    def load(self) -> None:
        """Load weights onto the device (called once; reused across cells)."""

    @abstractmethod
    def prepare(self, cell: CellConfig) -> None:
        """Build the inputs of a cell (prompts), outside any timer."""

    @abstractmethod
    def run_iteration(self) -> IterationResult:
        """One generate call of the prepared cell, timed with device synchronisation."""

    def model_info(self) -> dict[str, Any]:
        """Facts about the loaded model (parameters, config) for records and bounds."""
        return {}

    def report(self) -> BackendReport:
        """After the measured iterations: what this backend adds to the record."""
        return BackendReport()

    def greedy_ids(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]] | None:
        """Exactly ``new_tokens`` greedy token ids after each token-id prompt, run outside
        every timer (the check prompts, workers/quality/); None: this backend has no tokens."""
        return None

    def greedy_text(self, prompts: list[str], max_new_tokens: int) -> list[str] | None:
        """Greedy completions (up to EOS) of text prompts, for the task check; None: no
        tokenizer or no tokens here."""
        return None

    def close(self) -> None:  # noqa: B027  (optional hook: most backends need nothing)
        """Release the device."""


# Registry key == conf/backend/ file name. Imported only when selected.
_REGISTRY = {
    "hf": "workers.backends.hf:HFBackend",
    "sglang": "workers.backends.sglang.backend:SGLangBackend",
    "sim": "workers.backends.sim:SimBackend",
}


def backend_class(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown backend {name!r}: known backends are {', '.join(_REGISTRY)}")
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)
