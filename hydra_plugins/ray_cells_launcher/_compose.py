"""Job configs: composed by Hydra, or, for planning, a job's task values without composing it.

Hydra composes every job from scratch (tens of ms each: defaults tree, YAML, merges). The jobs
of a sweep usually differ only in values (batch=1,2,4 ...), so ``task_values`` composes one
template per set of config-group choices (with Hydra's own ``load_sweep_config``), keeps its
task part as plain values, and applies each job's value overrides to a copy of them, with
the value Hydra's override parser gives. Jobs the fast path cannot express exactly (hydra.*
overrides, deletions, package overrides, interpolations in a value, a template whose
interpolations are not environment lookups) return None: the caller composes them.
"""

from __future__ import annotations

import re
from typing import Any

from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import DictConfig, OmegaConf

# `key=<int>` (a dotted key of plain names, a decimal int without a leading zero): what
# Hydra's parser makes of it is known (a change of that key to that int), and a sweep over
# a range has as many such lines as values; each takes ~0.3 ms in Hydra's parser
# (bench/plan_cells.py).
_KEY_INT = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=(-?(?:0|[1-9][0-9]*))"
)


def _group_names(repository: Any, parent: str = "") -> set[str]:
    """The task's config groups, dotted, from the loader's config repository (what Hydra's
    `list_groups` asks, without the override parser it builds per call, ~0.1 s each).
    Hydra's own `hydra/...` groups are left out: an override of one is a hydra override,
    which never takes the fast path."""
    out: set[str] = set()
    for name in repository.get_group_options(parent, ObjectType.GROUP):
        if not parent and name == "hydra":
            continue
        full = f"{parent}/{name}" if parent else name
        out.add(full.replace("/", "."))
        out |= _group_names(repository, full)
    return out


def _copy(node: Any) -> Any:
    """A copy of plain nested values (dicts, lists, scalars): much cheaper than deepcopy."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _only_env_interpolations(node: Any) -> bool:
    if isinstance(node, dict):
        return all(_only_env_interpolations(v) for v in node.values())
    if isinstance(node, list):
        return all(_only_env_interpolations(v) for v in node)
    if isinstance(node, str) and "${" in node:
        return node.startswith("${oc.env:") and node.count("${") == 1
    return True


class Composer:
    def __init__(self, master: DictConfig, config_loader: Any) -> None:
        self.master = master
        self.loader = config_loader
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.groups = _group_names(config_loader.repository)
        self.templates: dict[tuple[str, ...], dict[str, Any] | None] = {}
        self._parsed: dict[str, Override] = {}  # the jobs of a sweep share most overrides

    def compose(self, overrides: list[str]) -> DictConfig:
        """The job's config exactly as Hydra composes it for a sweep."""
        return self.loader.load_sweep_config(self.master, list(overrides))

    def _template(self, group_lines: tuple[str, ...]) -> dict[str, Any] | None:
        if group_lines not in self.templates:
            cfg = self.compose(list(group_lines))
            task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            raw = OmegaConf.to_container(task, resolve=False)
            ok = _only_env_interpolations(raw)
            self.templates[group_lines] = OmegaConf.to_container(task, resolve=True) if ok else None
        return self.templates[group_lines]

    def _fast(self, o: Override) -> bool:
        return not (o.is_hydra_override() or o.is_delete() or o.package is not None)

    def _parse(self, line: str) -> Override:
        o = self._parsed.get(line)
        if o is None:
            m = _KEY_INT.fullmatch(line)
            if m is not None:  # the Override Hydra's parser would give, without the parser
                o = Override(
                    type=OverrideType.CHANGE, key_or_group=m.group(1),
                    value_type=ValueType.ELEMENT, _value=int(m.group(2)), input_line=line,
                )  # fmt: skip
            else:
                o = self.parser.parse_override(line)
            self._parsed[line] = o
        return o

    def task_values(self, overrides: list[str]) -> dict[str, Any] | None:
        parsed = [self._parse(line) for line in overrides]
        if not all(self._fast(o) for o in parsed):
            return None
        group_lines = tuple(o.input_line for o in parsed if o.key_or_group in self.groups)
        template = self._template(group_lines)
        if template is None:
            return None
        values = _copy(template)
        for o in parsed:
            if o.key_or_group in self.groups:
                continue
            value = o.value()
            if isinstance(value, str) and "${" in value:
                return None
            node = values
            *parents, leaf = o.key_or_group.split(".")
            for key in parents:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
            node[leaf] = value
        return values
