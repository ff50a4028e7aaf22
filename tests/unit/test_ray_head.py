"""The shared test clusters' ports (tests/ray_head.py): chosen outside the kernel's ephemeral
range (where any connection's local port can take them before Ray binds them), one share of
the window per pytest-xdist worker, and the workers' range never holding a component's port
(Ray refuses to start such a head)."""

from __future__ import annotations

import random

import pytest

from tests import ray_head


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(ray_head, "_HANDED", set())


def _ephemeral(tmp_path, text: str):
    path = tmp_path / "ip_local_port_range"
    path.write_text(text)
    return path


def test_the_window_lies_below_the_ephemeral_range_one_share_per_xdist_worker(tmp_path):
    eph = _ephemeral(tmp_path, "32768\t60999\n")
    alone = ray_head.port_window({}, eph)
    assert (alone.start, alone.stop) == (20000, 32768)
    env = {"PYTEST_XDIST_WORKER_COUNT": "2"}
    gw0 = ray_head.port_window({**env, "PYTEST_XDIST_WORKER": "gw0"}, eph)
    gw1 = ray_head.port_window({**env, "PYTEST_XDIST_WORKER": "gw1"}, eph)
    assert gw0.start == 20000 and gw0.stop == gw1.start and gw1.stop <= 32768
    assert len(gw0) == len(gw1) > 6000


def test_an_ephemeral_range_with_no_room_below_it_falls_back_above(tmp_path):
    low = ray_head.port_window({}, _ephemeral(tmp_path, "20500 60999"))
    assert (low.start, low.stop) == (20000, 65536)
    unreadable = ray_head.port_window({}, tmp_path / "absent")
    assert (unreadable.start, unreadable.stop) == (20000, 32768)


def test_a_block_holds_every_flag_then_the_workers_range(fresh):
    window = range(20000, 21000)
    ports, worker_lo = ray_head.head_ports(window, random.Random(1), lambda p: True)
    assert list(ports) == list(ray_head.PORT_FLAGS)
    assert len(set(ports.values())) == len(ray_head.PORT_FLAGS)
    workers = range(worker_lo, worker_lo + ray_head.WORKER_PORTS + 1)
    assert not set(ports.values()) & set(workers)  # Ray's own refusal
    assert all(p in window for p in [*ports.values(), *workers])


def test_taken_ports_and_ports_handed_before_are_never_chosen(fresh):
    window = range(20000, 20700)  # room for three blocks at most
    taken = set(range(20300, 20310))
    first, lo1 = ray_head.head_ports(window, random.Random(2), lambda p: p not in taken)
    second, lo2 = ray_head.head_ports(window, random.Random(3), lambda p: p not in taken)
    blocks = [range(min(p.values()), lo + ray_head.WORKER_PORTS + 1)
              for p, lo in ((first, lo1), (second, lo2))]  # fmt: skip
    assert not set(blocks[0]) & set(blocks[1])
    assert not taken & (set(blocks[0]) | set(blocks[1]))
    with pytest.raises(RuntimeError, match="no 210 free ports in a row in 20000-20699"):
        ray_head.head_ports(window, random.Random(4), lambda p: p not in taken)
