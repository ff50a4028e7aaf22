"""Bad input through a real `python launch.py` subprocess: exit 2, one `error:` line naming the
setting, no traceback, nothing written. The whole table (tests/unit/test_bad_input.py) runs
the same code in-process; here a single run, a sweep, and what needs a started Ray."""

from __future__ import annotations

import pytest

from tests.unit.test_bad_input import _fill

CASES = [
    # (overrides, words the message must contain)
    (["batch=0"], ["batch=0", ">= 1"]),
    (["-m", "batch=1,0"], ["batch=0", ">= 1"]),
    (["-m", "model.path={gpt2}", "seq=8,64"], ["prompt_len + seq", "64 positions"]),
    # a type error in a single run: Hydra's merge error, as the one line a sweep gives
    (["batch=1.5"], ["batch=1.5", "Integer"]),
    (["-m", "backend=sim", "slo.ttft_ms=nan"], ["slo.ttft_ms=nan", "finite"]),
    # a device the cluster does not have: refused once Ray has started
    (["-m", "batch=1", "device=cuda", "hydra.launcher.ray.num_cpus=2"], ["GPU", "no node"]),
]


@pytest.mark.parametrize("overrides,words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exits_2_with_one_error_line(launch, tmp_path, overrides, words):
    proc = launch(*_fill(overrides, tmp_path), timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], f"{word!r} not in:\n{out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert not list(tmp_path.rglob("record.json"))
    assert not list(tmp_path.rglob("results.jsonl"))
    assert not (tmp_path / "outputs").exists()
    assert not (tmp_path / "multirun").exists()  # a refused sweep leaves no directory
