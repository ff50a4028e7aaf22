"""The HF worker on the real tiny model (built locally, loaded via from_pretrained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.config import BenchConfig, CellConfig, DeviceConfig, ModelConfig
from workers import model_cache
from workers import run as measure
from workers.backends.hf import _count_generated
from workers.static.measure import quality_flags

QUICK = BenchConfig(name="quick", warmup=1, iterations=2, max_iterations=2)


def cell(tiny_cache: Path, **kw) -> CellConfig:
    model = kw.pop("model", None) or ModelConfig(cache_dir=str(tiny_cache))
    return CellConfig(model=model, device=DeviceConfig(name="cpu"), bench=QUICK, **kw)


def test_exact_token_counts_and_record_keys(tiny_cache):
    rec = measure.run_cell(cell(tiny_cache, batch=3, seq=7, prompt_len=5))
    assert rec["status"] == "ok", rec["error"]
    assert rec["expected_tokens"] == 21
    assert rec["generated_tokens"] == 21
    assert rec["raw"]["generated_tokens"] == [21, 21]
    # one timestamp per generated token, increasing
    for steps in rec["raw"]["step_times_s"]:
        assert len(steps) == 7 and steps == sorted(steps)
    assert rec["ttft_s_mean"] < rec["e2e_s_mean"]
    assert rec["output_tokens_per_s"] == pytest.approx(42 / sum(rec["raw"]["e2e_s"]))
    assert rec["peak_memory_bytes"] > 0
    # `unstable` and `host_busy` depend on how busy the machine is: any other flag is a fault.
    assert rec["device"] == "cpu" and set(rec["flags"]) <= {"unstable", "host_busy"}
    json.dumps(rec)  # a record is plain JSON


def test_forced_past_eos(tiny_cache, tmp_path):
    """A model that wants EOS at every step still generates exactly `seq` tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    from workers.tiny import ensure_tiny_model

    src = ensure_tiny_model(ModelConfig().tiny, str(tiny_cache))
    model = AutoModelForCausalLM.from_pretrained(src)
    eos = model.config.eos_token_id
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos] = 1.0  # EOS always has the largest logit
    eager = tmp_path / "eos-model"
    model.save_pretrained(eager)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (eager / f).write_bytes((src / f).read_bytes())
    rec = measure.run_cell(
        cell(tiny_cache, batch=2, seq=6, prompt_len=4, model=ModelConfig(path=str(eager)))
    )
    assert rec["status"] == "ok", rec["error"]
    assert rec["model"] == "eos-model"
    assert rec["generated_tokens"] == 12 == rec["expected_tokens"]


def test_count_stops_at_first_eos():
    assert _count_generated([5, 6, 2, 3, 3], {2}) == 3
    assert _count_generated([5, 6, 7], {2}) == 3


def test_model_is_loaded_once_per_process(tiny_cache):
    measure.drop_models()
    before = model_cache.LOAD_COUNT["loads"]
    a = measure.run_cell(cell(tiny_cache, batch=1, seq=3, prompt_len=4))
    b = measure.run_cell(cell(tiny_cache, batch=2, seq=4, prompt_len=4))
    assert model_cache.LOAD_COUNT["loads"] == before + 1
    assert a["model_reused"] is False and b["model_reused"] is True


def test_exception_becomes_failed_record(tiny_cache, tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    rec = measure.run_cell(cell(tiny_cache, model=ModelConfig(path=str(bad))))
    assert rec["status"] == "failed"
    assert rec["error"]["type"] and rec["error"]["traceback"]
    assert rec["output_tokens_per_s"] is None


def test_short_output_and_unstable_flags():
    c = CellConfig(bench=BenchConfig(iterations=2, min_duration_s=5.0, unstable_cv=0.1))
    rec = {"generated_tokens": 5, "expected_tokens": 8, "e2e_cv": 0.5,
           "measured_iterations": 2, "measured_s": 1.0}  # fmt: skip
    assert quality_flags(rec, c, False) == ["short_output", "unstable", "too_brief"]
    rec.update(generated_tokens=8, e2e_cv=0.01, measured_s=6.0)
    assert quality_flags(rec, c, True) == ["simulated"]
