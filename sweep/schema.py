"""What Hydra needs before it composes anything; called by the entry point (launch.py)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from jobs.config import CellConfig
from sweep.plan import cell_dir_resolver, sweep_name_resolver


def register() -> None:
    """The cell schema (conf/config.yaml's `cell_schema` default), the `${cell_dir:}`
    resolver that names a cell's directory and `${sweep_name:}` that names a sweep's.
    Idempotent: a schema already stored is kept (building it from the dataclasses is ~20 ms,
    paid once per process)."""
    store = ConfigStore.instance()
    if "cell_schema.yaml" not in store.repo:
        store.store(name="cell_schema", node=CellConfig)

    if not OmegaConf.has_resolver("cell_dir"):
        OmegaConf.register_new_resolver("cell_dir", cell_dir_resolver, use_cache=False)
    if not OmegaConf.has_resolver("sweep_name"):
        OmegaConf.register_new_resolver("sweep_name", sweep_name_resolver, use_cache=False)
