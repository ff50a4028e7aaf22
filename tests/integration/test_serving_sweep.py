"""Serving sweeps for real: `python launch.py -m workload=serve ...` on Ray.

The paced stand-in (`tests.standins.paced`, started as `server=command`) stands in for an
engine on a card (SGLang or vLLM on an NPU, which cannot run here): a real server process,
started by the worker like the engines, that prints the device ids it was given. The NPUs
are declared Ray resources; Ray sets ASCEND_RT_VISIBLE_DEVICES for each worker. One test
starts a real `transformers serve` with the tiny model. No assertion is on speed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import read_jsonl, sweep_dir
from tests.keyset import SWEEPS, assert_same_shape
from tests.standins import PACED_SCRIPT

pytestmark = pytest.mark.slow

SMALL = ["workload=serve", "seq=8", "prompt_len=8", "workload.num_requests=4",
         "workload.warmup_requests=1", "hydra.launcher.ray.num_cpus=2"]  # fmt: skip


def paced(*extra: str) -> list[str]:
    cmd = ["{python}", PACED_SCRIPT, "--port", "{port}", "--ttft-ms", "5",
           "--itl-ms", "2", *extra]  # fmt: skip
    return ["server.kind=command", "server.api=vllm", f"server.command={json.dumps(cmd)}"]


def records(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/record.json"))]


def seen_ids(cell_dir: Path) -> str | None:
    """The ASCEND_RT_VISIBLE_DEVICES the server printed at start (first line of its log)."""
    m = re.search(r"visible devices (\{.*\})", (cell_dir / "server.log").read_text())
    return json.loads(m.group(1))["ASCEND_RT_VISIBLE_DEVICES"] if m else None


def test_one_server_per_card_in_parallel_each_seeing_its_own_device(launch_joined_npu, tmp_path):
    launch = launch_joined_npu  # the shared cluster of 4 declared NPUs (conftest.py)
    peers = tmp_path / "peers"
    peers.mkdir()
    # Each server stays unhealthy until 2 have registered: the cells can only pass if two
    # servers run at the same time.
    settings = '["--tag","a"],["--tag","b"]'
    args = ["-m", *SMALL, "concurrency=1,2", "device=npu", "+hydra.launcher.ray.resources.NPU=4",
            *paced("--await-peers", "2", "--peer-dir", str(peers)),
            f"server.extra_args={settings}", "server.startup_timeout_s=240"]  # fmt: skip
    proc = launch(*args, timeout=900, plots=True)  # the report's serving plot
    sweep = sweep_dir(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recs = records(sweep)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    assert len({r["server_settings"] for r in recs}) == 2
    for r in recs:
        ids = seen_ids(sweep / r["cell_dir"])
        assert ids is not None and ids == r["visible_devices"], (ids, r["visible_devices"])
        assert r["server_visible_devices"] == f"ASCEND_RT_VISIBLE_DEVICES={ids}"
        assert r["completed_requests"] == 4 and r["generated_tokens"] == 32
    registered = [json.loads(p.read_text()) for p in peers.glob("*.peer")]
    assert len(registered) >= 2
    ids = [p["ASCEND_RT_VISIBLE_DEVICES"] for p in registered]
    assert len(set(ids)) == len(ids) and set(ids) <= {"0", "1", "2", "3"}


def test_server_failures_are_recorded_and_the_sweep_goes_on(launch_joined_npu, tmp_path):
    # The shared cluster of 4 declared NPUs (conftest.py): one card per cell, side by side.
    # A server that never becomes healthy ("server hung", its log's end in the record) is
    # tests/integration/test_server_diagnosis.py's case: here it would only wait out its
    # start limit (20 s, kept for the other servers on a busy host).
    launch = launch_joined_npu
    faults = ['["--fail-start"]', '["--die-after","2"]', '["--error-every","2"]', "[]"]
    args = ["-m", *SMALL, "concurrency=2", "device=npu", *paced(),
            f"server.extra_args={','.join(faults)}", "server.startup_timeout_s=20",
            "hydra.launcher.max_retries=0"]  # fmt: skip
    proc = launch(*args, timeout=900, plots=True)  # the report's serving plot
    sweep = sweep_dir(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    by = {json.dumps(r["config"]["server"]["extra_args"]): r for r in records(sweep)}
    assert len(by) == 4
    start = by['["--fail-start"]']
    assert (
        start["status"] == "failed" and "could not start: exit code 3" in start["error"]["message"]
    )
    assert "cannot start (--fail-start)" in start["error"]["message"]  # the log's end
    died = by['["--die-after", "2"]']
    assert died["status"] == "failed" and "died mid-cell" in died["error"]["message"]
    assert "exit code 17" in died["error"]["message"]
    errors = by['["--error-every", "2"]']
    assert errors["status"] == "failed" and "too_many_errors" in errors["flags"]
    assert errors["request_errors"]["http_500"] >= 2
    assert by["[]"]["status"] == "ok"
    for r in (start, died):
        assert (sweep / r["cell_dir"] / "server.log").read_text().startswith("paced server")
    assert len(read_jsonl(sweep / "results.jsonl")) == 4


def _servers_of(cache: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "transformers.cli.transformers" in cmd and str(cache) in cmd:
            out.append(p)
    return out


def test_transformers_serve_sweep_resumes_and_leaves_no_server(launch_joined, tmp_path, tiny_cache):
    launch = launch_joined  # joins the shared Ray (conftest.py)
    for module in ("fastapi", "uvicorn", "openai", "accelerate"):
        pytest.importorskip(module, reason="pip install -e '.[serve]' for transformers serve")
    # The 2-cell serving sweep of tests/fixtures/layout/serve2.json (test_outputs_unchanged.py):
    # its first launch is also held to that fixture's files and keys.
    args = ["-m", *SWEEPS["serve2"], "hydra.launcher.ray.num_cpus=2"]
    proc = launch(*args, timeout=900, plots=True)  # the report's serving plot
    sweep = sweep_dir(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_same_shape(sweep, "serve2")
    recs = records(sweep)
    assert [r["status"] for r in recs] == ["ok", "ok"]
    for r in recs:
        assert r["backend"] == "serve-transformers" and r["completed_requests"] == 4
        assert r["usage_completion_tokens"] == 32 and r["ttft_s_p99"] is not None
        assert r["server_info"]["argv"][3] == "serve"
    assert sorted(r["server_reused"] for r in recs) == [False, True]  # one server, two loads
    report = (sweep / "report.md").read_text()
    assert "## Serving" in report and "serve-pareto.png" in report
    assert (sweep / "plots" / "serve-pareto.png").is_file()
    assert _servers_of(tiny_cache) == []  # stopped with the sweep's workers
    again = launch(*args, timeout=600, plots=True)
    assert again.returncode == 0
    assert "2 already done, 0 to run" in again.stdout + again.stderr
    assert [r["started_at"] for r in records(sweep)] == [r["started_at"] for r in recs]


def test_an_external_server_url_is_used_as_it_is(launch_joined, tmp_path):
    launch = launch_joined  # joins the shared Ray (conftest.py)
    from workers.serving.process import ServerProcess, free_port

    port = free_port()
    argv = [sys.executable, PACED_SCRIPT, "--port", str(port)]
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/health", "paced")
    server.start()
    try:
        server.wait_healthy(120)
        proc = launch("workload=serve", f"server.url=http://127.0.0.1:{port}", "server.api=vllm",
                      "seq=8", "prompt_len=8", "workload.num_requests=4", "concurrency=2")  # fmt: skip
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (rec,) = [json.loads(p.read_text()) for p in tmp_path.rglob("record.json")]
    assert rec["status"] == "ok" and rec["backend"] == "serve-url"
    assert rec["server_url"] == f"http://127.0.0.1:{port}" and rec["visible_devices"] is None
    assert rec["server_info"]["pinned"] is False and rec["server_info"]["pid"] is None
    assert rec["bound_source"].startswith("n/a: external server")
    assert rec["completed_requests"] == 4 and rec["generated_tokens"] == 32
    assert rec["output_tokens_per_s_per_card"] is None  # cards unknown
