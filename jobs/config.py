"""What a cell is: the typed configuration of one measurement.

Plain dataclasses (no Hydra, no OmegaConf): the entry point registers :class:`CellConfig` in
Hydra's ConfigStore, so a value of the wrong type fails while the config is composed, with its
key in the message. Range checks that types cannot express run in ``__post_init__``: a bad
value raises :class:`ConfigError` naming the setting and what is allowed, before any model is
loaded or Ray is started. Only what defines a measurement is here; the launcher's settings
(Ray, retries, timeouts, progress) live in the launcher's own config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from jobs.checks import ConfigError, one_of, positive_int
from jobs.quality import AccuracyConfig, QualityConfig
from jobs.serving import ServerConfig, SloConfig, WorkloadConfig, check_load
from jobs.sim_cards import check_sim_cards
from jobs.values import ValuesError, build

BACKENDS = ("hf", "sglang", "sim")
DEVICES = ("auto", "cpu", "cuda", "npu")
DTYPES = ("auto", "float32", "float16", "bfloat16")
LOAD_FORMATS = ("auto", "dummy")
# torch.compile backends for backend.hf.compile: inductor generates kernels (the speed switch
# proper); aot_eager and eager trace the same graph without generating code (to tell a
# compile problem from a kernel problem, and for rehearsals where code generation costs more
# than the run).
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


def from_values(values: dict[str, Any]) -> CellConfig:
    """A validated cell from plain nested values (a composed config as a dict): every value
    converted to its field's type, unknown keys refused with the closest known one."""
    try:
        return build(CellConfig, values)
    except ValuesError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class TinyModelConfig:
    # Shape of the Llama-architecture model built locally when model.path is empty.
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    vocab_size: int = 2048  # tokenizer trained locally to this size
    max_position_embeddings: int = 2048
    seed: int = 0  # weight init seed: the same config gives the same model


@dataclass
class ModelConfig:
    # Short name used in tables, cell ids and directory names.
    name: str = "tiny"
    # Local directory of a Hugging Face causal LM (config.json + weights). Empty: build `tiny`.
    path: str | None = None
    # Weights dtype on the device; auto = float32 on the CPU, float16 on cuda/npu.
    dtype: str = "auto"
    # auto: load the weights in `path`; dummy: the architecture from config.json, random weights.
    load_format: str = "auto"
    # Run Python code shipped with the model. Off unless the user turns it on.
    trust_remote_code: bool = False
    # Where the tiny model is built and cached (shared by all runs of this user).
    cache_dir: str = "~/.cache/llm-sweep"
    # Number of hidden layers to keep (0 = all); for dummy-weight smoke tests of big shapes.
    num_layers_override: int = 0
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    def __post_init__(self) -> None:
        if self.path and self.name == "tiny":
            # model.path=DIR on the default model: name the model after its directory.
            self.name = os.path.basename(os.path.normpath(self.path)) or "local"
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(
                f"model.name={self.name!r} is not allowed: a short name without '/', e.g. tiny"
            )
        one_of("model.dtype", self.dtype, DTYPES)
        one_of("model.load_format", self.load_format, LOAD_FORMATS)
        if self.num_layers_override < 0:
            raise ConfigError("model.num_layers_override must be >= 0 (0 keeps all layers)")


@dataclass
class HFOptions:
    # Static KV cache + torch.compile of the decode step ("speed switch"); off by default.
    static_cache: bool = False
    compile: bool = False
    # The torch.compile backend of backend.hf.compile (COMPILE_BACKENDS).
    compile_backend: str = "inductor"


@dataclass
class SGLangOptions:
    tp_size: int = 1
    mem_fraction_static: float = 0.8
    attention_backend: str | None = None  # None: SGLang's default; `ascend` on NPUs
    disable_cuda_graph: bool = False
    log_level: str = "error"


@dataclass
class SimOptions:
    # Achieved fraction of the roofline bound (1.0 = at the hardware limit).
    efficiency: float = 0.6
    # Relative stdev of simulated per-iteration noise.
    noise: float = 0.02
    # Real seconds slept per simulated second (0 = do not sleep; records keep simulated time).
    time_scale: float = 0.0
    # Device memory budget in bytes for the `oom` fault; 0 = the device spec's memory.
    memory_budget_bytes: int = 0
    # Injected faults: none | crash | exception | oom | slow | load_error
    fault: str = "none"
    # Only cells whose batch equals this value get the fault (0 = every cell).
    fault_batch: int = 0
    # Slowdown factor for the `slow` fault.
    slow_factor: float = 5.0
    # Device the simulator pretends to be (a key of bounds/specs.py).
    device_spec: str = "ascend_910b"
    # Fleet rehearsals (docs/fleet.md): cards as "NODE:CARD" (node index : card id) that are
    # slow (every time x slow_factor), hot (throttled) or leaky (start on leaked memory).
    slow_cards: list[str] = field(default_factory=list)
    hot_cards: list[str] = field(default_factory=list)
    leaky_cards: list[str] = field(default_factory=list)


@dataclass
class BackendConfig:
    # Registry key of the backend: hf | sglang | sim (the conf/backend/ file name).
    name: str = "hf"
    hf: HFOptions = field(default_factory=HFOptions)
    sglang: SGLangOptions = field(default_factory=SGLangOptions)
    sim: SimOptions = field(default_factory=SimOptions)

    def __post_init__(self) -> None:
        one_of("backend", self.name, BACKENDS)
        one_of("backend.hf.compile_backend", self.hf.compile_backend, COMPILE_BACKENDS)
        if self.hf.compile_backend != HFOptions.compile_backend and not self.hf.compile:
            raise ConfigError(
                f"backend.hf.compile_backend={self.hf.compile_backend} is not allowed without "
                "backend.hf.compile=true: it is the backend of that compile only"
            )
        if not 0.0 < self.sim.efficiency <= 1.0:
            raise ConfigError("backend.sim.efficiency must be in (0, 1]")
        if self.sim.noise < 0 or self.sim.time_scale < 0:
            raise ConfigError("backend.sim.noise and backend.sim.time_scale must be >= 0")
        one_of(
            "backend.sim.fault",
            self.sim.fault,
            ("none", "crash", "exception", "oom", "slow", "load_error"),
        )
        if not 0.0 < self.sglang.mem_fraction_static < 1.0:
            raise ConfigError("backend.sglang.mem_fraction_static must be in (0, 1)")
        positive_int("backend.sglang.tp_size", self.sglang.tp_size)


@dataclass
class DeviceConfig:
    # auto picks npu, then cuda, then cpu.
    name: str = "auto"
    # Devices one cell needs (tensor parallel engines need more than one).
    per_cell: int = 1
    # CPU cores a cpu cell reserves in Ray; 0 = all cores of the node (one cpu cell per node).
    cpus_per_cell: int = 0

    def __post_init__(self) -> None:
        one_of("device", self.name, DEVICES)
        positive_int("device.per_cell", self.per_cell)
        if self.cpus_per_cell < 0:
            raise ConfigError("device.cpus_per_cell must be >= 0 (0 = all cores of the node)")


@dataclass
class BenchConfig:
    # Preset name (conf/bench/ file name), kept in records.
    name: str = "seed"
    # Iterations run through the same code path before timing starts.
    warmup: int = 3
    # Minimum measured iterations.
    iterations: int = 10
    # Keep measuring until the measured window lasts at least this long (seconds) ...
    min_duration_s: float = 0.0
    # ... but never more than this many iterations.
    max_iterations: int = 1000
    # Seed of the synthetic prompts.
    seed: int = 1234
    # E2E coefficient of variation above which a cell is flagged `unstable`.
    unstable_cv: float = 0.10
    # Measure every cell this many times, each a record of its own (repeat 0, 1, ...);
    # reports give their mean with a 95% confidence interval.
    repeats: int = 1
    # Each measurement (each repeat) in a fresh worker process: the model loaded anew.
    fresh_worker: bool = False

    def __post_init__(self) -> None:
        positive_int("bench.repeats", self.repeats)
        if isinstance(self.warmup, bool) or self.warmup < 0:
            raise ConfigError(f"bench.warmup={self.warmup!r} is not allowed: must be >= 0")
        positive_int("bench.iterations", self.iterations)
        if self.max_iterations < self.iterations:
            raise ConfigError("bench.max_iterations must be >= bench.iterations")
        if self.min_duration_s < 0:
            raise ConfigError("bench.min_duration_s must be >= 0")
        if not 0 < self.unstable_cv:
            raise ConfigError(
                f"bench.unstable_cv={self.unstable_cv!r} is not allowed: a coefficient of "
                "variation > 0 (e.g. 0.10)"
            )


@dataclass
class CellConfig:
    # --- the cell axes ---
    batch: int = 4  # sequences per generate call (static cells)
    seq: int = 128  # new tokens generated per sequence (serving: per request, the mean)
    prompt_len: int = 32  # prompt tokens per sequence (serving: per request, the mean)
    # Serving load (workload=serve): requests in flight (closed loop) ...
    concurrency: int | None = None
    # ... or requests per second arriving (open loop; with concurrency: also capped by it).
    request_rate: float | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    # static: one generate call per iteration (above); serve: requests to a server.
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    # Token checks after the measured window (jobs/quality.py, docs/quality.md).
    quality: QualityConfig = field(default_factory=QualityConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)

    @property
    def serving(self) -> bool:
        return self.workload.name == "serve"

    @property
    def devices_per_cell(self) -> int:
        """Devices one cell runs on (their bandwidth and FLOP/s add up in its bound): the
        config key device.per_cell, raised by SGLang's tp_size or a server's parallel size."""
        n = self.device.per_cell
        if self.serving:
            return max(n, self.server.parallel_size)
        if self.backend.name == "sglang":
            n = max(n, self.backend.sglang.tp_size)
        return n

    def __post_init__(self) -> None:
        positive_int("batch", self.batch)
        positive_int("seq", self.seq)
        positive_int("prompt_len", self.prompt_len)
        check_load(self)
        check_sim(self)


def check_sim(cell: CellConfig) -> None:
    """Simulator settings that act only together with another are refused without it (a
    setting either acts or is refused with the reason)."""
    o = cell.backend.sim
    for name in ("fault_batch", "memory_budget_bytes"):
        if isinstance(getattr(o, name), bool) or getattr(o, name) < 0:
            raise ConfigError(
                f"backend.sim.{name}={getattr(o, name)!r} is not allowed: must be >= 0"
            )
    if not o.slow_factor > 0:
        raise ConfigError(f"backend.sim.slow_factor={o.slow_factor!r} is not allowed: must be > 0")
    if o.fault_batch and o.fault == "none":
        raise ConfigError(
            f"backend.sim.fault_batch={o.fault_batch} is not allowed without backend.sim.fault: "
            "it only picks the batch a fault is injected into (set backend.sim.fault=...)"
        )
    if o.memory_budget_bytes and o.fault != "oom":
        raise ConfigError(
            f"backend.sim.memory_budget_bytes={o.memory_budget_bytes} is not allowed without "
            "backend.sim.fault=oom: it is the memory of the oom fault only"
        )
    if o.slow_factor != SimOptions.slow_factor and o.fault != "slow" and not o.slow_cards:
        raise ConfigError(
            f"backend.sim.slow_factor={o.slow_factor!r} is not allowed without "
            "backend.sim.fault=slow or backend.sim.slow_cards: it is their slowdown only"
        )
    check_sim_cards(o, cell.serving)
    if cell.serving and cell.backend.name == "sim":
        w = cell.workload
        if w.kind == "conversation" or w.prefix_groups:
            what = (
                "workload.kind=conversation" if w.prefix_groups == 0 else "workload.prefix_groups"
            )
            raise ConfigError(
                f"{what} is not simulated: the simulator's serving mode sends independent "
                "requests or a trace (use a server)"
            )
        if o.fault_batch:
            raise ConfigError(
                "backend.sim.fault_batch is not allowed with workload=serve: serving cells "
                "have no batch (the fault applies to every serving cell)"
            )
        if o.fault in ("crash", "oom"):
            raise ConfigError(
                f"backend.sim.fault={o.fault} is not simulated for serving cells: choose "
                "exception, load_error or slow with workload=serve"
            )
