"""Fleet mode on real Ray: 16 declared NPUs on 2 simulated nodes, one slow, one hot and one
leaky card; every card runs each cell once, the bad cards are named with their node and
card, no other card is flagged, and report.html's heatmap shows it in headless Chromium.
It is also the suite's sweep on simulated nodes from the launcher's config
(`hydra.launcher.ray.sim_nodes`): its cells ran on two Ray nodes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from aggregate.fleet.cards import LEAKED, SLOW, THROTTLED, cards
from tests.chromium import Chromium, find_chromium

pytestmark = pytest.mark.slow

FLEET = [
    "-m", "hydra/sweeper=fleet", "batch=1,2", "seq=16", "backend=sim", "device=npu",
    "model=llama3_8b", "model.load_format=dummy", "bench=quick", "prompt_len=16",
    "backend.sim.noise=0", "backend.sim.time_scale=0.01", "backend.sim.slow_factor=3",
    "backend.sim.slow_cards=[1:3]", "backend.sim.hot_cards=[0:5]",
    "backend.sim.leaky_cards=[1:0]", "hydra.launcher.ray.sim_nodes=2",
    "hydra.launcher.ray.num_cpus=1", "+hydra.launcher.ray.resources.NPU=8",
    "hydra.launcher.app_options.plots=false", "hydra.launcher.app_options.store=false",
    "hydra.sweep.dir=multirun/fleet",
]  # fmt: skip

HEATMAP = """(() => {
  const g = [...document.querySelectorAll('svg.fleet-heatmap g.fleet-card')];
  const box = document.querySelector('svg.fleet-heatmap').getBoundingClientRect();
  return {n: g.length, w: box.width, h: box.height,
          flagged: g.filter(e => e.dataset.flags).map(
              e => [e.dataset.node, e.dataset.card, e.dataset.flags])};
})()"""


def test_fleet_finds_the_bad_cards_and_only_them(launch, tmp_path):
    proc = launch(*FLEET, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sweep = tmp_path / "multirun" / "fleet"
    recs = [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]
    per_cell = Counter(r["fleet_of"] for r in recs)
    assert len(per_cell) == 2 and set(per_cell.values()) == {16}, per_cell
    for cell in per_cell:  # each card ran each cell once
        where = {(r["node_index"], r["visible_devices"]) for r in recs if r["fleet_of"] == cell}
        assert where == {(n, str(c)) for n in (0, 1) for c in range(8)}
    assert all(r["status"] == "ok" and r["device_serial"] is None for r in recs)
    # hydra.launcher.ray.sim_nodes=2 made two Ray nodes (two raylets), not one node twice
    assert len({r["ray_node_id"] for r in recs}) == 2
    flagged = {(c.node, c.card): c.flags for c in cards(recs) if c.flags}
    assert flagged == {("1", "3"): [SLOW], ("0", "5"): [THROTTLED], ("1", "0"): [LEAKED]}
    report = (sweep / "report.md").read_text()
    assert "- `slow_card`: node 1 card 3 (n/a (simulated))" in report
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH for the heatmap check (Debian: apt-get install chromium)")
    with Chromium(chromium) as browser:
        browser.open((sweep / "report.html").as_uri())
        seen = browser.evaluate(HEATMAP)
        assert seen["n"] == 16 and seen["w"] > 300 and seen["h"] > 80
        assert sorted(seen["flagged"]) == [
            ["0", "5", THROTTLED], ["1", "0", LEAKED], ["1", "3", SLOW]
        ]  # fmt: skip
        assert browser.console_errors() == []
