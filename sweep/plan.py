"""From a job to its planned cell, once, on the driver.

A job arrives as Hydra overrides; :func:`plan_cell` turns its task values into a validated
:class:`~jobs.config.CellConfig` (every value converted and checked, unknown keys refused),
resolves ``device=auto`` to the device the cell will really run on (so the identity is the
measurement's, not the request's), and wraps it with its id, directory name and model key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from jobs.config import CellConfig, ConfigError, from_values
from jobs.identity import PlannedCell, cell_dir_name


def task_values(cfg: DictConfig) -> dict[str, Any]:
    """The task part of a composed config (no hydra node), resolved, as plain values."""
    keys = [k for k in cfg if k != "hydra"]
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)  # type: ignore[return-value]


def to_cell(cfg: DictConfig | dict[str, Any] | CellConfig) -> CellConfig:
    """A validated cell from a composed config, its task values, or a cell."""
    if isinstance(cfg, CellConfig):
        return cfg
    values = task_values(cfg) if isinstance(cfg, DictConfig) else cfg
    return normalise_paths(from_values(values))


def normalise_paths(cell: CellConfig) -> CellConfig:
    """Absolute model paths: Ray workers run in another working directory."""
    if cell.model.path:
        cell.model.path = os.path.abspath(os.path.expanduser(cell.model.path))
    return cell


@functools.lru_cache(maxsize=1)
def _local_device() -> str:
    from workers.device.devices import resolve_device

    return resolve_device("auto")


def auto_device(
    declared: dict[str, float], num_gpus: float | None, nodes: Callable[[], list] | None
) -> str:
    """What ``device=auto`` means for a sweep: the devices of the cluster it joins (``nodes``,
    when joining one), else those declared for the local Ray, else what this host has."""
    if nodes is not None:
        from sweep.placement import resolve_auto

        return resolve_auto(nodes())
    if declared.get("NPU", 0) > 0:
        return "npu"
    if num_gpus:
        return "cuda"
    return _local_device()


def with_device(cell: CellConfig, device: str) -> CellConfig:
    """The cell with ``device=auto`` replaced by the device it resolves to."""
    if cell.device.name != "auto":
        return cell
    return dataclasses.replace(cell, device=dataclasses.replace(cell.device, name=device))


def plan_cell(values: dict[str, Any] | DictConfig, resolve_auto: Callable[[], str]) -> PlannedCell:
    """The planned cell of one job; raises ConfigError for bad input."""
    cell = to_cell(values)
    if cell.device.name == "auto":
        cell = with_device(cell, resolve_auto())
    return PlannedCell.of(cell)


def cell_dir_resolver(*, _root_: Any) -> str:
    """`${cell_dir:}`: the directory name of the cell a config describes (device=auto
    resolved on this host), for single runs and Hydra's basic launcher."""
    try:
        return cell_dir_name(cell_here(_root_))
    except ConfigError:
        # Invalid configs are rejected with their own message before anything runs;
        # the directory name must not be the place that reports them.
        return "invalid-cell"


def cell_here(cfg: Any) -> CellConfig:
    """The cell of a config run on this host: ``device=auto`` is what this host has."""
    cell = to_cell(cfg)
    return with_device(cell, _local_device()) if cell.device.name == "auto" else cell


_OLD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.,=+-]+")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.+-]+")
# Overrides that do not change which cells a sweep measures do not change its directory (an
# SLO only re-scores what was measured: jobs/identity.py).
_NOT_IN_NAME = ("hydra.", "+hydra.", "++hydra.", "cluster=", "slo.", "+slo.", "++slo.")
# Where conf/config.yaml puts the sweeps it names (`multirun/${sweep_name:}`).
SWEEPS_DIR = "multirun"
log = logging.getLogger(__name__)
_SAID: set[str] = set()


def _sort_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _canonical(override: str) -> str:
    """One override as one text however its values were ordered: a choice sweep's values
    sorted (numbers by value) and each once; anything else as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    try:
        o = OverridesParser.create().parse_override(override)
        choice = (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP)
        if o.value_type not in choice or o.is_hydra_override():
            return override
        values = sorted(set(o.sweep_string_iterator()), key=_sort_key)
    except Exception:  # not an override Hydra can parse: Hydra itself refuses it
        return override
    return f"{override.partition('=')[0]}={','.join(values)}"


def _old_sweep_name(overrides: list[str]) -> str:
    """The name sweeps had before names became Hydra-safe (kept to resume such a sweep)."""
    items = sorted(o for o in overrides if not o.startswith(_NOT_IN_NAME[:4]))
    if not items:
        return "default"
    text = "_".join(items)
    name = _OLD_NAME_CHARS.sub("_", text).strip("._") or "sweep"
    if name != text or len(name) > 80:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        name = f"{name[:60]}-{digest}"
    return name


def sweep_name(overrides: list[str]) -> str:
    """A sweep's directory name from its own overrides: the same sweep however it is written
    (overrides sorted, a sweep's values sorted), without hydra.*, cluster= and slo.* (they do
    not change what is measured), readable and passable back as `hydra.sweep.dir` (`=` written
    `-`, `,` written `+`: `batch-1+2_seq-4+8`), with a short hash when other characters had to
    be replaced or the name cut."""
    items = sorted(_canonical(o) for o in overrides if not o.startswith(_NOT_IN_NAME))
    if not items:
        return "default"
    text = "_".join(items)
    readable = text.replace("=", "-").replace(",", "+")
    name = _NAME_CHARS.sub("_", readable).strip("._") or "sweep"
    if name != readable or len(name) > 80:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        name = f"{name[:60]}-{digest}"
    return name


def resumable_sweep_name(overrides: list[str], parent: str = SWEEPS_DIR) -> str:
    """:func:`sweep_name`, unless only a sweep of the same overrides named the earlier way
    (`batch=1,2_seq=4,8`) exists under ``parent``: that one is resumed, and said so once."""
    name = sweep_name(overrides)
    old = _old_sweep_name(overrides)
    if old != name and os.path.isdir(os.path.join(parent, old)):
        if not os.path.isdir(os.path.join(parent, name)):
            if old not in _SAID:
                _SAID.add(old)
                log.warning(
                    "resuming %s/%s, named the earlier way (a new sweep of these overrides "
                    "would be %s/%s)", parent, old, parent, name,
                )  # fmt: skip
            return old
    return name


def sweep_name_resolver(*, _root_: Any) -> str:
    """`${sweep_name:}`: the name of the sweep a master config describes."""
    overrides = [str(o) for o in OmegaConf.select(_root_, "hydra.overrides.task") or []]
    return resumable_sweep_name(overrides)
