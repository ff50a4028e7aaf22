"""Output agreement on synthetic records: reference choice, thresholds per dtype, dummy
weights compared only within their backend, the report section (no model)."""

from __future__ import annotations

from typing import Any

from aggregate.quality import (
    NO_REFERENCE,
    REFERENCE,
    THRESHOLDS,
    annotate,
    first_divergence,
    quality_section,
)
from aggregate.render.report import build_report
from aggregate.tables import flags_of

PROMPTS = [[5, 6, 7], [8, 9, 10]]
TOKENS = [list(range(100, 132)), list(range(200, 232))]


def rec(cid: str, backend: str = "hf", dtype: str = "float32", tokens: Any = None, **kw: Any):
    load_format = kw.pop("load_format", "auto")
    model = {"path": None, "load_format": load_format, "num_layers_override": 0, "tiny": {"s": 0}}
    quality = {
        "check_status": "ok",
        "check_prompts": kw.pop("prompts", PROMPTS),
        "check_tokens": TOKENS if tokens is None else tokens,
    }
    return {
        "cell_id": cid, "cell_dir": f"dir-{cid}", "status": "ok", "backend": backend,
        "dtype": dtype, "model": "tiny", "device": "cpu", "batch": 1, "seq": 8,
        "prompt_len": 8, "load_format": load_format, "model_path": "/cache/tiny-llama-1234", "flags": [], "check_status": "ok",
        "quality": quality, "config": {"model": model}, **kw,
    }  # fmt: skip


def off_at(position: int, row: list[int]) -> list[int]:
    return row[:position] + [r + 1 for r in row[position:]]


def test_first_divergence() -> None:
    assert first_divergence([1, 2, 3], [1, 2, 3]) == 3
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2


def test_hf_float32_is_the_reference_and_float32_must_match_every_token() -> None:
    one_off = [TOKENS[0], off_at(31, TOKENS[1])]
    records = [
        rec("c-sgl", backend="sglang", tokens=one_off),  # float32, one token off: divergent
        rec("b-hf16", dtype="bfloat16"),
        rec("a-ref"),
        rec("d-hf32"),
    ]
    out = {r["cell_id"]: r for r in annotate(records)}
    assert out["a-ref"]["agreement_verdict"] == REFERENCE  # hf, float32, smallest id
    assert out["d-hf32"]["agreement"] == 1.0 and out["d-hf32"]["agreement_reference"] == "a-ref"
    assert "divergent" not in out["d-hf32"]["flags"]
    sgl = out["c-sgl"]
    assert sgl["agreement_first_divergence"] == 31 and sgl["agreement"] == (32 + 31) / 64
    assert sgl["flags"] == ["divergent"] and sgl["quality"]["agreement"]["threshold"] == 1.0
    assert records[0]["flags"] == []  # the inputs are left as they were


def test_half_precision_keeps_a_floor() -> None:
    """bfloat16 flips near-ties: most prompts agreeing is fine, none agreeing is not."""
    near = [TOKENS[0], off_at(2, TOKENS[1])]  # (32 + 2) / 64 = 0.53
    broken = [off_at(0, TOKENS[0]), off_at(1, TOKENS[1])]  # 1 / 64
    records = [rec("ref"), rec("bf", "hf", "bfloat16", near), rec("x", "hf", "float16", broken)]
    out = {r["cell_id"]: r for r in annotate(records)}
    assert (
        out["bf"]["agreement_verdict"] == "ok" and out["bf"]["agreement"] > THRESHOLDS["bfloat16"]
    )
    assert out["x"]["agreement_verdict"] == "divergent"


def test_reference_directory_and_missing_reference() -> None:
    wrong = [off_at(0, t) for t in TOKENS]
    out = annotate([rec("cell", tokens=wrong)], reference=[rec("ref")])
    assert out[0]["flags"] == ["divergent"]
    assert out[0]["quality"]["agreement"]["source"] == "--reference"
    other_model = rec("ref2", model_path="/models/other")
    out = annotate([rec("cell")], reference=[other_model])
    assert out[0]["agreement_verdict"] == NO_REFERENCE and out[0]["flags"] == []


def test_other_check_prompts_are_not_compared() -> None:
    out = annotate([rec("ref"), rec("b", dtype="bfloat16", prompts=[[1, 2, 3], [4, 5, 6]])])
    b = out[1]
    assert b["agreement"] is None and b["agreement_verdict"].startswith("not compared")
    assert b["flags"] == []


def test_dummy_weights_compare_only_within_their_backend() -> None:
    other = [off_at(0, t) for t in TOKENS]
    records = [
        rec("hf-d", load_format="dummy"),
        rec("sgl-d32", backend="sglang", load_format="dummy", tokens=other),
        rec("sgl-d16", backend="sglang", dtype="float16", load_format="dummy", tokens=other),
    ]
    out = {r["cell_id"]: r for r in annotate(records)}
    assert out["hf-d"]["agreement_verdict"] == REFERENCE
    assert out["sgl-d32"]["agreement_verdict"] == REFERENCE  # not compared with hf's weights
    assert out["sgl-d16"]["agreement_reference"] == "sgl-d32"
    assert out["sgl-d16"]["agreement_verdict"] == "ok"
    text = "\n".join(quality_section(list(out.values())))
    assert "Dummy-weight cells" in text and "same backend" in text


def test_cells_without_tokens_and_the_report() -> None:
    sim = {**rec("s", backend="sim"), "check_status": "not_applicable", "quality": {}}
    sim["quality"] = {"check_status": "not_applicable"}
    wrong = [off_at(0, t) for t in TOKENS]
    acc = {"status": "ok", "path": "arith.jsonl", "n": 10, "correct": 0, "score": 0.0}
    acc.update(low_95=0.0, high_95=0.28)
    cell = rec("w", tokens=wrong, flags=["accuracy_low"])
    cell["quality"]["accuracy"] = acc
    records = annotate([rec("ref"), cell, sim])
    assert records[2] is sim  # nothing to compare
    lines = quality_section(records)
    text = "\n".join(lines)
    assert "## Output agreement" in text and "| divergent |" in text
    assert "1 cell(s) with check_status `not_applicable`" in text
    assert "## Task check" in text and "[0.00, 0.28]" in text and "accuracy_low" in text
    assert flags_of(records[1]) == ["accuracy_low", "divergent"]
    report = build_report("sweep", records, answers=lines)
    assert "divergent: its greedy tokens" in report  # the flag legend explains it
    assert quality_section([{"cell_id": "x", "status": "ok"}]) == []
