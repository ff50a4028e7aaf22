"""The shared test clusters' ports (tests/ray_head.py): Ray refuses to start a head when one
of its components' ports falls in its workers' port range, so the range is chosen around the
ports already taken."""

from __future__ import annotations

from tests import ray_head


def test_the_worker_range_holds_none_of_the_heads_ports(monkeypatch):
    offered = iter([[30000], [30100], [10000], [40000]])
    monkeypatch.setattr(ray_head, "free_ports", lambda n: next(offered))
    # 30000..30200 and 30100..30300 hold 30150; 10000 is raised to 20000..20200, which
    # holds 20010; 40000..40200 holds none of them
    assert ray_head._worker_range_start({30150, 20010, 45000}) == 40000


def test_the_range_fits_below_the_last_port(monkeypatch):
    offered = iter([[65500], [50000]])
    monkeypatch.setattr(ray_head, "free_ports", lambda n: next(offered))
    assert ray_head._worker_range_start(set()) == 50000
