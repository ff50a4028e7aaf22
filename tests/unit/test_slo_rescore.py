"""An SLO only counts what was measured: a finished serving cell resumed under another SLO is
re-scored from its kept requests (sweep/resume.py, workers/serving/rescore.py), not measured
again, and its goodput is what a fresh measurement under that SLO gives. Static ids never
depend on an SLO; a serving cell's id does not either (jobs/identity.py)."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.config import from_values
from jobs.identity import cell_id

SERVE = ["workload=serve", "backend=sim", "workload.num_requests=8", "seq=8", "prompt_len=16",
         "hydra/launcher=basic"]  # fmt: skip


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/record.json")}


def test_an_slo_is_not_part_of_a_cells_identity():
    serve = {"workload": {"name": "serve"}, "backend": {"name": "sim"}}
    a = cell_id(from_values({**serve, "slo": {"ttft_ms": 5.0}}))
    assert a == cell_id(from_values({**serve, "slo": {"ttft_ms": 50.0, "tpot_ms": 3.0}}))
    assert cell_id(from_values({"slo": {"ttft_ms": 5.0}})) == cell_id(from_values({}))


def test_changing_only_the_slo_rescores_without_measuring(launch_here, tmp_path):
    proc = launch_here("-m", *SERVE, "concurrency=1,2", "hydra.sweep.dir=sw", "slo.ttft_ms=0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = _records(tmp_path / "sw")
    assert len(first) == 2 and all(r["goodput_fraction"] == 1.0 for r in first.values())
    # the same sweep, its values reordered, under a tighter SLO (the median TTFT of one
    # cell's requests): nothing measured again
    ttfts = sorted(next(iter(first.values()))["raw"]["ttft_s"])
    tight = f"slo.ttft_ms={ttfts[len(ttfts) // 2] * 1e3!r}"
    proc = launch_here("-m", *SERVE, "concurrency=2,1", "hydra.sweep.dir=sw", tight)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("re-scored") == 2 and "not measured again" in out, out
    again = _records(tmp_path / "sw")
    assert again.keys() == first.keys()
    for name, rec in again.items():
        assert rec["finished_at"] == first[name]["finished_at"]  # not measured again
        assert rec["raw"] == first[name]["raw"]
        assert rec["slo_ttft_ms"] == rec["config"]["slo"]["ttft_ms"] == float(tight[12:])
    # ... and the goodput follows the new SLO exactly as a measurement under it counts it
    proc = launch_here("-m", *SERVE, "concurrency=1,2", "hydra.sweep.dir=fresh", tight)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fresh = _records(tmp_path / "fresh")
    for name, rec in again.items():
        for key in ("goodput_fraction", "goodput_requests_per_s", "slo_ttft_ms", "slo_tpot_ms"):
            assert rec[key] == fresh[name][key], (name, key)
    assert any(r["goodput_fraction"] < 1.0 for r in again.values())
    # a third run under the same SLO has nothing to re-score
    proc = launch_here("-m", *SERVE, "concurrency=1,2", "hydra.sweep.dir=sw", tight)
    assert proc.returncode == 0 and "re-scored" not in proc.stdout + proc.stderr
