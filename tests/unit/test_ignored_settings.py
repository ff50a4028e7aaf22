"""A setting either acts, or is refused with the reason, or (where it belongs to another kind
of server or backend, or to a sweep) is named in a one-line warning (sweep/ignored.py)."""

from __future__ import annotations

from jobs.config import from_values
from sweep.ignored import ignored_settings


def test_settings_of_another_kind_are_named():
    assert ignored_settings(from_values({})) == []
    (line,) = ignored_settings(from_values({"backend": {"sglang": {"tp_size": 2}}}))
    assert "backend.sglang.tp_size" in line and "backend=hf" in line
    serve = {"workload": {"name": "serve"}, "server": {"sglang": {"tp_size": 2}}}
    (line,) = ignored_settings(from_values(serve))
    assert "server.sglang.tp_size" in line and "server=transformers" in line
    used = {**serve, "server": {"kind": "sglang", "sglang": {"tp_size": 2}}}
    assert ignored_settings(from_values(used)) == []
    # the simulator's options are what its serving mode measures
    sim = {"workload": {"name": "serve"}, "backend": {"name": "sim", "sim": {"noise": 0.1}}}
    assert ignored_settings(from_values(sim)) == []


def test_a_single_run_names_the_cluster_it_does_not_use(launch_here):
    proc = launch_here("backend=sim", "bench=quick", "seq=8", "cluster=existing")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "a single run measures in this process" in warnings[0]
    assert "hydra.launcher.ray.address=auto" in warnings[0]
