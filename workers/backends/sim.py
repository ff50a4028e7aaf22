"""`backend=sim`: a simulated device that answers with roofline times, never measurements.

Each iteration takes the roofline bound of the cell (bounds/roofline.py) on the device spec
`backend.sim.device_spec`, divided by `efficiency`, times one seeded Gaussian factor
(1 + noise * N(0, 1)) per iteration: TTFT is the prefill, then one timestamp per decode step,
so TTFT, TPOT and ITL are all populated. Exactly batch*seq tokens are "generated". With
`time_scale > 0` the worker really sleeps time_scale x the simulated E2E, so a sweep's
concurrency and scheduling can be rehearsed at speed. No torch is imported: thousands of cells
cost milliseconds each. Records are marked `simulated` (the flag and the top-level key).

Memory: a cell needs all weights + the KV cache of batch*(prompt_len+seq) tokens (activations
and workspace ignored). A cell that does not fit the spec's memory (x device.per_cell) is
always `oom`: a simulator must not report numbers for a cell that cannot run.

Power (simulated, for rehearsing energy tables and plots; not a prediction): each chip draws
  P = idle_w + (tdp_w - idle_w) * min(1, u_compute + MEMORY_WEIGHT * u_memory)
per phase (prefill; all decode steps together), with idle_w and tdp_w from the device spec
(bounds/specs.py) and u = the phase's roofline time of that unit / its simulated time, e.g.
u_memory = sum(bytes moved) / peak bandwidth / simulated seconds. A compute-bound phase at
full efficiency draws the TDP; a memory-bound one at full efficiency idle + 0.6 x the rest.
The cell's energy is sum over iterations of P_prefill * ttft + P_decode * (e2e - ttft), for
all its chips; records say energy_source `simulated`.

Faults (`backend.sim.fault`), for cells whose batch == fault_batch (every cell when 0):
  crash       the worker process kills itself (SIGKILL) inside run_iteration
  exception   run_iteration raises RuntimeError("injected fault: exception")
  oom         the memory check uses `memory_budget_bytes` (0: the spec's memory) for these
              cells: they are `oom` only when weights + KV cache exceed that budget
  slow        every time x slow_factor (a slow node)
  load_error  load() raises; a worker that already holds the model raises the same error in
              prepare(), so which cells fail does not depend on where they ran

Bad cards, for fleet rehearsals (docs/fleet.md): `backend.sim.slow_cards`, `hot_cards`,
`leaky_cards` list "NODE:CARD" entries. This card is NODE = the node index the launcher gives
its worker (RAY_CELLS_NODE_INDEX; 0 without it) and CARD = the first id of the visible-devices
variable Ray set. A slow card takes every time x slow_factor; a hot one reports
throttle_reasons ["simulated: hot card"] and 95 C (flag throttled); a leaky one starts each
cell on LEAK_BYTES of device memory left behind (memory_leftover_bytes, flag dirty_start).
"""

from __future__ import annotations

import os
import random
import signal
import time
import zlib
from typing import Any

from bounds.roofline import Bounds, ModelShape, bounds_for, bytes_per_element
from bounds.specs import SPECS, DeviceSpec, lookup
from jobs.config import CellConfig
from workers.backends.sim_cards import card_faults
from workers.base import Backend, BackendReport, CellOOM, IterationResult
from workers.device.visible import VISIBLE_ENV
from workers.models import model_config_json


def sim_spec(name: str) -> DeviceSpec:
    """The spec `backend.sim.device_spec` names (a key of bounds.specs.SPECS or an alias)."""
    spec = lookup(name)
    if spec is None or spec.key not in SPECS:
        raise ValueError(
            f"backend.sim.device_spec={name!r} is not a known spec: choose one of "
            f"{', '.join(SPECS)}"
        )
    return spec


MEMORY_WEIGHT = 0.6  # share of the dynamic power that saturated HBM traffic draws


def phase_power_w(
    spec: DeviceSpec, seconds: float, nbytes: float, flops: float, chips: int
) -> float:
    """Power of `chips` chips moving `nbytes` and doing `flops` in `seconds` (model above)."""
    assert spec.tdp_w is not None and spec.idle_w is not None and seconds > 0
    u_mem = nbytes / (spec.peak_bandwidth_bytes_per_s * chips) / seconds
    u_flops = flops / (spec.peak_flops_per_s * chips) / seconds if spec.peak_flops_per_s else 0.0
    activity = min(1.0, u_flops + MEMORY_WEIGHT * u_mem)
    return chips * (spec.idle_w + (spec.tdp_w - spec.idle_w) * activity)


class SimDevice:
    """Stand-in for workers.device.devices.Device under backend=sim: nothing to open or synchronise.

    kind is the requested device (npu, cuda or cpu; auto becomes the spec's own kind), so
    placement and records look like the real thing; name() is the simulated chip."""

    def __init__(self, kind: str, spec: DeviceSpec | str) -> None:
        self.spec = spec if isinstance(spec, DeviceSpec) else sim_spec(spec)
        if kind == "auto":
            kind = "npu" if self.spec.key.startswith("ascend") else "cuda"
        self.kind = kind
        self._allocated = 0
        self._peak = 0

    @property
    def torch_device(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:0"

    def synchronize(self) -> None:
        pass

    def set_allocated(self, nbytes: int) -> None:
        """The simulated bytes in use (the backend calls this); tracks the peak."""
        self._allocated = nbytes
        self._peak = max(self._peak, nbytes)

    def reset_peak_memory(self) -> None:
        self._peak = self._allocated

    def peak_memory(self) -> dict[str, int | None]:
        return {"allocated": self._peak, "reserved": self._peak, "rss": None}

    def name(self) -> str:
        return self.spec.name

    def visible_devices(self) -> str | None:
        env = VISIBLE_ENV.get(self.kind)
        return os.environ.get(env) if env else None

    def empty_cache(self) -> None:
        self._allocated = 0

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, CellOOM)


class SimBackend(Backend):
    name = "sim"
    simulated = True

    def __init__(self, cell: CellConfig, device: Any) -> None:
        super().__init__(cell, device)
        self.opts = cell.backend.sim
        self.spec = sim_spec(self.opts.device_spec)

    # --- Backend interface ---

    def load(self) -> None:
        if self._faulty(self.cell, "load_error"):
            raise RuntimeError("injected fault: load_error (simulated model load failure)")
        self.path, self.config = model_config_json(self.cell.model)
        self.shape = ModelShape.from_config(self.config)
        dtype = self.cell.model.dtype
        self.dtype = "float16" if dtype == "auto" else dtype  # the simulated chips run 16-bit
        self.elem = bytes_per_element(self.dtype)
        self.weight_bytes = self.shape.parameters * self.elem
        capacity = self._capacity(self.cell)
        if capacity is not None and self.weight_bytes > capacity:
            raise CellOOM(
                f"simulated: weights need {self.weight_bytes / 1e9:.1f} GB, "
                f"{self.spec.key} x{self.cell.devices_per_cell} has {capacity / 1e9:.1f} GB"
            )
        self._set_allocated(self.weight_bytes)

    def model_info(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "parameters": self.shape.parameters,
            "dtype": self.dtype,
            "config": self.config,
        }

    def prepare(self, cell: CellConfig) -> None:
        if self._faulty(cell, "load_error"):
            raise RuntimeError("injected fault: load_error (simulated model load failure)")
        self.cell = cell
        self.bounds: Bounds = bounds_for(
            self.config, self.dtype, self.spec, cell.batch, cell.seq, cell.prompt_len,
            cell.devices_per_cell,
        )  # fmt: skip
        kv = self.shape.kv_bytes_per_token(self.elem)
        self.cell_bytes = self.weight_bytes + cell.batch * (cell.prompt_len + cell.seq) * kv
        # Seeded per cell: the same cell gets the same numbers, in any order, on any worker.
        key = (
            cell.bench.seed,
            cell.model.name,
            self.spec.key,
            cell.batch,
            cell.seq,
            cell.prompt_len,
            *(() if self.repeat is None else (self.repeat,)),  # each repeat its own draw
        )
        self.rng = random.Random(zlib.crc32(repr(key).encode()))
        self._power = self._phase_power(cell)

    sim_power_model = "P = idle_w + (tdp_w - idle_w) * min(1, u_compute + 0.6 * u_memory)"

    def sim_power(self) -> tuple[float, float] | None:
        """(prefill W, decode W) of the prepared cell, every chip together (model above);
        None when the spec has no power figures."""
        return self._power

    def _phase_power(self, cell: CellConfig) -> tuple[float, float] | None:
        if self.spec.tdp_w is None or self.spec.idle_w is None:
            return None
        s, b, p, eff = self.shape, cell.batch, cell.prompt_len, self.opts.efficiency
        w, kv = s.forward_parameters * self.elem, s.kv_bytes_per_token(self.elem)
        prefill = phase_power_w(
            self.spec,
            self.bounds.ttft_s / eff,
            w + b * p * kv,
            b * s.prefill_flops(p),
            cell.devices_per_cell,
        )
        contexts = range(p + 1, p + cell.seq)
        decode_s = sum(self.bounds.decode_steps_s) / eff
        if decode_s <= 0:  # seq = 1: no decode step
            return prefill, prefill
        decode = phase_power_w(
            self.spec,
            decode_s,
            sum(w + b * c * kv for c in contexts),
            sum(b * s.token_flops(c) for c in contexts),
            cell.devices_per_cell,
        )
        return prefill, decode

    def run_iteration(self) -> IterationResult:
        cell = self.cell
        if self._faulty(cell, "crash"):
            os.kill(os.getpid(), signal.SIGKILL)
        if self._faulty(cell, "exception"):
            raise RuntimeError("injected fault: exception")
        budget = self._budget(cell)
        if budget is not None and self.cell_bytes > budget:
            raise CellOOM(
                f"simulated: weights + KV cache need {self.cell_bytes / 1e9:.1f} GB, "
                f"budget {budget / 1e9:.1f} GB ({self.spec.key})"
            )
        self._set_allocated(self.cell_bytes)
        scale = max(0.1, 1.0 + self.opts.noise * self.rng.gauss(0.0, 1.0)) / self.opts.efficiency
        if self._faulty(cell, "slow") or "slow" in card_faults(cell, self.device.kind)[0]:
            scale *= self.opts.slow_factor
        t = self.bounds.ttft_s * scale
        steps = [t]
        for step in self.bounds.decode_steps_s:
            t += step * scale
            steps.append(t)
        if self.opts.time_scale > 0:
            time.sleep(t * self.opts.time_scale)
        self._set_allocated(self.weight_bytes)
        return IterationResult(
            e2e_s=t,
            ttft_s=steps[0],
            step_times_s=steps,
            generated_tokens=cell.batch * cell.seq,
            per_sequence_tokens=[cell.seq] * cell.batch,
        )

    def report(self) -> BackendReport:
        fault = self.opts.fault if self._faulty(self.cell, self.opts.fault) else "none"
        _, health, flags = card_faults(self.cell, self.device.kind)
        return BackendReport(
            fields={
                "sim_device_spec": self.spec.key,
                "sim_efficiency": self.opts.efficiency,
                "sim_noise": self.opts.noise,
                "sim_fault": fault,
                **health,
            },
            flags=flags,
        )

    def close(self) -> None:
        self._set_allocated(0)

    # --- helpers ---

    def _faulty(self, cell: CellConfig, fault: str) -> bool:
        o = cell.backend.sim
        return o.fault == fault != "none" and (o.fault_batch == 0 or cell.batch == o.fault_batch)

    def _capacity(self, cell: CellConfig) -> int | None:
        if self.spec.memory_bytes is None:
            return None
        return self.spec.memory_bytes * cell.devices_per_cell

    def _budget(self, cell: CellConfig) -> int | None:
        if self._faulty(cell, "oom") and cell.backend.sim.memory_budget_bytes > 0:
            return cell.backend.sim.memory_budget_bytes
        return self._capacity(cell)

    def _set_allocated(self, nbytes: int) -> None:
        setter = getattr(self.device, "set_allocated", None)
        if callable(setter):
            setter(nbytes)
