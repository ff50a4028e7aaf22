"""Bad input: a clear message naming the setting, a non-zero exit, nothing launched or written.

Every case runs `python launch.py` for real in a subprocess in an empty directory.
"""

from __future__ import annotations

import pytest

CASES = [
    # (overrides, words the message must contain)
    (["batch=0"], ["batch=0", ">= 1"]),
    (["batch=-3"], ["batch=-3", ">= 1"]),
    (["seq=0"], ["seq=0", ">= 1"]),
    (["prompt_len=-1"], ["prompt_len=-1", ">= 1"]),
    (["batch=abc"], ["batch", "Integer"]),
    (["seq=1.5"], ["seq", "Integer"]),
    (["prompt_len=true"], ["prompt_len"]),
    (["backend=foo"], ["backend/foo", "hf"]),
    (["device=tpu"], ["device/tpu", "npu"]),
    (["model=gpt5"], ["model/gpt5", "tiny"]),
    (["model.path=/no/such/dir"], ["model.path", "no such directory"]),
    (["model.path=/tmp"], ["model.path", "not a model directory"]),
    (["device=npu"], ["device=npu", "torch_npu"]),
    (["device=cuda"], ["device=cuda", "CUDA"]),
    (["seq=4000"], ["prompt_len + seq", "2048"]),
    (["bench.iterations=0"], ["bench.iterations=0"]),
    (["bench.warmup=-1"], ["bench.warmup"]),
    (["model.dtype=int3"], ["model.dtype", "float16"]),
    (["backend=sglang"], ["backend=sglang", "pip install"]),
    (["model=llama3_8b"], ["model.path", "dummy"]),
    (["model.name=../../etc"], ["model.name"]),
    (["nonsense_key=1"], ["nonsense_key"]),
    (["backend=sim", "backend.sim.fault=meteor"], ["backend.sim.fault", "crash"]),
    (["backend=sim", "backend.sim.device_spec=tpu9"], ["backend.sim.device_spec", "ascend_910b"]),
    (["backend=sim", "backend.sim.efficiency=1.5"], ["backend.sim.efficiency"]),
    (["device.per_cell=0"], ["device.per_cell"]),
    (["-m", "batch=1,0"], ["batch=0", ">= 1"]),
    (["-m", "backend=hf,sglang"], ["backend=sglang", "pip install"]),
]


@pytest.mark.parametrize("overrides,words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused(launch, tmp_path, overrides, words):
    proc = launch(*overrides, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for word in words:
        assert word in out, f"{word!r} not in:\n{out[-2000:]}"
    assert "Traceback" not in proc.stderr or "Error merging" in out or "Could not" in out
    # nothing measured, nothing recorded
    assert not list(tmp_path.rglob("record.json"))
    assert not list(tmp_path.rglob("results.jsonl"))
    if "-m" not in overrides:
        assert not (tmp_path / "outputs").exists()
