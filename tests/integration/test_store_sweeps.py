"""The results store end to end: sweeps at three commits of a test repository through
`python -m aggregate store` and `history` (the commits between listed, the planted regression
found, exit 3); and real simulated sweeps writing the store at their end, the second one's
report.html carrying the trend panel; two processes writing one store at once."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from aggregate.store.db import count
from jobs.files import write_record
from tests.conftest import ROOT
from tests.unit.store_records import cell_records, write_sweeps


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def aggregate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregate", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def test_three_commits_of_a_test_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    commits = []
    for msg in ("first", "second", "tweak a", "tweak b", "slow kernel"):
        (repo / "f.txt").write_text(msg)
        git(repo, "add", "f.txt")
        git(repo, "commit", "-q", "-m", msg)
        commits.append(git(repo, "rev-parse", "HEAD"))
    c1, c2, c3 = commits[0], commits[1], commits[4]
    runs = ((c1, [100.0, 101.0, 99.0]), (c2, [100.5, 99.5, 100.8]), (c3, [70.0, 70.5, 69.8]))
    for day, (commit, tps) in enumerate(runs, 1):
        for rec in cell_records(commit, tps, day=day):
            write_record(tmp_path / "multirun" / f"s{day}" / rec["cell_dir"], rec)
    dirs = [f"multirun/s{d}" for d in (1, 2, 3)]
    first = aggregate("store", *dirs, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("3 record(s), 3 new") == 3
    again = aggregate("store", *dirs, cwd=tmp_path)
    assert again.stdout.count("3 record(s), 0 new") == 3
    hist = aggregate("history", "--repo", str(repo), "--fail-on-regression", cwd=tmp_path)
    assert hist.returncode == 3, hist.stdout + hist.stderr
    lines = [line for line in hist.stdout.splitlines() if line.startswith("| ")]
    assert "+0.3% noise (95% CI)" in lines[2] and f"1: {c2[:7]} second" in lines[2]
    assert "-30.1% regression (95% CI)" in lines[3]
    assert "3: " in lines[3] and "slow kernel" in lines[3] and "tweak a" in lines[3]
    export = aggregate("store", "--export-parquet", "shared", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    with duckdb.connect() as con:
        pq = str(tmp_path / "shared" / "results.parquet")
        n = con.execute("SELECT count(DISTINCT git_commit) FROM read_parquet(?)", [pq])
        assert n.fetchone()[0] == 3


SIM = ["-m", "backend=sim", "model=llama3_8b", "model.load_format=dummy", "bench=quick",
       "device=npu", "+hydra.launcher.ray.resources.NPU=1", "hydra.launcher.ray.num_cpus=2",
       "batch=1", "seq=16", "prompt_len=16"]  # fmt: skip


@pytest.mark.slow
def test_sim_sweeps_write_the_store_and_the_trend_panel(launch_joined_npu, tmp_path: Path) -> None:
    launch = launch_joined_npu  # joins the shared NPU Ray (conftest.py)
    for name in ("a", "b"):
        done = launch(*SIM, f"hydra.sweep.dir=multirun/{name}")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "results store: 1 new record(s)" in done.stdout
    db = tmp_path / "multirun" / "results.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT sweep_dir) FROM records"
        ).fetchone() == (2, 2)
    assert "Trend (results store)" not in (tmp_path / "multirun/a/report.html").read_text()
    assert "Trend (results store)" in (tmp_path / "multirun/b/report.html").read_text()


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "r.duckdb")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write_sweeps, args=(db, str(tmp_path / w), 6)) for w in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert count(db) == 2 * 6 * 4
