"""bench.repeats (each cell measured N times, a record each) and the batch_until_oom sweeper
(the batch doubled until a cell is oom), end to end on the simulator with real Ray."""

from __future__ import annotations

import pytest

from tests.conftest import read_jsonl
from tests.integration.test_sweep_ray import records, sim_args

pytestmark = pytest.mark.slow


@pytest.fixture
def launch(launch_joined_npu):
    """This module's launches join the test process's shared NPU Ray (conftest.py)."""
    return launch_joined_npu


def test_repeats_are_cells_of_their_own_and_resume(launch, tmp_path):
    args = [*sim_args("1,2", scale=0.0), "bench.repeats=3", "backend.sim.noise=0.05"]
    proc = launch(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    recs = list(records(tmp_path / "multirun" / "sweep").values())
    assert len(recs) == 6
    for batch in (1, 2):
        mine = [r for r in recs if r["batch"] == batch]
        assert sorted(r["repeat"] for r in mine) == [0, 1, 2]
        assert len({r["repeat_of"] for r in mine}) == 1 and len({r["cell_id"] for r in mine}) == 3
        assert all(r["cell_dir"].endswith(f"-r{r['repeat']}") for r in mine)
        # each repeat is its own draw of the simulator's noise: the interval has a width
        assert len({r["e2e_s_p50"] for r in mine}) == 3
    again = launch(*args)
    assert "6 already done, 0 to run" in again.stdout + again.stderr


def test_batch_until_oom_finds_the_frontier_and_resumes(launch, tmp_path):
    # Llama-3-8B fp16 (16 GB of weights) with a 20 GB budget: 256 sequences of 96 tokens
    # fit in the KV cache left, 512 do not.
    args = [
        *sim_args("256", seq="64", scale=0.0, npus=2), "hydra/sweeper=batch_until_oom",
        "backend.sim.fault=oom", "backend.sim.memory_budget_bytes=20000000000",
    ]  # fmt: skip
    proc = launch(*args, timeout=400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # the oom cell is not ok
    by_batch = {r["batch"]: r["status"] for r in records(tmp_path / "multirun" / "sweep").values()}
    assert by_batch == {256: "ok", 512: "oom"}
    rows = read_jsonl(tmp_path / "multirun" / "sweep" / "results.jsonl")
    assert sorted(r["batch"] for r in rows) == [256, 512]  # both rounds in one results file
    again = launch(*args, timeout=400)
    assert "1 already done, 0 to run" in again.stdout + again.stderr
    assert again.returncode == 1
