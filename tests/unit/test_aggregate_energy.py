"""Energy in the outputs: tokens/J and J/token next to throughput in report.md and
results.csv, an energy-vs-batch plot, the baseline comparison; an invalid figure is never
shown as a number."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from aggregate import compare, compare_markdown, summary_table, write_outputs
from aggregate.render.energy import J_PER_TOKEN, TOKENS_PER_J, energy_notes
from aggregate.tables import NO_SOURCE, NOT_VALID, FailureNotes, pivot
from tests.unit.test_aggregate import PNG_SIGNATURE, make_record


def with_energy(batch: int, seq: int, joules_per_token: float | None, **over: Any) -> dict:
    """A record whose energy is valid (a J/token given) or invalid (None: source missing);
    ``over`` keys are set last."""
    rec = make_record(batch, seq, **{k: v for k, v in over.items() if k in ("backend",)})
    if joules_per_token is None:
        rec.update(
            energy_valid=False, energy_invalid_reasons=["source_missing"], energy_source="rapl",
            energy_j=None, output_tokens_per_j=None, energy_j_per_output_token=None,
            energy={"source": "rapl", "details": ["no RAPL package zone under /sys/..."]},
        )  # fmt: skip
        rec.update(over)
        return rec
    tokens = rec["measured_iterations"] * batch * seq
    rec.update(
        energy_valid=True, energy_invalid_reasons=[], energy_source="nvml_energy",
        energy_j=joules_per_token * tokens, energy_j_per_output_token=joules_per_token,
        output_tokens_per_j=1 / joules_per_token, power_w_mean=300.0,
    )  # fmt: skip
    rec.update(over)
    return rec


def test_pivots_show_valid_figures_only():
    recs = [with_energy(1, 64, 2.0), with_energy(2, 64, 1.0), with_energy(4, 64, None)]
    recs.append(with_energy(8, 64, 0.5, energy_valid=False, energy_invalid_reasons=["sample_gap"]))
    notes = FailureNotes(recs)
    rows = {r[0]: r[1] for r in pivot(recs, TOKENS_PER_J, notes).rows}
    assert rows == {"1": "0.500", "2": "1.000", "4": NO_SOURCE, "8": NOT_VALID}
    rows = {r[0]: r[1] for r in pivot(recs, J_PER_TOKEN, notes).rows}
    assert (
        rows["1"] == "2" and rows["8"] == NOT_VALID and rows["4"] == NO_SOURCE
    )  # a number that failed is not shown
    old = make_record(16, 64)  # a record from before energy was measured
    assert {r[0]: r[1] for r in pivot([old], TOKENS_PER_J, notes).rows}["16"] == "n/a"


def test_energy_notes_say_why():
    recs = [with_energy(1, 64, 2.0), with_energy(2, 64, None), with_energy(4, 64, None)]
    lines = energy_notes(recs)
    assert lines[0].startswith("Energy: 1 of 3 ok cells have a valid figure")
    assert "`source_missing` in 2 cell(s): no energy or power source is readable" in lines[1]
    assert "no RAPL package zone" in lines[1]


def test_report_csv_and_plot(tmp_path: Path):
    recs = [with_energy(b, s, 4.0 / b) for b in (1, 2, 4) for s in (64, 128)]
    recs.append(with_energy(8, 64, None))
    out = write_outputs(tmp_path, recs)
    report = (tmp_path / "report.md").read_text()
    tps = report.index("### Output tokens/s, batch x seq")
    tpj = report.index("### Output tokens/J, batch x seq")
    jpt = report.index("### Energy per output token (J), batch x seq")
    assert tps < tpj < jpt < report.index("### E2E latency p50")
    assert "| 8 | no source | — |" in report
    assert "`source_missing` in 1 cell(s)" in report
    with open(tmp_path / "results.csv") as f:
        header = next(csv.reader(f))
    at = header.index("samples_per_s")
    assert header[at + 1 : at + 4] == [
        "output_tokens_per_j", "energy_j_per_output_token", "energy_valid"
    ]  # fmt: skip
    energy_png = [p for p in out if p.endswith("-energy.png")]
    assert len(energy_png) == 1
    assert (tmp_path / energy_png[0]).read_bytes().startswith(PNG_SIGNATURE)
    assert "tok/J" in summary_table(recs) and NO_SOURCE in summary_table(recs)


def test_simulated_energy_is_marked():
    recs = [with_energy(1, 64, 2.0, backend="sim", energy_source="simulated")]
    rows = pivot(recs, TOKENS_PER_J, FailureNotes(recs)).rows
    assert rows[0][1] == "0.500°"  # the simulated mark
    assert any("simulator's power model" in line for line in energy_notes(recs))


def test_compare_covers_energy():
    old = [with_energy(1, 64, 1.0), with_energy(2, 64, 1.0), with_energy(4, 64, 1.0)]
    new = [
        with_energy(1, 64, 1.2),  # 20 % more energy per token at the same speed
        with_energy(2, 64, 0.8),  # 20 % less
        with_energy(4, 64, None),  # no valid figure now: not comparable, not a regression
    ]
    rows, regressions = compare(new, old, threshold_pct=5.0)
    by_batch = {r.batch: r for r in rows}
    assert by_batch[1].verdict == "REGRESSION" and by_batch[1].j_per_token_delta_pct > 19
    assert by_batch[2].verdict == "improved"
    assert by_batch[4].verdict == "within noise" and by_batch[4].new_j_per_token is None
    assert regressions == 1
    text = compare_markdown(rows)
    assert "Δ J/tok" in text and "J/tok +20.0%" in text
