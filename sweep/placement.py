"""Which Ray resources a cell asks for, so Ray pins it to its own device."""

from __future__ import annotations

from typing import Any

from jobs.config import CellConfig


def resolve_auto(nodes: list[dict[str, Any]]) -> str:
    """device=auto on a cluster: npu if any node has NPUs, else cuda if any has GPUs, else cpu."""
    have = {k for n in nodes for k, v in n.get("Resources", {}).items() if v > 0}
    if "NPU" in have:
        return "npu"
    if "GPU" in have:
        return "cuda"
    return "cpu"


def cell_resources(cell: CellConfig, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray actor options for the worker that runs this cell."""
    kind = cell.device.name
    if kind == "auto":
        kind = resolve_auto(nodes)
    n = cell.device.per_cell
    if kind == "cuda":
        return {"num_cpus": 0, "num_gpus": n}
    if kind == "npu":
        return {"num_cpus": 0, "resources": {"NPU": n}}
    # cpu: a whole node by default, so cells never share cores.
    cpus = cell.device.cpus_per_cell
    if cpus <= 0:
        cores = [int(n.get("Resources", {}).get("CPU", 0)) for n in nodes]
        cpus = max(1, min([c for c in cores if c > 0] or [1]))
    return {"num_cpus": cpus}
