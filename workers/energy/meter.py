"""Energy of a cell's measured window: a sampler thread around the window, and the record keys.

The measuring loop enters an :class:`EnergyMeter` (the source is opened) before warm-up and
wraps only the measured iterations in ``meter.window()``: the source is read once right before
the first measured iteration, then every ``period_s`` on a daemon thread, then once right
after the last iteration; the thread is stopped in a ``finally`` and the source closed when
the meter is left (also when the cell failed). Nothing here may fail a cell: a source that
cannot be opened, read or closed gives ``energy_valid: false`` with the reason.

Record keys (docs/energy.md): energy_j, power_w_mean, power_w_peak, energy_j_per_output_token,
output_tokens_per_j, energy_source, energy_samples, energy_valid, energy_invalid_reasons
(reason codes: jobs.record.EnergyReason), prefill_energy_j and decode_energy_j (the
spans [submit, first token] and [first token, last token] of every measured iteration; only
when the total is valid and every span lasts SPLIT_MIN_PERIODS update periods of the
source), and the nested ``energy`` block (devices, period, wraps, details).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from workers.base import IterationResult
from workers.device.tools import Unavailable
from workers.energy.integrate import Integral, Reason, Sample, SourceInfo, integrate
from workers.energy.sources import SOURCE_NAMES, Source, open_source

log = logging.getLogger(__name__)

SPLIT_MIN_PERIODS = 2
JOIN_TIMEOUT_S = 10.0
THREAD_NAME = "energy-sampler"

ENERGY_KEYS = (
    "energy_j", "power_w_mean", "power_w_peak", "energy_j_per_output_token",
    "output_tokens_per_j", "energy_source", "energy_samples", "energy_valid",
    "energy_invalid_reasons", "prefill_energy_j", "decode_energy_j",
)  # fmt: skip


class Sampler:
    """Reads a source on a daemon thread between start() and stop(); never raises."""

    def __init__(self, source: Source, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source = source
        self.clock = clock
        self.samples: list[Sample] = []
        self.events: list[tuple[float, list[int | None]]] = []
        self.errors: list[str] = []
        self.stuck = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        try:
            before = self.clock()
            values = tuple(self.source.read())
            t = (before + self.clock()) / 2  # a slow read (npu-smi) is stamped at its middle
            self.samples.append(Sample(t, values))
            events = self.source.events()
            if events is not None:
                self.events.append((t, events))
        except Exception as exc:  # a failing read is a gap, never a failed cell
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        while not self._stop.wait(self.source.info.period_s):
            self._read()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._read()
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self.stuck = self._thread.is_alive()
        if not self.stuck:  # a stuck thread may still be inside read(): do not read twice
            self._read()


def _spans(
    starts: Sequence[float], its: Sequence[IterationResult]
) -> dict[str, list[tuple[float, float]]]:
    """Per iteration: prefill = [submit, first token], decode = [first token, last token]."""
    out: dict[str, list[tuple[float, float]]] = {"prefill": [], "decode": []}
    for s, it in zip(starts, its, strict=False):
        if it.ttft_s is None:
            return {}
        out["prefill"].append((s, s + it.ttft_s))
        out["decode"].append((s + it.ttft_s, s + it.e2e_s))
    return out


class EnergyMeter:
    """One cell's energy. ``with meter:`` holds the source open (entered before warm-up, so a
    failing cell still closes it); ``with meter.window():`` samples the measured iterations,
    each announced by ``meter.iteration()``; then ``result(its)``."""

    def __init__(
        self, kind: str, devices_per_cell: int, clock: Callable[[], float] = time.perf_counter
    ):
        self.kind, self.devices_per_cell, self.clock = kind, devices_per_cell, clock
        self.tried = SOURCE_NAMES.get(kind, kind)
        self.source: Source | None = None
        self.missing: str | None = None
        self.missing_reason = Reason.SOURCE_MISSING
        self.sampler: Sampler | None = None
        self.starts: list[float] = []
        self.t0 = self.t1 = 0.0

    def __enter__(self) -> EnergyMeter:
        try:
            self.source = open_source(self.kind, self.devices_per_cell)
        except Unavailable as exc:
            self.missing = str(exc)
        except Exception as exc:  # a broken source must not fail the cell
            log.exception("opening the energy source failed")
            self._broken(exc)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.sampler is not None and self.sampler.running():
            self.sampler.stop()  # only when window() itself was cut short
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                log.exception("closing the energy source failed")

    def _broken(self, exc: BaseException) -> None:
        self.source, self.sampler = None, None
        self.missing, self.missing_reason = f"{type(exc).__name__}: {exc}", Reason.SAMPLER_ERROR

    @contextmanager
    def window(self) -> Iterator[EnergyMeter]:
        """Sample from right before the first measured iteration to right after the last."""
        if self.source is not None:
            try:
                self.sampler = Sampler(self.source, self.clock)
                self.sampler.start()
            except Exception as exc:  # e.g. no thread can be started: measure without energy
                log.exception("starting the energy sampler failed")
                source, self.sampler = self.source, None
                self._broken(exc)
                self.source = source  # still closed by __exit__
        self.t0 = self.clock()
        try:
            yield self
        finally:
            self.t1 = self.clock()
            if self.sampler is not None:
                self.sampler.stop()

    def iteration(self) -> None:
        """Called right before each measured iteration (its submit time)."""
        self.starts.append(self.clock())

    def events(self) -> list[int]:
        """Clock-event bitmasks seen during the window, OR-ed per device."""
        if self.sampler is None:
            return []
        merged: dict[int, int] = {}
        for _, values in self.sampler.events:
            for i, v in enumerate(values):
                if v is not None:
                    merged[i] = merged.get(i, 0) | v
        return [merged[i] for i in sorted(merged)]

    def result(self, its: Sequence[IterationResult]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(flat record keys, the nested `energy` block); never raises."""
        try:
            return self._result(its)
        except Exception as exc:
            log.exception("integrating the energy samples failed")
            why = f"{type(exc).__name__}: {exc}"
            return missing_fields(self.tried, why, Reason.SAMPLER_ERROR)

    def _result(self, its: Sequence[IterationResult]) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.source is None or self.sampler is None:
            return missing_fields(self.tried, self.missing or "no source", self.missing_reason)
        info: SourceInfo = self.source.info
        got = integrate(info, self.sampler.samples, self.t0, self.t1)
        if self.sampler.stuck or (self.sampler.errors and not self.sampler.samples):
            got.reasons = sorted({*got.reasons, Reason.SAMPLER_ERROR.value})
        split = _split(info, got, _spans(self.starts, its))
        tokens = sum(it.generated_tokens for it in its)
        block = {
            "source": info.name,
            "devices": list(info.devices),
            "period_s": info.period_s,
            "resolution_s": info.resolution_s,
            "window_s": self.t1 - self.t0,
            "wraps": got.wraps,
            "read_errors": self.sampler.errors,
            "note": info.note,
            **split.pop("block"),
        }
        modules = getattr(self.source, "power_modules", None)
        if callable(modules):  # npu-smi: what each figure covers and the cell's share of it
            block["power_modules"] = modules()
        return energy_fields(info.name, got, tokens, split), block


def _split(
    info: SourceInfo, got: Integral, spans: dict[str, list[tuple[float, float]]]
) -> dict[str, Any]:
    """prefill/decode energy where every span is long enough for the source, else None."""
    need = SPLIT_MIN_PERIODS * max(info.resolution_s, info.period_s)
    if got.reasons:
        why = "the total is not valid"
    elif not spans:
        why = "the backend reports no per-iteration TTFT"
    elif min(b - a for phase in spans.values() for a, b in phase) < need:
        why = f"a prefill or decode span is shorter than {need:g} s ({SPLIT_MIN_PERIODS} periods)"
    else:
        return {
            "prefill_energy_j": got.energy(spans["prefill"]),
            "decode_energy_j": got.energy(spans["decode"]),
            "block": {"split": "per iteration, at the first token"},
        }
    return {"prefill_energy_j": None, "decode_energy_j": None, "block": {"split": f"no: {why}"}}


def energy_fields(source: str, got: Integral, tokens: int, split: dict[str, Any]) -> dict[str, Any]:
    energy = got.energy_j
    return {
        "energy_j": energy,
        "power_w_mean": got.power_w_mean,
        "power_w_peak": got.power_w_peak,
        "energy_j_per_output_token": energy / tokens if energy and tokens else None,
        "output_tokens_per_j": tokens / energy if energy and tokens else None,
        "energy_source": source,
        "energy_samples": got.samples,
        "energy_valid": energy is not None and not got.reasons,
        "energy_invalid_reasons": list(got.reasons),
        "prefill_energy_j": split.get("prefill_energy_j"),
        "decode_energy_j": split.get("decode_energy_j"),
    }


def shares_power_module(block: dict[str, Any]) -> bool:
    """The cell was charged a share of a power module it holds only part of (Atlas A3)."""
    return any(m["share"] < 1 for m in block.get("power_modules", ()))


def missing_fields(source: str, why: str, reason: Reason) -> tuple[dict[str, Any], dict[str, Any]]:
    """No figure: the source that was tried, the reason code and why (for the record)."""
    fields: dict[str, Any] = dict.fromkeys(ENERGY_KEYS)
    fields.update(
        energy_source=source,
        energy_valid=False,
        energy_invalid_reasons=[reason.value],
        energy_samples=0,
    )
    return fields, {"source": source, "details": [why]}
