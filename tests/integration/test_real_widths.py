"""A model at its real widths in this process: Llama-3-8B's (1 of 32 layers, 1.27 B
parameters, about 2.5 GB of dummy bf16 weights) measured through run_cell on the CPU. In
the integration tier for its size (the tiny model covers the same code in tests/unit). The
check prompts run too, shrunk to one prompt and two tokens: at these widths the default four
prompts of 32 greedy tokens took longer than the model's load (each token a 525 M-value
head)."""

from __future__ import annotations

from pathlib import Path

import torch

from bounds.roofline import SHIPPED_CONFIGS
from jobs.config import CellConfig, DeviceConfig, ModelConfig
from jobs.quality import QualityConfig
from tests.unit.test_models import ONE_SHOT
from workers import model_cache, run_cell
from workers.models import DUMMY_HIGH


def test_llama3_8b_dummy_one_layer_through_run_cell():
    """The real 8B widths (1 of 32 layers) with dummy bf16 weights, no tokenizer, on the CPU."""
    model = ModelConfig(
        name="llama3_8b", dtype="bfloat16", load_format="dummy", num_layers_override=1
    )
    cell = CellConfig(
        batch=1, seq=2, prompt_len=4, model=model, device=DeviceConfig(name="cpu"), bench=ONE_SHOT,
        quality=QualityConfig(prompts=1, prompt_len=4, tokens=2),
    )  # fmt: skip
    rec = run_cell(cell)
    assert rec["status"] == "ok", rec["error"]
    assert rec["model_parameters"] == 1_268_789_248 == 525_336_576 * 2 + 218_112_000 + 4096
    assert rec["dtype"] == "bfloat16" and rec["load_format"] == "dummy"
    assert Path(rec["model_path"]) == SHIPPED_CONFIGS / "llama3_8b"
    assert rec["generated_tokens"] == rec["expected_tokens"] == 2
    assert rec["check_status"] == "ok" and rec["check_tokens"] == 2  # at 128,256 ids
    assert all(0 <= t < 128_256 for t in rec["quality"]["check_tokens"][0])
    (backend,) = model_cache._LOADED.values()
    assert backend.tokenizer is None
    params = list(backend.model.parameters())
    assert {p.dtype for p in params} == {torch.bfloat16}
    assert {p.device.type for p in params} == {"cpu"}
    head = backend.model.lm_head.weight
    low, high = torch.aminmax(head[:1024])  # a slice: the whole head is 525 M values
    assert 0 < max(-low.item(), high.item()) <= DUMMY_HIGH  # SGLang's dummy range, not zeros
