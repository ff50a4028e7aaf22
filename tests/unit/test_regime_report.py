"""report.md's bottleneck table: the regime of prefill and decode per cell, with the larger
bound's fraction of the measured time; absent when no record carries a regime."""

from __future__ import annotations

from aggregate.regimes import cell_text, regime_pivot
from aggregate.render.report import build_report
from aggregate.tables import FailureNotes


def rec(batch: int, seq: int, **kw) -> dict:
    base = {
        "cell_id": f"c{batch}-{seq}", "status": "ok", "batch": batch, "seq": seq,
        "prompt_len": 32, "model": "tiny", "backend": "hf", "device": "cpu", "dtype": "float32",
        "output_tokens_per_s": 100.0, "flags": [], "finished_at": "2026-12-04T00:00:00",
    }  # fmt: skip
    return {**base, **kw}


OK = rec(
    1, 64,
    prefill_regime="overhead_bound", prefill_bound_fraction_memory=0.04,
    prefill_bound_fraction_compute=None,
    decode_regime="memory_bound", decode_bound_fraction_memory=0.71,
    decode_bound_fraction_compute=0.01,
)  # fmt: skip


def test_cell_text_and_pivot():
    notes = FailureNotes([OK])
    assert cell_text(OK, notes) == "overhead 0.04 / memory 0.71"
    assert cell_text(rec(2, 64), notes) == "n/a / n/a"
    table = regime_pivot([OK, rec(2, 128)], FailureNotes([OK]))
    assert table.headers == ["batch \\ seq", "64", "128"]
    assert table.rows[0] == ["1", "overhead 0.04 / memory 0.71", "—"]


def test_report_has_the_table_only_with_regimes(tmp_path):
    text = build_report(tmp_path, [OK, rec(2, 64)])
    assert "### Bottleneck, prefill / decode" in text
    assert "overhead 0.04 / memory 0.71" in text
    assert "### Bottleneck" not in build_report(tmp_path, [rec(2, 64)])
