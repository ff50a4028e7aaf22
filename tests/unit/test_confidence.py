"""Repeats, 95% confidence intervals, and the baseline comparison that uses them; the check
that two sweeps ran in the same environment."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from aggregate import compare, write_outputs
from aggregate.answers.confidence import fold_repeats, interval, interval_of, t_quantile
from aggregate.baseline.envdiff import environment_diff
from tests.unit.test_aggregate import grid, make_record, run_cli, write_sweep

# Student's t, two-sided 95% (scipy.stats.t.ppf(0.975, df)), and 99% at df 5.
T_975 = {1: 12.706204736174698, 2: 4.302652729911275, 4: 2.7764451051977987,
         9: 2.2621571627409915, 29: 2.045229642132703, 1000: 1.9623390808264078}  # fmt: skip


def test_t_quantile_matches_published_values() -> None:
    for df, expected in T_975.items():
        assert t_quantile(df) == pytest.approx(expected, rel=1e-9)
    assert t_quantile(5, 0.99) == pytest.approx(4.032142983557536, rel=1e-9)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="degrees of freedom"):
            t_quantile(bad)


def test_interval_of_the_mean() -> None:
    iv = interval([10.0, 12.0, 11.0])
    half = T_975[2] * 1.0 / math.sqrt(3)
    assert (iv.mean, iv.n, iv.stdev) == (11.0, 3, 1.0)
    assert (iv.lo, iv.hi) == pytest.approx((11.0 - half, 11.0 + half))
    assert interval([5.0]) is None


def repeats(batch: int, tps: list[float], base: str = "cellA", **over: Any) -> list[dict]:
    out = []
    for i, v in enumerate(tps):
        rec = make_record(batch, 128, salt=f"{base}{i}", **over)
        e2e = batch * 128 / v
        rec.update(repeat=i, repeat_of=base, output_tokens_per_s=v, e2e_s_p50=e2e, e2e_cv=0.01)
        out.append(rec)
    return out


def test_fold_repeats_means_intervals_and_failed_repeats() -> None:
    err = {"type": "RuntimeError", "message": "x", "traceback": ""}
    reps = repeats(4, [100.0, 104.0, 96.0, 1.0])
    reps[3].update(status="failed", error=err, output_tokens_per_s=None)
    plain = make_record(8, 128)
    folded = fold_repeats([*reps, plain])
    assert len(folded) == 2 and folded[1] is plain
    summary = folded[0]
    assert (summary["cell_id"], summary["repeats"], summary["repeats_ok"]) == ("cellA", 4, 3)
    assert summary["output_tokens_per_s"] == pytest.approx(100.0)
    iv = interval_of(summary, "output_tokens_per_s")
    assert iv.n == 3 and iv.hi - iv.mean == pytest.approx(T_975[2] * 4.0 / math.sqrt(3))


def test_compare_calls_a_change_within_the_intervals_noise() -> None:
    old = repeats(4, [100.0, 104.0, 96.0])
    within = repeats(4, [103.0, 107.0, 99.0])  # +3%, intervals overlap
    (row,), n_reg = compare(within, old, threshold_pct=0.0)
    assert (row.verdict, row.method, n_reg) == ("within noise", "95% CI", 0)
    assert row.tokens_per_s_delta_pct == pytest.approx(3.0)
    # the same +3% on single records is judged by the CV rule: beyond a 2% band
    (cv_row,), _ = compare([make_record(4, 128, speed=1.03)], [make_record(4, 128)], 0.0)
    assert (cv_row.verdict, cv_row.method) == ("improved", "CV")
    # outside the intervals
    (slow,), n_reg = compare(repeats(4, [80.0, 81.0, 79.0]), old, threshold_pct=0.0)
    assert (slow.verdict, n_reg) == ("REGRESSION", 1)
    (fast,), _ = compare(repeats(4, [120.0, 121.0, 119.0]), old, threshold_pct=0.0)
    assert fast.verdict == "improved"
    # outside the intervals but smaller than the threshold
    (small,), _ = compare(repeats(4, [95.0, 95.5, 94.5]), old, threshold_pct=10.0)
    assert small.verdict == "within noise"


def test_compare_with_intervals_on_one_side() -> None:
    single = [make_record(4, 128, speed=1.0)]  # 400 tok/s
    inside = repeats(4, [390.0, 410.0, 400.0])
    (row,), _ = compare(inside, single, threshold_pct=0.0)
    assert (row.verdict, row.match) == ("within noise", "axes")
    outside = repeats(4, [440.0, 441.0, 439.0])
    (row,), _ = compare(single, outside, threshold_pct=0.0)
    assert row.verdict == "REGRESSION"


def test_report_has_the_repeats_section(tmp_path: Path) -> None:
    recs = repeats(4, [100.0, 104.0, 96.0]) + [make_record(8, 128)]
    write_outputs(tmp_path, recs, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "### Repeats: 95% confidence intervals" in report
    assert "Student's t with n - 1 degrees of freedom" in report
    lo, hi = 100 - T_975[2] * 4 / math.sqrt(3), 100 + T_975[2] * 4 / math.sqrt(3)
    assert f"| 3 / 3 | 100.0 | {lo:.1f} – {hi:.1f} (±{(hi - 100):.1f}%) |" in report
    assert "2 cells (ok 2)" in report  # the repeats are one cell in the tables
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 4  # all records kept


def test_environment_diff_names_what_differs() -> None:
    old = grid()
    new = grid(device_name="Ascend910B3")
    for r in new:
        r["env"] = {**r["env"], "torch": "2.14.0", "cann": "8.2"}
    diffs = {d.key: d for d in environment_diff(new, old)}
    assert set(diffs) == {"device_name", "env.torch"}  # cann: only one side reports it
    assert diffs["device_name"].severity == "refuse" and diffs["env.torch"].severity == "warn"
    assert diffs["env.torch"].text() == "env.torch: new 2.14.0 vs baseline 2.13.0"
    assert environment_diff(grid(), grid()) == []


def test_cli_refuses_other_hardware_and_warns_on_other_versions(tmp_path: Path) -> None:
    old = write_sweep(tmp_path / "old", grid())
    npu = write_sweep(tmp_path / "npu", grid(device_name="Ascend910B3"))
    res = run_cli(str(npu), "--baseline", str(old), "--no-plots", "--quiet")
    assert res.returncode == 2
    assert "device_name: new Ascend910B3 vs baseline Test CPU" in res.stderr
    assert "--allow-env-diff" in res.stderr and not (npu / "compare.md").exists()
    res = run_cli(str(npu), "--baseline", str(old), "--no-plots", "--quiet", "--allow-env-diff")
    assert res.returncode == 0, res.stderr
    assert "different hardware: `device_name" in (npu / "compare.md").read_text()

    newer = grid()
    for r in newer:
        r["env"] = {**r["env"], "torch": "2.14.0"}
    newer_dir = write_sweep(tmp_path / "newer", newer)
    res = run_cli(str(newer_dir), "--baseline", str(old), "--no-plots", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "warning: environments differ: env.torch: new 2.14.0 vs baseline 2.13.0" in res.stderr
    assert "different software: `env.torch" in (newer_dir / "compare.md").read_text()


def test_cli_baseline_with_repeats_calls_noise(tmp_path: Path) -> None:
    old = write_sweep(tmp_path / "old", repeats(4, [100.0, 104.0, 96.0]))
    new = write_sweep(tmp_path / "new", repeats(4, [103.0, 107.0, 99.0]))
    res = run_cli(str(new), "--baseline", str(old), "--threshold", "0", "--no-plots", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    text = (new / "compare.md").read_text()
    assert "| +3.0% |" in text and "| 95% CI | 0.0% | within noise |" in text
