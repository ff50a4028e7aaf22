"""What a serving cell is: the load (``workload``), the server it goes to (``server``) and the
latency limits its goodput is counted under (``slo``).

A serving cell (``workload=serve``) sends requests to an OpenAI-compatible completions server
instead of calling ``generate`` on a batch: ``concurrency`` requests in flight (closed loop),
or ``request_rate`` requests per second arriving with gamma-distributed gaps (open loop;
``burstiness`` 1 = Poisson, as vLLM's benchmark). ``prompt_len`` and ``seq`` are the mean
lengths; ``workload.prompt_len_dist`` / ``workload.seq_dist`` spread them. The checks here
raise :class:`~jobs.checks.ConfigError` naming the setting, before anything starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from jobs.checks import ConfigError, at_least, one_of, positive_int
from jobs.trace import TraceConfig, trace_longest

SERVER_KINDS = ("transformers", "sglang", "vllm", "url", "command")
# How a server is asked for exact output lengths (its request body's dialect).
SERVER_APIS = ("openai", "transformers", "sglang", "vllm")
LENGTH_DISTS = ("fixed", "uniform", "normal")
# What a serving cell sends (docs/serving.md): independent requests (random lengths, optional
# shared-prefix groups), conversations of several turns, or a recorded trace on its own clock.
WORKLOAD_KINDS = ("random", "conversation", "trace")


@dataclass
class LengthDist:
    # fixed: every request has the mean length; uniform: lengths drawn in
    # [mean x (1 - spread), mean x (1 + spread)]; normal: stdev = spread x mean (clipped >= 1).
    dist: str = "fixed"
    spread: float = 0.0

    def check(self, name: str) -> None:
        one_of(f"{name}.dist", self.dist, LENGTH_DISTS)
        at_least(f"{name}.spread", self.spread, 0.0)
        if self.dist == "uniform" and self.spread >= 1.0:
            raise ConfigError(f"{name}.spread={self.spread!r} is not allowed: uniform needs < 1")

    def longest(self, mean: int) -> int:
        """The longest length this distribution can draw (normal: mean + 4 stdev)."""
        if self.dist == "uniform":
            return int(mean * (1 + self.spread))
        if self.dist == "normal":
            return int(mean * (1 + 4 * self.spread))
        return mean


@dataclass
class WorkloadConfig:
    # static: today's cells (batch x generate); serve: requests to a server (the rest below).
    name: str = "static"
    # Measured requests (with duration_s > 0: at most this many; 0 = no cap then).
    num_requests: int = 32
    # > 0: stop sending new requests after this many seconds of load.
    duration_s: float = 0.0
    # Requests sent before the measured ones, through the same path, not counted.
    warmup_requests: int = 2
    # Gamma shape of the open loop's arrival gaps: 1 = Poisson, < 1 burstier, > 1 smoother.
    burstiness: float = 1.0
    # Tokens at the start of every prompt that all requests share (inside prompt_len).
    prefix_len: int = 0
    prompt_len_dist: LengthDist = field(default_factory=LengthDist)
    seq_dist: LengthDist = field(default_factory=LengthDist)
    # A cell with a larger share of failed requests than this is not ok.
    max_failed_fraction: float = 0.05
    # random | conversation | trace (workload=conversation / workload=trace set it).
    kind: str = "random"
    # random: > 0 groups, each with its own prefix of prefix_len tokens, requests_per_group
    # consecutive requests each (round robin over the groups); 0: one prefix for all.
    prefix_groups: int = 0
    requests_per_group: int = 1
    # conversation: `sessions` sessions at once (concurrency = sessions), each `turns` turns;
    # a turn's answer is `seq` tokens, then `think_time_s` before the next turn.
    sessions: int = 4
    turns: int = 3
    think_time_s: float = 0.0
    trace: TraceConfig = field(default_factory=TraceConfig)

    def __post_init__(self) -> None:
        one_of("workload", self.name, ("static", "serve"))
        one_of("workload.kind", self.kind, WORKLOAD_KINDS)
        at_least("workload.prefix_groups", self.prefix_groups, 0)
        positive_int("workload.requests_per_group", self.requests_per_group)
        positive_int("workload.sessions", self.sessions)
        positive_int("workload.turns", self.turns)
        at_least("workload.think_time_s", self.think_time_s, 0.0)
        if self.kind == "trace":
            self.trace.check()
        if isinstance(self.num_requests, bool) or self.num_requests < 0:
            raise ConfigError("workload.num_requests must be >= 0 (0: no cap, with duration_s)")
        at_least("workload.duration_s", self.duration_s, 0.0)
        if self.num_requests == 0 and self.duration_s <= 0:
            raise ConfigError(
                "workload.num_requests=0 is not allowed without workload.duration_s > 0: "
                "the load would never end"
            )
        at_least("workload.warmup_requests", self.warmup_requests, 0)
        if self.burstiness <= 0:
            raise ConfigError(
                f"workload.burstiness={self.burstiness!r} is not allowed: must be > 0 "
                "(1 = Poisson arrivals, < 1 burstier)"
            )
        at_least("workload.prefix_len", self.prefix_len, 0)
        self.prompt_len_dist.check("workload.prompt_len_dist")
        self.seq_dist.check("workload.seq_dist")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ConfigError("workload.max_failed_fraction must be in [0, 1]")


@dataclass
class SloConfig:
    # Latency limits a request must meet to count in goodput (0 = no limit).
    ttft_ms: float = 0.0
    tpot_ms: float = 0.0

    def __post_init__(self) -> None:
        at_least("slo.ttft_ms", self.ttft_ms, 0.0, " (0 = no limit)")
        at_least("slo.tpot_ms", self.tpot_ms, 0.0, " (0 = no limit)")


@dataclass
class TransformersServeOptions:
    # `transformers serve --continuous-batching` (the embedded default, CPU-friendly).
    continuous_batching: bool = True
    attn_implementation: str | None = None
    cb_num_blocks: int = 0  # 0: sized from the cell (kv_bound)
    cb_max_batch_tokens: int = 0  # 0: sized from the cell
    log_level: str = "info"


@dataclass
class SGLangServeOptions:
    # `python -m sglang.launch_server`: the same ServerArgs as the Engine backend.
    tp_size: int = 1
    mem_fraction_static: float = 0.8
    attention_backend: str | None = None  # None: SGLang's default; `ascend` on NPUs
    disable_cuda_graph: bool = False
    log_level: str = "info"


@dataclass
class VLLMServeOptions:
    # `vllm serve` (vllm-ascend on NPUs).
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9  # only without a config.json to size the cache from
    max_num_seqs: int = 0  # 0: sized from the cell (kv_bound)
    max_model_len: int = 0  # 0: sized from the cell
    enforce_eager: bool = False


@dataclass
class ServerConfig:
    # transformers | sglang | vllm: started in the worker on its device(s); url: an already
    # running endpoint (no device pinning); command: `command` started like the others.
    kind: str = "transformers"
    # Base URL of an external server (http://HOST:PORT); setting it selects kind=url.
    url: str | None = None
    # kind=command: argv with {python} {host} {port} {model_path} {model_name} filled in.
    command: list[str] = field(default_factory=list)
    # How url/command servers are asked for exact lengths; the others use their own.
    api: str = "openai"
    # The `model` field of requests; None: the model's path (as the started servers name it).
    # Not with server=transformers: that server answers only to the model's path.
    served_model_name: str | None = None
    # Let the server reuse cached prefixes (off: every prefill is measured).
    prefix_caching: bool = False
    # More arguments for the server's command line, appended as given.
    extra_args: list[str] = field(default_factory=list)
    startup_timeout_s: float = 900.0  # start to healthy (first model load included)
    request_timeout_s: float = 600.0  # one request, send to last token
    health_path: str = "/health"
    transformers: TransformersServeOptions = field(default_factory=TransformersServeOptions)
    sglang: SGLangServeOptions = field(default_factory=SGLangServeOptions)
    vllm: VLLMServeOptions = field(default_factory=VLLMServeOptions)

    def __post_init__(self) -> None:
        if self.url and self.kind == "transformers":
            self.kind = "url"  # `server.url=...` on the default server
        one_of("server", self.kind, SERVER_KINDS)
        one_of("server.api", self.api, SERVER_APIS)
        if self.kind == "url":
            _check_url(self.url)
        elif self.url:
            raise ConfigError(f"server.url is only for server=url, not server={self.kind}")
        if self.kind == "command" and not self.command:
            raise ConfigError("server=command needs server.command=[ARGV...] (with {port})")
        for name in ("startup_timeout_s", "request_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"server.{name} must be > 0")
        positive_int("server.sglang.tp_size", self.sglang.tp_size)
        positive_int("server.vllm.tensor_parallel_size", self.vllm.tensor_parallel_size)
        if self.kind == "transformers" and self.served_model_name:
            raise ConfigError(
                f"server.served_model_name={self.served_model_name!r} is not allowed with "
                "server=transformers: `transformers serve` answers only to the model's path"
            )

    @property
    def parallel_size(self) -> int:
        """Devices one server uses (tensor parallel)."""
        if self.kind == "sglang":
            return self.sglang.tp_size
        if self.kind == "vllm":
            return self.vllm.tensor_parallel_size
        return 1

    def label(self) -> str:
        """Short text of the settings that tell one server from another of its kind."""
        parts = [self.kind, self.url or ""]
        defaults = asdict(type(self)())
        for key in ("command", "api", "served_model_name", "prefix_caching", "extra_args"):
            if getattr(self, key) != defaults[key]:
                parts.append(f"{key}={getattr(self, key)}")
        sub_defaults = defaults.get(self.kind) or {}
        parts += [f"{k}={v}" for k, v in self.options.items() if sub_defaults.get(k) != v]
        return " ".join(p for p in parts if p)

    @property
    def options(self) -> dict[str, Any]:
        """The options of this kind of server (for identities and records)."""
        if self.kind not in ("transformers", "sglang", "vllm"):
            return {}
        return asdict(getattr(self, self.kind))


def _check_url(url: str | None) -> None:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"server.url={url!r} is not allowed: give the server's base URL, "
            "e.g. server.url=http://10.0.0.5:8000"
        )


# The KV cache a started server gets: enough for the cell's requests in flight at their longest
# (prompt + output + a few special tokens), with headroom, never a share of the host's memory.
KV_HEADROOM = 1.25
KV_MIN_SEQS = 16  # a server reused by lower traffic levels (c=1,2,4,8 share one start)
KV_OPEN_LOOP_SEQS = 256  # request_rate without concurrency: the server runs this many at once
KV_SPECIAL_TOKENS = 8  # a BOS and the like, added by the server's tokenizer


@dataclass(frozen=True)
class KVBound:
    """What a server started for a cell is sized for (powers of two, so neighbouring cells
    share one server): ``seqs`` requests at once of up to ``seq_tokens`` tokens each, and a
    KV cache of ``tokens`` tokens (``seqs x seq_tokens x KV_HEADROOM``)."""

    seqs: int
    seq_tokens: int
    tokens: int


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def kv_bound(cell: Any) -> KVBound:
    """The cache bound of a serving cell's server (a CellConfig)."""
    w = cell.workload
    seqs = _pow2(max(KV_MIN_SEQS, cell.concurrency or KV_OPEN_LOOP_SEQS))
    longest = w.prompt_len_dist.longest(cell.prompt_len) + w.seq_dist.longest(cell.seq)
    if w.kind == "conversation":  # the last turn carries every earlier turn and answer
        longest = w.turns * (cell.prompt_len + cell.seq)
    elif w.kind == "trace":
        longest = max(longest, trace_longest(w.trace))
    seq_tokens = _pow2(longest + KV_SPECIAL_TOKENS)
    return KVBound(seqs, seq_tokens, math.ceil(seqs * seq_tokens * KV_HEADROOM))


def check_load(cell: Any) -> None:
    """The serving axes of a cell (a CellConfig): set for serving cells, unset otherwise."""
    load = (cell.concurrency, cell.request_rate)
    if not cell.serving:
        if any(v is not None for v in load):
            raise ConfigError("concurrency and request_rate are serving axes: add workload=serve")
        return
    _check_kind(cell)
    if cell.concurrency is None and cell.request_rate is None and cell.workload.kind != "trace":
        cell.concurrency = 1  # a serving cell without a load: one user at a time
    if cell.concurrency is not None:
        positive_int("concurrency", cell.concurrency)
    rate = cell.request_rate
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(
            f"request_rate={rate!r} is not allowed: a finite number > 0 (requests per second)"
        )
    if cell.workload.prefix_len >= cell.prompt_len:
        raise ConfigError(
            f"workload.prefix_len={cell.workload.prefix_len} is not allowed: "
            f"must be < prompt_len={cell.prompt_len}"
        )


def _check_kind(cell: Any) -> None:
    """What a conversation or trace cell's load may be (they set their own)."""
    w = cell.workload
    if w.kind == "conversation":
        if cell.request_rate is not None:
            raise ConfigError(
                "request_rate is not allowed with workload.kind=conversation: sessions run "
                "closed loop (workload.sessions at once)"
            )
        if cell.concurrency not in (None, w.sessions):
            raise ConfigError(
                f"concurrency={cell.concurrency} is not allowed with workload.kind=conversation:"
                f" the sessions in flight are workload.sessions={w.sessions}"
            )
        cell.concurrency = w.sessions
    elif w.kind == "trace":
        if cell.request_rate is not None or cell.concurrency is not None:
            raise ConfigError(
                "concurrency and request_rate are not allowed with workload.kind=trace: "
                "requests are sent on the trace's clock (workload.trace.speed)"
            )
        cell.request_rate = None
    if w.prefix_groups and w.kind != "random":
        raise ConfigError("workload.prefix_groups is only for workload.kind=random")
