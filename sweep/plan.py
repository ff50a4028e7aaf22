"""From a composed Hydra config to the typed cell: done once per job, on the driver."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cells.config import CellConfig, ConfigError
from cells.identity import cell_dir_name


def to_cell(cfg: DictConfig | CellConfig) -> CellConfig:
    """Turn a composed config (its task part) into a validated :class:`CellConfig`."""
    if isinstance(cfg, CellConfig):
        return cfg
    if "hydra" in cfg:
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(exc).splitlines()[0]) from None
    if not isinstance(obj, CellConfig):  # a config not built on the cell schema
        obj = CellConfig(**obj)  # type: ignore[arg-type]
    return normalise_paths(obj)


def normalise_paths(cell: CellConfig) -> CellConfig:
    """Absolute model paths: Ray workers run in another working directory."""
    if cell.model.path:
        cell.model.path = os.path.abspath(os.path.expanduser(cell.model.path))
    return cell


def cell_dir_resolver(*, _root_: Any) -> str:
    """`${cell_dir:}`: the directory name of the cell a config describes."""
    try:
        return cell_dir_name(to_cell(_root_))
    except ConfigError:
        # Invalid configs are rejected with their own message before anything runs;
        # the directory name must not be the place that reports them.
        return "invalid-cell"
