"""The CUDA path measured on one H100 / H200, in one run of under 8 minutes.

    python3 bench/gpu_check.py              # on the GPU machine, from the repository root
    python bench/gpu_check.py --smoke       # CPU rehearsal: tiny model, a few cells (tests/)

Runs the real path, ``python launch.py -m ... hydra/launcher=basic`` (cells one after another
in one process; no Ray needed), then ``python -m aggregate`` on each sweep, in phases:

  bf16     Llama-3-8B shape, dummy weights, bfloat16, batch 1,2,4,8,16 x seq 64,128,256
  oom      an oversized cell (Llama-3-70B shape in float32: 282 GB) then a small 8B cell:
           the first must be recorded `oom` (by the worker's memory-floor check before
           loading, or by torch while loading: the record's message says which), the second
           must still run `ok` in the same process
  fp16     the 15-cell sweep again in float16
  compile  the speed switch (backend.hf.compile=true) on a subset, bf16 batch 1 and 16 at
           seq 128 (each shape compiles for a minute or so), against the same bf16 cells

Each cell is 1 warm-up + 1 measured iteration (``bench=quick bench.iterations=1``), and every
phase runs under a share of the time budget (``--budget``, default 420 s): a phase that would
not fit is skipped, one that runs out is stopped, and the report says so. Checks: no cell is
``above_bound``, every measured cell has a bound fraction, the oversized cell is ``oom`` and
the next cell ran, the ``nvidia-smi`` snapshot parses (in the records and run directly).

Hydra is not needed on the machine: when ``import hydra`` fails, the wheels in
``.device/wheels`` (gitignored; ``pip download hydra-core omegaconf --no-deps -d .device/wheels``
and ``pip wheel antlr4-python3-runtime==4.9.3 --no-deps -w .device/wheels`` here) are unpacked
into ``.device/site`` (pure-Python wheels: unpacking is installing) and put on PYTHONPATH.

The figures (tokens/s, TPOT, bound fraction per cell, compile gain, energy where records
carry ``energy_*`` keys) are printed as Markdown and written to $OUT/gpu_check.md when OUT is
set, with each sweep's results.jsonl, report.md and launch log under $OUT/gpu_check/.
Exit code 0 when every check passed, 1 when one failed, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gpu_report import markdown, read_records  # noqa: E402

from jobs.values import finite_float  # noqa: E402

WHEELS = ROOT / ".device" / "wheels"
SITE = ROOT / ".device" / "site"
QUICK = ["bench=quick", "bench.iterations=1", "bench.max_iterations=1"]
SWEEP = ["batch=1,2,4,8,16", "seq=64,128,256"]
LLAMA8 = ["model=llama3_8b", "model.load_format=dummy"]


@dataclass
class Phase:
    name: str
    overrides: list[str]
    budget_s: float  # the most this phase may take
    min_s: float  # skipped when less time than this is left
    result: dict = field(default_factory=dict)


# The oversized cell: the Llama-3-70B shape in float32 (282 GB) cannot be built on one
# 80 GB / 141 GB card; then a small 8B cell in the same process must still run.
OOM_REAL = ["model=llama3_70b,llama3_8b", "model.load_format=dummy", "model.dtype=float32"]
# On the CPU an allocation that big would meet the OS, not torch: the simulator's oom fault.
OOM_SMOKE = ["backend=sim", "backend.sim.fault=oom", "backend.sim.fault_batch=3",
             "backend.sim.memory_budget_bytes=1000", "batch=3,1", "seq=4"]  # fmt: skip


def phases(smoke: bool) -> list[Phase]:
    if smoke:  # the same phases on the CPU, tiny model
        tiny = ["model=tiny", "device=cpu", *QUICK]
        cells = ["batch=1,2", "seq=4,8"]
        # The check prompts in the cell's own shape (1 x 32 tokens, 8 new): the check reuses
        # the decode step compiled in prepare() instead of compiling a second shape. The
        # rehearsal traces with aot_eager: the same torch.compile path through generate,
        # without inductor's C++ code generation (on a cold cache ~20 s of this CPU's 28 s
        # phase; inductor on a GPU writes Triton kernels, so the CPU's would prove nothing).
        compiled = ["batch=1", "seq=8", "model.dtype=bfloat16", "backend.hf.compile=true",
                    "backend.hf.compile_backend=aot_eager", "quality.prompts=1",
                    "quality.prompt_len=32", "quality.tokens=8"]  # fmt: skip
        return [
            Phase("bf16", [*tiny, *cells, "model.dtype=bfloat16"], 400, 30),
            Phase("oom", [*tiny, *OOM_SMOKE], 200, 20),
            Phase("fp16", [*tiny, *cells, "model.dtype=float16"], 400, 30),
            Phase("compile", [*tiny, *compiled], 600, 30),
        ]
    cuda = ["device=cuda", *QUICK]
    compiled = ["batch=1,16", "seq=128", "model.dtype=bfloat16", "backend.hf.compile=true"]
    return [
        Phase("bf16", [*LLAMA8, *cuda, *SWEEP, "model.dtype=bfloat16"], 170, 60),
        Phase("oom", [*OOM_REAL, *cuda, "batch=1", "seq=16"], 60, 30),
        Phase("fp16", [*LLAMA8, *cuda, *SWEEP, "model.dtype=float16"], 170, 60),
        Phase("compile", [*LLAMA8, *cuda, *compiled], 200, 45),
    ]


def die(message: str) -> None:
    print(f"gpu_check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def ensure_hydra(env: dict[str, str]) -> str:
    """Hydra importable by the launches: already installed, or unpacked from .device/wheels."""
    probe = [sys.executable, "-c", "import hydra, omegaconf"]
    if subprocess.run(probe, env=env, capture_output=True).returncode == 0:
        return "installed"
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        die(
            "Hydra is not installed and .device/wheels holds no wheels: run `pip download "
            "hydra-core omegaconf --no-deps -d .device/wheels` and `pip wheel "
            "antlr4-python3-runtime==4.9.3 --no-deps -w .device/wheels` where pip can reach PyPI"
        )
    shutil.rmtree(SITE, ignore_errors=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(SITE)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if subprocess.run(probe, env=env, capture_output=True).returncode != 0:
        die(f"Hydra still does not import from {SITE}")
    return "from " + ", ".join(w.name for w in wheels)


def run_phase(phase: Phase, work: Path, env: dict[str, str], timeout_s: float) -> None:
    """One sweep through launch.py (basic launcher), then `python -m aggregate` on it."""
    sweep = work / phase.name
    log_path = work / f"{phase.name}.log"
    argv = [sys.executable, str(ROOT / "launch.py"), "-m", *phase.overrides,
            "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    phase.result.update(
        command="python launch.py -m " + " ".join(argv[3:]), seconds=time.monotonic() - t0,
        exit_code=rc, timed_out=rc is None, log=str(log_path), sweep=str(sweep),
    )  # fmt: skip
    if sweep.is_dir():
        subprocess.run(
            [sys.executable, "-m", "aggregate", str(sweep), "--no-plots", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
    phase.result["records"] = read_records(sweep)
    print(f"[gpu_check] {phase.name}: {len(phase.result['records'])} records, "
          f"{phase.result['seconds']:.0f} s, exit {rc}", file=sys.stderr)  # fmt: skip


def run_all(todo: list[Phase], work: Path, env: dict[str, str], budget_s: float) -> None:
    deadline = time.monotonic() + budget_s
    for phase in todo:
        left = deadline - time.monotonic()
        if left < phase.min_s:
            phase.result = {"skipped": f"{left:.0f} s left of the budget, needs {phase.min_s:.0f}"}
            print(f"[gpu_check] {phase.name}: skipped ({phase.result['skipped']})", file=sys.stderr)
            continue
        run_phase(phase, work, env, min(phase.budget_s, left))


def direct_snapshot(smoke: bool) -> dict | None:
    """nvidia-smi run here, parsed by workers.device.smi (None in smoke runs without the tool)."""
    from workers.device.smi import snapshot

    snap = snapshot("cuda")
    if smoke and snap and snap.get("error", "").endswith("not found on PATH"):
        return None
    return snap


def save(text: str, todo: list[Phase]) -> None:
    out = os.environ.get("OUT")
    if not out:
        return
    dest = Path(out) / "gpu_check"
    dest.mkdir(parents=True, exist_ok=True)
    (Path(out) / "gpu_check.md").write_text(text)
    for phase in todo:
        for name in ("results.jsonl", "report.md"):
            src = Path(phase.result.get("sweep", "/nonexistent")) / name
            if src.is_file():
                (dest / phase.name).mkdir(exist_ok=True)
                shutil.copy(src, dest / phase.name / name)
        if phase.result.get("log"):
            shutil.copy(phase.result["log"], dest / f"{phase.name}.log")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU rehearsal: tiny model, few cells")
    p.add_argument("--budget", type=finite_float, default=None, help="seconds for all phases")
    p.add_argument("--work", default=None, help="where sweeps go (default: a temp dir)")
    p.add_argument("--only", default=None, help="comma-separated phases to run")
    args = p.parse_args(argv)
    budget = args.budget or (2400.0 if args.smoke else 420.0)
    work = (
        Path(args.work)
        if args.work
        else Path(os.environ.get("TMPDIR", "/tmp")) / (f"gpu_check-{os.getpid()}")
    )
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    hydra_from = ensure_hydra(env)
    todo = phases(args.smoke)
    if args.only:
        todo = [ph for ph in todo if ph.name in args.only.split(",")]
    t0 = time.monotonic()
    run_all(todo, work, env, budget)
    text, ok = markdown(todo, direct_snapshot(args.smoke), args.smoke, hydra_from,
                        time.monotonic() - t0)  # fmt: skip
    sys.stdout.write(text)
    save(text, todo)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
