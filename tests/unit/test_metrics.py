"""Metric formulas on hand-made iterations (the README's definitions)."""

from __future__ import annotations

import math

import pytest

from workers.base import IterationResult
from workers.metrics import cell_metrics, inter_token_gaps, percentile, stdev, tpot


def test_percentile_interpolates_linearly():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([10.0, 0.0], 0) == 0.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_tpot_excludes_the_first_token():
    # 1.0 s end to end, 0.1 s to the first token, 10 tokens: 9 decode gaps in 0.9 s.
    assert tpot(1.0, 0.1, 10) == pytest.approx(0.1)
    assert tpot(1.0, 0.1, 1) is None


def test_cell_metrics_formulas():
    its = [
        IterationResult(e2e_s=1.0, ttft_s=0.2, step_times_s=[0.2, 0.6, 1.0], generated_tokens=6),
        IterationResult(e2e_s=2.0, ttft_s=0.4, step_times_s=[0.4, 1.2, 2.0], generated_tokens=6),
    ]
    m = cell_metrics(its, batch=2, seq=3, prompt_len=5)
    assert m["e2e_s_mean"] == pytest.approx(1.5)
    assert m["e2e_s_stdev"] == pytest.approx(stdev([1.0, 2.0]))
    assert m["e2e_cv"] == pytest.approx(stdev([1.0, 2.0]) / 1.5)
    assert m["ttft_s_mean"] == pytest.approx(0.3)
    # TPOT per iteration: (1.0-0.2)/2 = 0.4 and (2.0-0.4)/2 = 0.8
    assert m["tpot_s_mean"] == pytest.approx(0.6)
    # 12 generated tokens in 3 s
    assert m["output_tokens_per_s"] == pytest.approx(4.0)
    # prompt tokens 2*5 per iteration -> (20 + 12) / 3
    assert m["total_tokens_per_s"] == pytest.approx(32 / 3)
    assert m["samples_per_s"] == pytest.approx(4 / 3)
    assert m["itl_s_p50"] == pytest.approx(0.6)  # gaps 0.4, 0.4, 0.8, 0.8
    assert m["generated_tokens"] == 6 and m["expected_tokens"] == 6
    assert m["measured_iterations"] == 2 and m["measured_s"] == pytest.approx(3.0)


def test_gaps_and_empty_stdev():
    assert inter_token_gaps([0.1, 0.3, 0.6]) == pytest.approx([0.2, 0.3])
    assert stdev([3.0]) == 0.0
    assert math.isclose(stdev([1.0, 3.0]), math.sqrt(2))
