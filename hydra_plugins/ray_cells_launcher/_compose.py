"""Composing job configs quickly: one Hydra composition per distinct set of group choices.

Hydra composes every job from scratch (tens of ms each: defaults tree, YAML, merges). Jobs
of a sweep usually differ only in values (batch=1,2,4 ...), so we compose a template once per
set of config-group choices and apply each job's value overrides to a copy of it, the same
way Hydra applies them (`_apply_overrides_to_config`), then fill in the fields Hydra derives
from the overrides. Any job the fast path cannot express exactly (hydra.* overrides, deletions)
is composed by Hydra itself.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class Composer:
    def __init__(self, master: DictConfig, config_loader: Any) -> None:
        self.master = master
        self.loader = config_loader
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.templates: dict[tuple[str, ...], DictConfig] = {}
        self.groups: dict[str, bool] = {}

    def _is_group(self, o: Override) -> bool:
        key = o.key_or_group
        if key not in self.groups:
            repo = getattr(self.loader, "repository", None)
            self.groups[key] = repo is None or repo.group_exists(key.replace(".", "/"))
        return self.groups[key]

    def compose(self, overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(overrides)
        slow = any(o.is_hydra_override() or o.is_delete() or o.package is not None for o in parsed)
        if slow:
            return self.loader.load_sweep_config(self.master, list(overrides))
        group_lines = tuple(o.input_line for o in parsed if self._is_group(o))
        values = [o for o in parsed if not self._is_group(o)]
        template = self.templates.get(group_lines)
        if template is None:
            template = self.loader.load_sweep_config(self.master, list(group_lines))
            self.templates[group_lines] = template
        cfg = copy.deepcopy(template)
        with read_write(cfg), open_dict(cfg.hydra):
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            cfg.hydra.overrides.task = [o.input_line for o in parsed]
            dirname = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=parsed,
                kv_sep=dirname.kv_sep,
                item_sep=dirname.item_sep,
                exclude_keys=dirname.exclude_keys,
            )
            for key in cfg.hydra.job.env_copy:
                cfg.hydra.job.env_set[key] = os.environ[key]
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg
