"""Fleet mode in-process: the outlier rule, the fleet tables and heatmap, the fleet baseline,
the simulator's bad cards, fleet copies of a cell and the launcher's fan-out."""

from __future__ import annotations

import pytest

from aggregate.fleet.baseline import slower_cards, slower_lines
from aggregate.fleet.cards import LEAKED, SLOW, THROTTLED, cards, robust_z
from aggregate.render.fleet import fleet_heatmap, fleet_section
from hydra_plugins.ray_cells_launcher._app import App, Job
from hydra_plugins.ray_cells_launcher._fleet import Spread, fan_out, node_env, placement
from jobs.identity import PlannedCell, identity
from tests.unit.test_sim import sim_cell
from workers.backends.sim_cards import LEAK_BYTES, card_faults, this_card


def rec(node: int, card: int, tok_s: float, cell: str = "c1", **kw) -> dict:
    return {
        "fleet_of": cell, "cell_id": f"{cell}-{node}-{card}", "node_index": node,
        "visible_devices": str(card), "status": "ok", "output_tokens_per_s": tok_s,
        "flags": ["simulated"], "simulated": True, "model": "m", "backend": "sim",
        "device": "npu", "dtype": "float16", "batch": 1, "seq": 32, "prompt_len": 32,
        "e2e_s_p50": 32 / tok_s, "e2e_s_mean": 32 / tok_s, "e2e_cv": 0.0, **kw,
    }  # fmt: skip


def fleet(slow: float = 0.5, noise: float = 0.0) -> list[dict]:
    out = []
    for node in range(2):
        for card in range(8):
            x = 100.0 * (1 + noise * ((card * 7 + node * 3) % 5 - 2) / 2)
            out.append(rec(node, card, x * (slow if (node, card) == (1, 3) else 1.0)))
    return out


def test_robust_z_rule():
    z = robust_z([100, 101, 99, 100, 102, 98, 50])
    assert z[-1] < -3.5 and all(abs(v) < 3.5 for v in z[:-1])
    # identical cards: MAD = 0, the floor (0.5 % of the median) keeps tiny deviations calm
    z = robust_z([100.0] * 7 + [99.9])
    assert abs(z[-1]) < 3.5
    assert robust_z([1.0, 2.0]) == [None, None]  # fewer than 3 cards: no verdict


@pytest.mark.parametrize("noise", [0.0, 0.04])
def test_only_the_slow_card_is_slow(noise):
    fl = cards(fleet(noise=noise))
    assert len(fl) == 16
    assert [(c.node, c.card) for c in fl if SLOW in c.flags] == [("1", "3")]


def test_leaked_and_throttled_cards_are_named():
    recs = fleet(slow=1.0)
    recs[2].update(flags=["simulated", "throttled"], throttle_reasons=["simulated: hot card"])
    recs[9].update(flags=["simulated", "dirty_start"], memory_leftover_bytes=LEAK_BYTES)
    fl = {(c.node, c.card): c for c in cards(recs)}
    assert fl[("0", "2")].flags == [THROTTLED] and fl[("1", "1")].flags == [LEAKED]
    assert fl[("1", "1")].leaked_bytes == LEAK_BYTES
    assert sum(bool(c.flags) for c in fl.values()) == 2


def test_fleet_section_and_heatmap():
    recs = fleet()
    text = "\n".join(fleet_section(recs))
    assert "## Fleet: 16 cards on 2 node(s)" in text
    assert "- `slow_card`: node 1 card 3 (n/a (simulated))" in text
    assert "| 1 | 3 | n/a (simulated) | 0.500 |" in text
    svg = fleet_heatmap(recs)
    assert svg.startswith("<svg") and svg.count('class="fleet-card"') == 16
    assert 'data-node="1" data-card="3" data-flags="slow_card"' in svg
    assert fleet_section([{"cell_id": "x"}]) == [] and fleet_heatmap([]) == ""


def test_fleet_baseline_names_the_card_that_got_slower():
    old, new = fleet(slow=1.0), fleet(slow=1.0)
    new[4] = rec(0, 4, 80.0)
    slower = slower_cards(new, old, 5.0)
    assert [(s.node, s.card) for s in slower] == [("0", "4")]
    assert "| 0 | 4 | n/a | m · sim · npu · float16 b1 s32 | 100.0 | 80.0 | -20.0% |" in "\n".join(
        slower_lines(slower)
    )
    assert slower_cards(old, old, 5.0) == []


def test_sim_bad_cards(monkeypatch):
    cell = sim_cell(device="npu", slow_cards=["1:3"], hot_cards=["0:5"], leaky_cards=["1:0"])
    monkeypatch.setenv("RAY_CELLS_NODE_INDEX", "1")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "3")
    assert this_card("npu") == "1:3" and card_faults(cell, "npu") == ({"slow"}, {}, [])
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "0")
    bad, fields, flags = card_faults(cell, "npu")
    assert bad == {"leaky"} and fields == {"memory_leftover_bytes": LEAK_BYTES}
    assert [f.value for f in flags] == ["dirty_start"]
    monkeypatch.setenv("RAY_CELLS_NODE_INDEX", "0")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "5")
    bad, fields, flags = card_faults(cell, "npu")
    assert (
        bad == {"hot"} and fields["throttle_reasons"] and [f.value for f in flags] == ["throttled"]
    )


def test_fleet_copies_have_their_own_ids_and_empty_card_lists_keep_ids():
    cell = sim_cell()
    assert "slow_cards" not in identity(cell)["backend"]["sim"]
    copies = [PlannedCell.of(cell, k, fleet=True) for k in range(3)]
    assert len({c.cell_id for c in copies}) == 3
    assert {c.fleet_of for c in copies} == {PlannedCell.of(cell).cell_id}
    assert copies[2].cell_dir.endswith("-f2")
    assert PlannedCell.of(cell, 2).cell_id != copies[2].cell_id  # not repeat 2


def test_fan_out_one_copy_per_card_with_one_spread_key():
    class NpuApp(App):
        def resources(self, job, nodes):
            return {"num_cpus": 0, "resources": {"NPU": 1}}

    nodes = [{"Resources": {"NPU": 8.0}}, {"Resources": {"NPU": 8.0}}]
    jobs = [Job(0, ["batch=1"]), Job(1, ["batch=2"])]
    fan_out(NpuApp(), jobs, nodes)
    assert len(jobs) == 32 and len({j.idx for j in jobs}) == 32
    assert {j.spread for j in jobs} == {"fleet:0", "fleet:1"}
    where = {"ray_node_id": "n1", "visible": {"ASCEND_RT_VISIBLE_DEVICES": "3"}}
    assert placement(where) == "n1|ASCEND_RT_VISIBLE_DEVICES=3" and placement(None) == ""


def test_spread_never_gives_a_place_two_copies_of_one_cell():
    spread = Spread()
    a0, a1, b0 = Job(0, [], spread="fleet:0"), Job(1, [], spread="fleet:0"), Job(2, [])
    queue = [a0, a1, b0]
    assert spread.fits(queue, "p1") == queue
    spread.take(a0, "p1")
    assert spread.fits(queue, "p1") == [b0]  # a plain job may still run there
    assert not spread.blocked([a1], {"p1", "p2"})
    assert spread.blocked([a1], {"p1"})  # only p1 is left and it ran fleet:0
    spread.release(a0, "p1")
    assert spread.fits([a1], "p1") == [a1]
    assert node_env(3) == {"RAY_CELLS_NODE_INDEX": "3"} and node_env(None) == {}
