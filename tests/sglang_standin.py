"""Test helpers for the SGLang backend (placeholder: cells)."""

from __future__ import annotations

from cells.config import (
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    ModelConfig,
    SGLangOptions,
)

QUICK = BenchConfig(name="quick", warmup=1, iterations=2, max_iterations=2)


def sgl_cell(**kw) -> CellConfig:
    model = kw.pop("model", None) or ModelConfig(name="llama3_8b", load_format="dummy")
    opts = kw.pop("sglang", None) or SGLangOptions()
    device = kw.pop("device", "cpu")
    return CellConfig(
        model=model,
        backend=BackendConfig(name="sglang", sglang=opts),
        device=DeviceConfig(name=device),
        bench=kw.pop("bench", QUICK),
        **kw,
    )
