"""bench/gpu_check.py, everything it does that a CPU can show: the real run's cells compose and
validate; Hydra comes from wheels when it is missing; the report's checks judge records
right; and the whole script runs in its --smoke mode (tiny model, the same phases)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, launch_env


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check")
gpu_report = _load("gpu_report")


COMPOSE = """
import itertools, json, sys
from hydra import compose, initialize_config_dir
import launch
from sweep.plan import to_cell
from sweep.validate import validate
launch.register()
out = []
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    for overrides in json.loads(sys.argv[2]):
        axes = [[o.split("=")[0] + "=" + v for v in o.split("=", 1)[1].split(",")] for o in overrides]
        cells = [to_cell(compose("config", overrides=list(c))) for c in itertools.product(*axes)]
        for c in cells:
            validate(c, local=False)  # everything but "is there a GPU here"
        out.append([[c.model.name, c.model.load_format, c.model.dtype, c.device.name, c.batch,
                     c.seq, c.backend.hf.compile, c.bench.iterations] for c in cells])
print(json.dumps(out))
"""


def cells_of(*phases: list[str]) -> list[list[list]]:
    """The cells a multirun of each override list makes, in Hydra's order, composed by Hydra
    and validated; in a subprocess, so Hydra's global state stays out of the other tests."""
    argv = [sys.executable, "-c", COMPOSE, str(ROOT / "conf"), json.dumps(list(phases))]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_real_run_composes_and_validates():
    ph = {p.name: p for p in gpu_check.phases(smoke=False)}
    bf16, fp16, compiled, oom = cells_of(
        *(ph[n].overrides for n in ("bf16", "fp16", "compile", "oom"))
    )
    for cells, dtype in ((bf16, "bfloat16"), (fp16, "float16")):
        assert sorted((c[4], c[5]) for c in cells) == [
            (b, s) for b in (1, 2, 4, 8, 16) for s in (64, 128, 256)
        ]
        assert {tuple(c[:4]) for c in cells} == {("llama3_8b", "dummy", dtype, "cuda")}
        assert all(c[6] is False and c[7] == 1 for c in cells)
    assert [(c[4], c[5], c[6]) for c in compiled] == [(1, 128, True), (16, 128, True)]
    oversized, small = oom  # in this order: the big one first
    assert oversized[:3] == ["llama3_70b", "dummy", "float32"]
    assert small[:3] == ["llama3_8b", "dummy", "float32"]
    assert sum(p.budget_s for p in ph.values()) <= 600  # each phase is capped; total 420


def test_hydra_from_wheels(tmp_path, monkeypatch):
    """Where `import hydra` fails, the wheels are unpacked and put first on PYTHONPATH."""
    shadow = tmp_path / "shadow" / "hydra"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no hydra on this machine')\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "fake_hydra-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("hydra/__init__.py", "FROM_WHEEL = True\n")
        zf.writestr("omegaconf/__init__.py", "")
    monkeypatch.setattr(gpu_check, "WHEELS", wheels)
    monkeypatch.setattr(gpu_check, "SITE", tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
    assert gpu_check.ensure_hydra(env) == "from fake_hydra-1.0-py3-none-any.whl"
    probe = [sys.executable, "-c", "import hydra; assert hydra.FROM_WHEEL"]
    assert subprocess.run(probe, env=env).returncode == 0
    monkeypatch.setattr(gpu_check, "WHEELS", tmp_path / "empty")
    with pytest.raises(SystemExit) as exit_:
        gpu_check.ensure_hydra({**os.environ, "PYTHONPATH": str(tmp_path / "shadow")})
    assert exit_.value.code == 2


def rec(batch, seq, status="ok", **kw):
    base = {"batch": batch, "seq": seq, "status": status, "cell_dir": f"c-b{batch}-s{seq}",
            "device": "cuda", "output_tokens_per_s": 100.0 * batch, "tpot_s_mean": 0.02,
            "bound_fraction": 0.4, "flags": [], "smi": {"devices": [{"index": 0}]},
            "started_at": f"2026-01-01T00:00:{batch:02d}", "finished_at": f"2026-01-01T00:00:{batch:02d}.5"}  # fmt: skip
    return {**base, **kw}


def phase(name, records, **result):
    return gpu_check.Phase(name, [], 1, 1, {"records": records, "command": "c", "seconds": 1,
                                             "exit_code": 0, **result})  # fmt: skip


SNAP = {
    "tool": "nvidia-smi",
    "devices": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559}],
}


def test_report_passes_a_good_run():
    oom = [rec(1, 16, "oom", error={"message": "CUDA out of memory"}), rec(2, 16)]
    phases = [phase("bf16", [rec(1, 128), rec(16, 128)]), phase("oom", oom),
              phase("compile", [rec(1, 128, output_tokens_per_s=150.0)])]  # fmt: skip
    text, ok = gpu_report.markdown(phases, SNAP, False, "installed", 10)
    assert ok, text
    assert "| 1 | 128 | 100.0 | 150.0 | +50.0% |" in text  # compile gain
    assert "PASS oversized cell c-b1-s16 recorded oom" in text and "ran ok" in text


def test_report_fails_what_is_wrong():
    phases = [phase("bf16", [rec(1, 64, flags=["above_bound"]), rec(2, 64, bound_fraction=None)],
                    timed_out=True),
              phase("oom", [rec(1, 16, "ok")])]  # fmt: skip
    text, ok = gpu_report.markdown(phases, {"tool": "nvidia-smi", "error": "exit 9"}, False, "", 1)
    assert not ok
    for line in ("FAIL no cell above_bound", "FAIL every measured cell has a bound fraction",
                 "FAIL oversized cell not recorded oom", "FAIL nvidia-smi snapshot parses",
                 "FAIL every phase ran to the end"):  # fmt: skip
        assert line in text, line


def test_energy_fields_are_shown_when_records_have_them():
    with_energy = rec(1, 64, energy_j=12.5, energy_valid=True, energy_source="nvml",
                      energy_invalid_reasons=[], power_w_mean=310.0)  # fmt: skip
    lines = gpu_report.cell_table([with_energy, rec(2, 64)])
    assert lines[0].endswith("| energy_j | energy_valid | power_w_mean |")
    assert lines[2].endswith("| 12.5 | yes | 310 |") and lines[3].endswith("| — | — | — |")
    assert "energy" not in gpu_report.cell_table([rec(1, 64)])[0]


@pytest.mark.slow
def test_smoke_run_as_prepared(tmp_path, tiny_cache):
    """The script itself, end to end on the CPU: 4 launches of launch.py, aggregate, report.
    A stand-in nvidia-smi prints a real-format capture, so the snapshot check runs too."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(
        f'#!/bin/sh\nexec /bin/cat "{ROOT}/tests/fixtures/smi/nvidia-smi-h100-x4.csv"\n'
    )
    fake.chmod(0o755)
    env = {**launch_env(tiny_cache), "OUT": str(tmp_path / "out")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke", "--work", str(tmp_path / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    assert text == proc.stdout
    assert text.count("- PASS") == 5 and "FAIL" not in text
    assert "run here: 4 GPU(s) (NVIDIA H100 80GB HBM3 81559 MiB" in text
    assert "### compile gain" in text
    for name in ("bf16", "fp16", "oom", "compile"):
        assert (tmp_path / "out" / "gpu_check" / name / "results.jsonl").is_file(), name
    assert Path(tmp_path / "out" / "gpu_check" / "bf16.log").is_file()
