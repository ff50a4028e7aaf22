"""Roofline bounds: the fastest a cell could possibly run on a device, from the model's shape.

No kernel can beat the device's peak memory bandwidth or peak FLOP/s, so every forward pass
takes at least max(bytes it must move / bandwidth, FLOPs it must do / FLOP/s). For a cell of
`batch` sequences, `prompt_len` prompt tokens and `seq` generated tokens (docs/trust.md):

  W  = bytes of the weights every forward reads: all parameters except the input embedding
       table (a gather of `batch` rows; unless tied to the LM head), x bytes per parameter
  kv = KV-cache bytes per token = 2 x layers x kv_heads x head_dim x bytes per element
  prefill (gives the first token):   bytes = W + batch*prompt_len*kv          (KV written)
                                     flops = batch*(prompt_len*2*Pl + 2*V*H + attn(prompt_len))
  decode step k = 1..seq-1 (context c = prompt_len + k):
                                     bytes = W + batch*c*kv                   (KV read + written)
                                     flops = batch*(2*Pl + 2*V*H + 4*L*heads*head_dim*c)
  Pl = parameters of the decoder layers, V*H = the LM head; attn(p) = 4*L*heads*head_dim*p(p+1)/2
  (causal attention, QK^T and AV). Each pass: t = max(bytes / bandwidth, flops / FLOP/s).

  bound_ttft_s   = t(prefill)                       (lower bound on ttft_s)
  bound_tpot_s   = sum_k t(decode k) / (seq - 1)    (lower bound on tpot_s; None for seq = 1)
  bound_e2e_s    = bound_ttft_s + sum_k t(decode k)
  bound_output_tokens_per_s = batch*seq / bound_e2e_s   (upper bound on output_tokens_per_s)

Pure arithmetic: no torch, no project imports but bounds.specs (workers/ and aggregate/ both
use it). Applying a bound to a measured cell is workers/bounding.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounds.specs import DeviceSpec

#: Relative tolerance before a number counts as faster than the bound (clock granularity,
#: rounding in published tables).
TOLERANCE = 0.02

BYTES_PER_ELEMENT = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

SHIPPED_CONFIGS = Path(__file__).resolve().parent / "model_configs"


class ModelShapeError(ValueError):
    """The config lacks what the roofline needs (not a Llama-like decoder)."""


def bytes_per_element(dtype: str) -> int:
    name = dtype.replace("torch.", "")
    if name not in BYTES_PER_ELEMENT:
        raise ValueError(f"dtype {dtype!r}: known dtypes are {', '.join(BYTES_PER_ELEMENT)}")
    return BYTES_PER_ELEMENT[name]


def shipped_model_names() -> list[str]:
    return sorted(p.parent.name for p in SHIPPED_CONFIGS.glob("*/config.json"))


def shipped_model_config(name: str) -> dict[str, Any] | None:
    """bounds/model_configs/NAME/config.json as a dict, or None."""
    path = SHIPPED_CONFIGS / name / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass(frozen=True)
class ModelShape:
    """What the roofline needs from a Llama-like decoder config."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        cfg = config.get("text_config") or config  # multimodal wrappers keep the LM inside
        try:
            heads = int(cfg["num_attention_heads"])
            hidden = int(cfg["hidden_size"])
            return cls(
                hidden_size=hidden,
                intermediate_size=int(cfg["intermediate_size"]),
                num_layers=int(cfg["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or hidden // heads),
                vocab_size=int(cfg["vocab_size"]),
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                attention_bias=bool(cfg.get("attention_bias", False)),
                mlp_bias=bool(cfg.get("mlp_bias", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelShapeError(f"model config lacks a usable {exc}") from None

    @property
    def layer_parameters(self) -> int:
        h, q, kv = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        )
        attn = h * q + 2 * h * kv + q * h
        if self.attention_bias:
            attn += q + 2 * kv + h
        mlp = 3 * h * self.intermediate_size  # gate, up, down (SwiGLU)
        if self.mlp_bias:
            mlp += 2 * self.intermediate_size + h
        return attn + mlp + 2 * h  # + two RMSNorm weights

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def parameters(self) -> int:
        """All parameters (Llama-3-8B: 8,030,261,248)."""
        head = 0 if self.tie_word_embeddings else self.embedding_parameters
        final_norm = self.hidden_size
        return (
            self.num_layers * self.layer_parameters + self.embedding_parameters + head + final_norm
        )

    @property
    def forward_parameters(self) -> int:
        """Parameters every forward must read in full: all but an untied input embedding."""
        if self.tie_word_embeddings:
            return self.parameters
        return self.parameters - self.embedding_parameters

    def kv_bytes_per_token(self, elem: int) -> int:
        """K and V of every layer (Llama-3-8B fp16: 2*32*8*128*2 = 131,072 bytes)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * elem

    def token_flops(self, context: int) -> float:
        """FLOPs of one token through every layer and the LM head, attending to `context`
        keys (matmuls only: a lower bound)."""
        dense = 2 * (self.num_layers * self.layer_parameters + self.embedding_parameters)
        return dense + 4 * self.num_layers * self.num_heads * self.head_dim * context

    def prefill_flops(self, prompt_len: int) -> float:
        """One sequence's prefill: every prompt token through the layers, causal attention,
        and the LM head for the last position only (what generate computes at least)."""
        layers = 2 * self.num_layers * self.layer_parameters * prompt_len
        head = 2 * self.embedding_parameters
        attn = (
            4 * self.num_layers * self.num_heads * self.head_dim * prompt_len * (prompt_len + 1) / 2
        )
        return layers + head + attn


@dataclass(frozen=True)
class MemoryFloor:
    """The least memory a cell can run in: every weight and the whole KV cache (activations,
    workspace and fragmentation come on top, so a cell above this floor cannot fit)."""

    weight_bytes: int
    kv_cache_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes


def memory_floor(
    model_config: Mapping[str, Any], dtype: str, batch: int, seq: int, prompt_len: int
) -> MemoryFloor:
    shape = ModelShape.from_config(model_config)
    elem = bytes_per_element(dtype)
    kv = batch * (prompt_len + seq) * shape.kv_bytes_per_token(elem)
    return MemoryFloor(weight_bytes=shape.parameters * elem, kv_cache_bytes=kv)


@dataclass(frozen=True)
class Bounds:
    """Lower bounds on times and the upper bound on throughput of one cell."""

    ttft_s: float  # prefill, which yields the first token
    tpot_s: float | None  # mean decode step; None for seq = 1
    e2e_s: float
    output_tokens_per_s: float
    decode_limited_by: str  # "memory" or "compute" (the last decode step)
    weight_bytes: int  # read by every forward
    kv_bytes_per_token: int
    decode_steps_s: tuple[float, ...] = field(default=(), repr=False)


def _pass_time(nbytes: float, flops: float, bw: float, peak: float | None) -> tuple[float, str]:
    t_mem = nbytes / bw
    t_flops = flops / peak if peak else 0.0
    return (t_flops, "compute") if t_flops > t_mem else (t_mem, "memory")


@dataclass(frozen=True)
class CellPasses:
    """The forward passes of one cell on its devices: (bytes moved, FLOPs) of the prefill and
    of each decode step, with the devices' summed bandwidth and FLOP/s (None: unknown). What
    :func:`bounds_for` and ``bounds.regime.phase_bounds`` both read."""

    weight_bytes: float
    kv_bytes_per_token: float
    bandwidth: float
    peak_flops: float | None
    prefill: tuple[float, float]
    decode: tuple[tuple[float, float], ...]


def cell_passes(
    model_config: Mapping[str, Any],
    dtype: str,
    spec: DeviceSpec,
    batch: int,
    seq: int,
    prompt_len: int,
    devices: int = 1,
) -> CellPasses:
    """The passes of one cell (formulas in the module docstring); decode step k reads the
    context prompt_len + k, k = 1 .. seq - 1."""
    shape = ModelShape.from_config(model_config)
    elem = bytes_per_element(dtype)
    w = shape.forward_parameters * elem
    kv = shape.kv_bytes_per_token(elem)
    return CellPasses(
        weight_bytes=w,
        kv_bytes_per_token=kv,
        bandwidth=spec.peak_bandwidth_bytes_per_s * devices,
        peak_flops=spec.peak_flops_per_s * devices if spec.peak_flops_per_s else None,
        prefill=(w + batch * prompt_len * kv, batch * shape.prefill_flops(prompt_len)),
        decode=tuple(
            (w + batch * c * kv, batch * shape.token_flops(c))
            for c in range(prompt_len + 1, prompt_len + seq)
        ),
    )


def bounds_for(
    model_config: Mapping[str, Any],
    dtype: str,
    spec: DeviceSpec,
    batch: int,
    seq: int,
    prompt_len: int,
    devices: int = 1,
) -> Bounds:
    """Roofline bounds of one cell (formulas in the module docstring). `devices` chips in
    tensor parallel add up their bandwidth and FLOP/s (communication ignored: a lower bound)."""
    p = cell_passes(model_config, dtype, spec, batch, seq, prompt_len, devices)
    ttft, _ = _pass_time(*p.prefill, p.bandwidth, p.peak_flops)
    steps = []
    limited_by = "memory"
    for nbytes, flops in p.decode:
        t, limited_by = _pass_time(nbytes, flops, p.bandwidth, p.peak_flops)
        steps.append(t)
    e2e = ttft + sum(steps)
    return Bounds(
        ttft_s=ttft,
        tpot_s=sum(steps) / (seq - 1) if seq > 1 else None,
        e2e_s=e2e,
        output_tokens_per_s=batch * seq / e2e,
        decode_limited_by=limited_by,
        weight_bytes=p.weight_bytes,
        kv_bytes_per_token=p.kv_bytes_per_token,
        decode_steps_s=tuple(steps),
    )


def violations(rec: Mapping[str, Any], b: Bounds) -> list[str]:
    """Which of a record's numbers beat the bounds by more than TOLERANCE."""
    out = []
    tps = rec.get("output_tokens_per_s")
    if tps and tps > b.output_tokens_per_s * (1 + TOLERANCE):
        out.append(f"output_tokens_per_s {tps:.4g} > bound {b.output_tokens_per_s:.4g}")
    ttft = rec.get("ttft_s_mean")
    if ttft is not None and ttft < b.ttft_s * (1 - TOLERANCE):
        out.append(f"ttft_s_mean {ttft:.4g} < bound {b.ttft_s:.4g}")
    tpot = rec.get("tpot_s_mean")
    if tpot is not None and b.tpot_s is not None and tpot < b.tpot_s * (1 - TOLERANCE):
        out.append(f"tpot_s_mean {tpot:.4g} < bound {b.tpot_s:.4g}")
    return out
