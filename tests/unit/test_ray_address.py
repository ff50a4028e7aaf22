"""Which Ray a launch uses: hydra.launcher.ray.address (cluster=existing) first, then simulated
nodes, then RAY_ADDRESS (Ray's own way to name a cluster; `ray job submit` sets it for its
entrypoint), else a private local Ray; the records say which (ray_cluster)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from hydra_plugins.ray_cells_launcher import _cluster
from jobs.record import FLAT_KEYS


def cfg(address=None, sim_nodes=0):
    return SimpleNamespace(address=address, sim_nodes=sim_nodes)


@pytest.mark.parametrize(
    "address, sim_nodes, env, want",
    [
        (None, 0, None, (None, "default")),
        (None, 0, "10.0.0.5:6379", ("10.0.0.5:6379", "RAY_ADDRESS")),
        ("auto", 0, "10.0.0.5:6379", ("auto", "hydra.launcher.ray.address")),
        ("h:1", 0, None, ("h:1", "hydra.launcher.ray.address")),
        (None, 2, "10.0.0.5:6379", (None, "hydra.launcher.ray.sim_nodes")),
        (None, 0, "http://head:8265", (None, "default")),  # a dashboard, not a cluster
        (None, 0, "  ", (None, "default")),
    ],
)
def test_join_address_precedence(monkeypatch, address, sim_nodes, env, want):
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert _cluster.join_address(cfg(address, sim_nodes)) == want


def test_unreachable_ray_address_fails_fast(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setattr(_cluster.ray, "is_initialized", lambda: False)
    ray_cfg = SimpleNamespace(
        address=None, sim_nodes=0, num_cpus=None, num_gpus=None, resources=None,
        include_dashboard=False,
    )  # fmt: skip
    with pytest.raises(_cluster.Unreachable, match="RAY_ADDRESS=127.0.0.1:1"):
        _cluster.start(ray_cfg, None, {})


def test_records_name_the_cluster():
    assert "ray_cluster" in FLAT_KEYS


def test_inside_a_ray_job_its_working_dir_ships_the_code(monkeypatch):
    ray_cfg = SimpleNamespace(num_cpus=None, num_gpus=None, resources=None)
    monkeypatch.delenv(_cluster.JOB_CONFIG_ENV, raising=False)
    common, _ = _cluster._init_args(ray_cfg, "/src", {"A": "1", "B": "2"})
    assert common["runtime_env"]["working_dir"] == "/src"
    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip", "env_vars": {"A": "0"}}}
    monkeypatch.setenv(_cluster.JOB_CONFIG_ENV, json.dumps(job))
    common, _ = _cluster._init_args(ray_cfg, "/src", {"A": "1", "B": "2"})
    assert common["runtime_env"] == {"env_vars": {"B": "2"}}  # Ray merges it with the job's
