"""Where each figure goes, relative to the sweep directory: the report links these paths
and the plots write them (no matplotlib here)."""

from __future__ import annotations

from aggregate.serving import ServingKey
from aggregate.tables import GroupKey

PLOT_DIR = "plots"
# The figures of one static group, in report order (file name suffixes).
GROUP_FIGURES = ("throughput", "e2e", "ttft-tpot", "memory", "energy")
COMPARE_FIGURE = f"{PLOT_DIR}/compare-throughput.png"
SERVE_PARETO_FIGURE = f"{PLOT_DIR}/serve-pareto.png"
PARETO_FIGURE = f"{PLOT_DIR}/pareto.png"
FRONTIER_FIGURE = f"{PLOT_DIR}/oom-frontier.png"


def plot_name(key: GroupKey, figure: str) -> str:
    """Path of a static group's figure."""
    return f"{PLOT_DIR}/{key.slug()}-{figure}.png"


def serving_figures(key: ServingKey) -> list[str]:
    """Paths of a serving curve's figures: throughput, then latency."""
    return [f"{PLOT_DIR}/{key.slug()}-{name}.png" for name in ("throughput", "latency")]
