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
    (
        ["backend.hf.compile_backend=tensorrt"],
        ["backend.hf.compile_backend", "inductor, aot_eager"],
    ),
    (["backend.hf.compile_backend=eager"], ["backend.hf.compile_backend=eager", "compile=true"]),
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
    # --- issue 22: a non-finite number is refused wherever it would open a gate ---
    (["slo.ttft_ms=nan"], ["slo.ttft_ms=nan", "finite"]),
    (["slo.tpot_ms=inf"], ["slo.tpot_ms=inf", "finite"]),
    (["-m", "backend=sim", "slo.ttft_ms=nan"], ["slo.ttft_ms=nan", "finite"]),
    (["workload=serve", "request_rate=nan"], ["request_rate", "finite"]),
    (["workload=serve", "request_rate=inf"], ["request_rate", "finite"]),
    (["workload=serve", "workload.burstiness=nan"], ["workload.burstiness", "finite"]),
    (["workload=serve", "workload.duration_s=-inf"], ["workload.duration_s", "finite"]),
    (["workload=serve", "workload.seq_dist.spread=nan"], ["workload.seq_dist.spread", "finite"]),
    (["workload=serve", "workload.max_failed_fraction=nan"], ["max_failed_fraction"]),
    (["backend=sim", "backend.sim.noise=nan"], ["backend.sim.noise", "finite"]),
    (["backend=sim", "backend.sim.efficiency=inf"], ["backend.sim.efficiency", "finite"]),
    (["bench.min_duration_s=inf"], ["bench.min_duration_s", "finite"]),
    (["bench.unstable_cv=nan"], ["bench.unstable_cv", "finite"]),
    (["accuracy.min=nan"], ["accuracy.min", "finite"]),
    (["-m", "batch=1", "hydra.launcher.job_timeout_s=nan"], ["hydra.launcher.job_timeout_s"]),
    (["-m", "batch=1", "hydra.launcher.stall_timeout_s=inf"], ["stall_timeout_s"]),
    # --- settings that would silently do nothing ---
    (["backend=sim", "backend.sim.fault_batch=2"], ["backend.sim.fault_batch", "fault"]),
    (["backend=sim", "backend.sim.memory_budget_bytes=1000"], ["memory_budget_bytes", "oom"]),
    (["backend=sim", "backend.sim.slow_factor=3"], ["backend.sim.slow_factor", "slow"]),
    # the simulator's bad cards (fleet rehearsals, docs/fleet.md)
    (["backend=sim", "backend.sim.slow_cards=[x]"], ["backend.sim.slow_cards", "NODE:CARD"]),
    (["backend=sim", "backend.sim.hot_cards=[1]"], ["backend.sim.hot_cards", "NODE:CARD"]),
    (["backend=sim", "backend.sim.leaky_cards=[0:-1]"], ["backend.sim.leaky_cards", "0:-1"]),
    (["backend=sim", "backend.sim.slow_cards=0:1"], ["backend.sim.slow_cards", "list"]),
    (
        ["-m", "hydra/sweeper=fleet", "hydra/launcher=basic", "backend=sim"],
        ["hydra/sweeper=fleet", "ray_cells launcher"],
    ),  # fmt: skip
    (
        ["backend=sim", "workload=serve", "backend.sim.hot_cards=[0:1]"],
        ["backend.sim.hot_cards", "workload=serve"],
    ),  # fmt: skip
    (["workload=serve", "backend=sim", "backend.sim.fault=crash"], ["crash", "serving"]),
    (
        ["workload=serve", "backend=sim", "backend.sim.fault=slow", "backend.sim.fault_batch=2"],
        ["fault_batch", "no batch"],
    ),  # fmt: skip
    (["model.num_layers_override=9"], ["model.num_layers_override=9", "4 layers"]),
    (["model.path={gpt2}", "model.num_layers_override=3", "seq=8"], ["2 layers"]),
    # --- a type error in a single run is the same one line as in a sweep ---
    (["batch=1.5"], ["batch=1.5", "Integer"]),
    (["model.trust_remote_code=maybe"], ["model.trust_remote_code", "Boolean"]),
    (["-m", "batch=1.5"], ["batch=1.5", "Integer"]),
    (["-m", "batch=1,1.5"], ["batch=1.5", "Integer"]),
    (["model.foo=1"], ["model.foo", "known here"]),
    (["batch=["], ["batch=[", "not allowed"]),
    (["workload=oops"], ["workload=oops", "serve"]),
    # --- serving ---
    (["workload=serve", "concurrency=two"], ["concurrency", "Integer"]),
    (["workload=serve", "concurrency=0"], ["concurrency=0", ">= 1"]),
    (["concurrency=4"], ["concurrency", "workload=serve"]),
    (["workload=serve", "server=url"], ["server.url", "http"]),
    (["workload=serve", "server.url=ftp://x"], ["server.url", "http"]),
    (["workload=serve", "workload.prefix_len=32"], ["workload.prefix_len", "prompt_len"]),
    (["workload=serve", "workload.seq_dist.dist=zipf"], ["workload.seq_dist.dist", "uniform"]),
    (["workload=serve", "workload.num_requests=0"], ["workload.num_requests", "duration_s"]),
    (["workload=serve", "server.request_timeout_s=0"], ["server.request_timeout_s"]),
    (["workload=serve", "server.api=grpc"], ["server.api", "openai"]),
    (["workload=serve", "workload.kind=replay"], ["workload.kind", "conversation"]),
    (["workload=conversation", "workload.turns=0"], ["workload.turns", ">= 1"]),
    (["workload=conversation", "concurrency=2"], ["concurrency=2", "workload.sessions"]),
    (["workload=conversation", "request_rate=2"], ["request_rate", "conversation"]),
    (["workload=conversation", "workload.think_time_s=-1"], ["workload.think_time_s"]),
    (["workload=serve", "workload.requests_per_group=0"], ["workload.requests_per_group"]),
    (["workload=trace"], ["workload.trace.path", "not set"]),
    (["workload=trace", "workload.trace.path={a_file}"], ["workload.trace.path", "line 1"]),
    (["workload=trace", "workload.trace.path=/nowhere.jsonl"], ["workload.trace.path", "no such"]),
    (
        ["workload=trace", "workload.trace.path={trace}", "workload.trace.speed=0"],
        ["workload.trace.speed"],
    ),  # fmt: skip
    (
        ["workload=trace", "workload.trace.path={trace}", "concurrency=2"],
        ["concurrency", "trace's clock"],
    ),  # fmt: skip
    (["workload=conversation", "backend=sim"], ["workload.kind=conversation", "simulated"]),
    # --- answers: quality and accuracy checks ---
    (["quality.prompts=0"], ["quality.prompts"]),
    (["quality.tokens=abc"], ["quality.tokens", "Integer"]),
    (["accuracy.min=2"], ["accuracy.min", "[0, 1]"]),
    (["accuracy.max_new_tokens=0"], ["accuracy.max_new_tokens"]),
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
    paths["trace"] = str(Path(__file__).parents[1] / "fixtures" / "traces" / "tiny.jsonl")
    return [o.format(**paths) for o in overrides]


# `python -m aggregate` options: (arguments after SWEEP_DIR, words the message must contain)
AGGREGATE_CASES = [
    (["--threshold", "nan"], ["--threshold", "finite"]),
    (["--threshold", "inf"], ["--threshold", "finite"]),
    (["--threshold", "lots"], ["--threshold", "not a number"]),
    (["--slo-ttft-ms", "nan"], ["--slo-ttft-ms", "finite"]),
    (["--slo-tpot-ms=-inf"], ["--slo-tpot-ms", "finite"]),
    (["--slo-e2e-ms", "inf"], ["--slo-e2e-ms", "finite"]),
    (["--slo-ttft-ms", "-5"], ["--slo-ttft-ms", "> 0"]),
    (["--baseline", "{nowhere}"], ["baseline", "does not exist"]),
    (["history", "--threshold", "nan"], ["--threshold", "finite"]),
]


def test_at_least_sixty_kinds_of_bad_input():
    assert len(CASES) + len(AGGREGATE_CASES) >= 60


def _error_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "error:" in line]


@pytest.mark.parametrize("overrides,words", IN_PROCESS, ids=[" ".join(c[0]) for c in IN_PROCESS])
def test_bad_input_is_refused(launch_here, tmp_path, overrides, words):
    proc = launch_here(*_fill(overrides, tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    for word in words:
        assert word in out, f"{word!r} not in:\n{out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert len(_error_lines(out)) == 1, out[-3000:]
    # nothing measured, nothing written: no directory but those the case made first
    assert {p.name for p in tmp_path.iterdir()} <= {"models", "a_file"}, out


@pytest.mark.parametrize(
    "args,words", AGGREGATE_CASES, ids=[" ".join(c[0]) for c in AGGREGATE_CASES]
)
def test_bad_aggregate_option_is_refused(tmp_path, monkeypatch, capsys, args, words):
    from aggregate.__main__ import main

    from .test_aggregate import grid, write_sweep

    sweep = write_sweep(tmp_path / "sweep", grid())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    args = [a.format(nowhere=tmp_path / "nowhere") for a in args]
    argv = args if args[0] == "history" else [str(sweep), *args]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2, text
    for word in words:
        assert word in text, f"{word!r} not in:\n{text}"
    assert len(_error_lines(text)) == 1, text
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_nan_threshold_cannot_open_the_gate(tmp_path, capsys):
    """A 92% regression: refused (exit 3) at the default threshold; a NaN threshold is a
    usage error (exit 2), never a pass (0)."""
    from aggregate.__main__ import main

    from .test_aggregate import grid, write_sweep

    old = write_sweep(tmp_path / "old", grid())
    slow = grid()
    slow[0]["output_tokens_per_s"] *= 0.08
    new = write_sweep(tmp_path / "new", slow)
    base = [str(new), "--baseline", str(old), "--quiet", "--no-plots"]
    assert main(base) == 3
    (new / "compare.md").unlink()
    for bad in ("nan", "NaN", "inf", "-inf"):
        with pytest.raises(SystemExit) as exc:
            main([*base, f"--threshold={bad}"])
        assert exc.value.code == 2
        assert "--threshold" in (err := capsys.readouterr().err) and "finite" in err
    assert not (new / "compare.md").exists()


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf"])
def test_a_non_finite_figure_in_a_checked_table_is_refused(tmp_path, capsys, cell):
    """`python -m aggregate.check`: the article table's figures follow the same finite rule."""
    from aggregate.check import run

    table = tmp_path / "t.csv"
    table.write_text(f"batch,seq,latency_s\n1,8,{cell}\n")
    code = run([str(table), "--model", "llama3_8b", "--device", "ascend_910b"])
    err = capsys.readouterr().err
    assert code == 2 and len(_error_lines(err)) == 1, err
    assert "latency_s" in err and "finite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
