"""The sglang backend's path of the check prompts, against the SGLang stand-in (the real
engine is unverified here: docs/quality.md). The check is one non-streamed generate call
after the timed ones, with the same token-id prompts the hf backend gets."""

from __future__ import annotations

import pytest

from aggregate.quality import annotate
from jobs.quality import QualityConfig
from tests.sglang_standin import installed, sgl_cell
from workers import run as measure
from workers.quality.check import check_prompts


@pytest.fixture
def stand_in(monkeypatch):
    yield from installed(monkeypatch)


def test_sglang_check_prompts_are_one_untimed_call(stand_in) -> None:
    cell = sgl_cell(batch=2, seq=5, prompt_len=7, quality=QualityConfig(prompts=3, tokens=6))
    rec = measure.run_cell(cell)
    assert rec["status"] == "ok", rec["error"]
    (engine,) = stand_in.instances
    assert len(engine.calls) == 3  # warm-up + 2 measured: the check is not among them
    (check,) = engine.checks
    assert check["sampling_params"] == {"max_new_tokens": 6, "ignore_eos": True, "temperature": 0.0}
    q = rec["quality"]
    assert rec["check_status"] == "ok" and rec["check_tokens"] == 18
    assert check["input_ids"] == q["check_prompts"] == check_prompts(cell, engine_config(engine))
    assert [len(t) for t in q["check_tokens"]] == [6, 6, 6]
    # dummy weights: its own reference (no hf cell of the same backend family)
    (out,) = annotate([rec])
    assert out["agreement_verdict"] == "reference"


def test_sglang_has_no_task_check_without_a_tokenizer(stand_in, tmp_path) -> None:
    from jobs.quality import AccuracyConfig
    from workers.quality.task import SHIPPED

    rec = measure.run_cell(sgl_cell(accuracy=AccuracyConfig(path=str(SHIPPED), limit=2)))
    assert rec["status"] == "ok" and rec["accuracy"] is None
    assert rec["quality"]["accuracy"]["status"] == "not_applicable"


def engine_config(engine) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(engine.kwargs["model_path"]) / "config.json").read_text())
