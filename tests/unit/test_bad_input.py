"""Bad input: a clear message naming the setting, a non-zero exit, nothing launched or written.

Every case runs launch.py's entry point in this process (`launch_here`: Hydra's command line,
the sweep's validation and the launcher's planning, as `python launch.py` runs them) in an
empty directory; tests/integration/test_bad_input.py runs a few as real subprocesses, and those
that need a Ray cluster. `{name}` in an override is a directory the test makes first (model
directories that are not usable).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "vocab_size": 128, "max_position_embeddings": 256}  # fmt: skip
MODELS = {
    # an encoder: AutoModelForCausalLM would give it a random LM head
    "bert": {
        "model_type": "bert",
        "architectures": ["BertForMaskedLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 128,
    },  # fmt: skip
    # GPT-2 names its position limit n_positions
    "gpt2": {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_positions": 64,
        "n_embd": 64,
        "n_layer": 2,
        "n_head": 4,
        "vocab_size": 128,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },  # fmt: skip
    "not_an_object": ["llama"],
    "string_number": {**LLAMA, "max_position_embeddings": "lots"},
}

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
    # a misspelt key, in the form Hydra's own hint suggests
    (["+batchh=16"], ["batchh", "did you mean batch"]),
    (["-m", "+batchh=16,32"], ["batchh", "did you mean batch"]),
    (["bench.unstable_cv=-1"], ["bench.unstable_cv=-1"]),
    (["bench.min_duration_s=-2"], ["bench.min_duration_s"]),
    # models that are not what they claim
    (["model.path={bert}"], ["model.path", "not a causal language model"]),
    (["model.path={gpt2}", "prompt_len=32", "seq=64"], ["prompt_len + seq", "64 positions"]),
    (["-m", "model.path={gpt2}", "seq=8,64"], ["prompt_len + seq", "64 positions"]),
    (["model.path={not_an_object}"], ["config.json", "not a JSON object"]),
    (["model.path={string_number}"], ["model.path", "max_position_embeddings"]),
    # the launcher's own settings
    (["-m", "batch=1", "hydra.launcher.max_retries=-1"], ["hydra.launcher.max_retries=-1"]),
    (["-m", "batch=1", "hydra.launcher.job_timeout_s=-5"], ["hydra.launcher.job_timeout_s=-5"]),
    (["-m", "batch=1", "hydra.launcher.progress=maybe"], ["hydra.launcher.progress", "auto"]),
    (["-m", "batch=1", "hydra.launcher.ray.address=127.0.0.1:1"], ["no Ray cluster answers"]),
    (["-m", "batch=1", "hydra.launcher.ray.address=nonsense"], ["HOST:PORT"]),
    (["-m", "batch=1", "hydra.sweep.dir={a_file}"], ["hydra.sweep.dir", "cannot be used"]),
    # a device the cluster does not have (refused once Ray has started: integration tier)
    (["-m", "batch=1", "device=cuda", "hydra.launcher.ray.num_cpus=2"], ["GPU", "no node"]),
]
IN_PROCESS = [c for c in CASES if "device=cuda" not in c[0] or "-m" not in c[0]]


def _fill(overrides: list[str], where: Path) -> list[str]:
    """`{name}` -> a directory (or file) made for this case under `where`."""
    paths = {}
    for name, config in MODELS.items():
        d = where / "models" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(config))
        paths[name] = str(d)
    paths["a_file"] = str(where / "a_file")
    Path(paths["a_file"]).write_text("not a directory")
    return [o.format(**paths) for o in overrides]


def test_at_least_forty_kinds_of_bad_input():
    assert len(CASES) >= 40


@pytest.mark.parametrize("overrides,words", IN_PROCESS, ids=[" ".join(c[0]) for c in IN_PROCESS])
def test_bad_input_is_refused(launch_here, tmp_path, overrides, words):
    proc = launch_here(*_fill(overrides, tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for word in words:
        assert word in out, f"{word!r} not in:\n{out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    # nothing measured, nothing recorded
    assert not list(tmp_path.rglob("record.json"))
    assert not list(tmp_path.rglob("results.jsonl"))
    if "-m" not in overrides:
        assert not (tmp_path / "outputs").exists()
