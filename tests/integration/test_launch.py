"""`python launch.py` end to end in a subprocess: one cell, a sweep on a local Ray, resume."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_jsonl
from tests.keyset import SWEEPS, assert_same_shape


@pytest.fixture
def launch(launch_joined):
    """This module's launches join the test process's shared Ray (conftest.py)."""
    return launch_joined


QUICK = ["bench=quick", "hydra.launcher.ray.num_cpus=2", "prompt_len=8"]


def test_single_cell_writes_record_and_prints_summary(launch, tmp_path):
    proc = launch("batch=2", "seq=8", *QUICK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = list(tmp_path.rglob("record.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "ok" and rec["schema_version"] == 1
    assert rec["generated_tokens"] == rec["expected_tokens"] == 16
    assert records[0].parent.name.endswith(rec["cell_dir"])
    assert rec["cell_dir"] in proc.stdout and "record:" in proc.stdout
    assert rec["env"]["torch"] and rec["env"]["transformers"]


def test_sweep_resume_and_rerun_of_one_missing_cell(launch, tmp_path):
    """The 2-cell HF sweep of tests/fixtures/layout/hf2.json (test_outputs_unchanged.py): its
    first launch is also held to that fixture's files and keys."""
    args = ["-m", *SWEEPS["hf2"], "hydra.launcher.ray.num_cpus=2"]
    first = launch(*args, plots=True)  # the fixture's files include the plots
    assert first.returncode == 0, first.stderr[-3000:]
    # The sweep's directory is named from its own overrides (hydra.* ones left out).
    (sweep,) = [p for p in (tmp_path / "multirun").iterdir() if p.is_dir()]
    assert sweep.name == "batch-1+2_bench-quick_seq-8"
    assert_same_shape(sweep, "hf2")
    rows = read_jsonl(sweep / "results.jsonl")
    assert sorted((r["batch"], r["seq"]) for r in rows) == [(1, 8), (2, 8)]
    assert all(r["status"] == "ok" for r in rows)
    # one model load for the whole sweep on the one cpu worker
    assert sum(1 for r in rows if not r["model_reused"]) == 1
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("record.json")}

    again = launch("-m", "seq=8", "bench=quick", "batch=2,1")  # the same sweep, written differently
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 already done, 0 to run" in again.stderr + again.stdout
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("record.json")} == stamps

    victim = next(p for p in stamps if "-b2-s8-" in str(p))
    victim.unlink()
    third = launch(*args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "1 already done, 1 to run" in third.stderr + third.stdout
    for p, stamp in stamps.items():
        if p != victim:
            assert p.stat().st_mtime_ns == stamp, f"{p} was rewritten"
    assert json.loads(victim.read_text())["status"] == "ok"
    assert len(read_jsonl(sweep / "results.jsonl")) == 2


def test_reordered_values_resume_the_same_sweep(launch, tmp_path):
    """The same sweep however its values are ordered; its name passes back as
    hydra.sweep.dir; a sweep named the earlier way (`=` and `,`) is resumed where it is."""
    sim = ["backend=sim", "hydra.launcher.ray.num_cpus=2", "bench=quick", "prompt_len=8"]
    first = launch("-m", "batch=1,2", "seq=4,8", *sim)
    assert first.returncode == 0, first.stderr[-3000:]
    (sweep,) = [p for p in (tmp_path / "multirun").iterdir() if p.is_dir()]
    assert sweep.name == "backend-sim_batch-1+2_bench-quick_prompt_len-8_seq-4+8"
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("record.json")}
    assert len(stamps) == 4
    again = launch("-m", "seq=8,4", "batch=2,1", *sim)  # values and overrides reordered
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 already done, 0 to run" in again.stderr + again.stdout
    back = launch("-m", "seq=8,4", "batch=2,1", *sim, f"hydra.sweep.dir=multirun/{sweep.name}")
    assert back.returncode == 0, back.stderr[-3000:]
    assert "4 already done, 0 to run" in back.stderr + back.stdout
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("record.json")} == stamps
    old = sweep.with_name("backend=sim_batch=1,2_bench=quick_prompt_len=8_seq=4,8")
    sweep.rename(old)
    earlier = launch("-m", "batch=1,2", "seq=4,8", *sim)
    out = earlier.stderr + earlier.stdout
    assert earlier.returncode == 0, out[-3000:]
    assert "4 already done, 0 to run" in out and "named the earlier way" in out
    assert [p.name for p in (tmp_path / "multirun").iterdir() if p.is_dir()] == [old.name]
