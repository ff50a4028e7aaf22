# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=batch_until_oom`: find the out-of-memory frontier without listing batches.

    python launch.py -m hydra/sweeper=batch_until_oom batch=1 seq=64,128,256 ...

Every value given for ``hydra.sweeper.key`` (``batch``) starts a chain per combination of the
other overrides; each round launches the next value of every chain still alive (doubled),
and a chain ends at its first job that does not complete with a return value saying
``status: ok`` without any of ``hydra.sweeper.stop_flags`` (``above_bound``): an ``oom`` or
failed cell, or one faster than the hardware allows; or when the next value would exceed
``hydra.sweeper.max_value``. Each round is an ordinary launch, so the sweep resumes like any
other: finished jobs are skipped and their results decide the next round. Under the
``ray_cells`` launcher the rounds share one Ray session (started once, stopped at the end).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from .cells_sweeper import CellsSweeper, CellsSweeperConf


@dataclass
class BatchUntilOOMSweeperConf(CellsSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.until_oom_sweeper.BatchUntilOOMSweeper"
    # The override that doubles from round to round.
    key: str = "batch"
    # No chain goes beyond this value.
    max_value: int = 65536
    # Flags in a job's result that end its chain like a failure does.
    stop_flags: List[str] = field(default_factory=lambda: ["above_bound"])


ConfigStore.instance().store(
    group="hydra/sweeper", name="batch_until_oom", node=BatchUntilOOMSweeperConf,
    provider="ray_cells",
)  # fmt: skip


def goes_on(ret: Optional[JobReturn], stop_flags: Sequence[str]) -> bool:
    """A job that lets its chain double: completed, status ok, no stop flag."""
    if ret is None or ret.status != JobStatus.COMPLETED:
        return False
    value = ret.return_value
    if not isinstance(value, dict) or value.get("status") != "ok":
        return False
    return not set(value.get("flags") or []) & set(stop_flags)


def _starts(override: Override, key: str) -> List[int]:
    values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SystemExit(f"error: {key}={v!r} is not allowed: a whole number >= 1")
    return sorted(set(values))


class BatchUntilOOMSweeper(CellsSweeper):
    def __init__(
        self, key: str = "batch", max_value: int = 65536, stop_flags: Any = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_value, bool) or max_value < 1:
            raise SystemExit(f"error: hydra.sweeper.max_value={max_value!r} must be >= 1")
        self.key, self.max_value, self.stop_flags = key, max_value, list(stop_flags or [])

    def _chains(self, arguments: List[str]) -> Tuple[List[List[str]], List[int]]:
        """(every combination of the other overrides, the starting values)."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        mine = [o for o in overrides if o.key_or_group == self.key]
        rest = [o for o in overrides if o.key_or_group != self.key]
        starts = _starts(mine[-1], self.key) if mine else [1]
        combos = [c for part in self.split_arguments(rest, None) for c in part] or [[]]
        return [list(c) for c in combos], starts

    def run_sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        combos, starts = self._chains(arguments)
        OmegaConf.save(self.config, Path(str(self.config.hydra.sweep.dir)) / "multirun.yaml")
        chains = [(c, v) for c in combos for v in starts if v <= self.max_value]
        from ._session import one_session  # not while Hydra looks for plugins: no Ray

        with one_session():  # Ray starts once for every round
            return self._rounds(chains)

    def _rounds(self, chains: List[Tuple[List[str], int]]) -> Any:
        assert self.launcher is not None
        returns: List[Sequence[JobReturn]] = []
        idx = 0
        while chains:
            batch = [[*combo, f"{self.key}={v}"] for combo, v in chains]
            results = self.launcher.launch(batch, initial_job_idx=idx)
            idx += len(batch)
            returns.append(results)
            done = {tuple(r.overrides or ()): r for r in results}
            chains = [
                (combo, 2 * v)
                for (combo, v), job in zip(chains, batch)
                if 2 * v <= self.max_value and goes_on(done.get(tuple(job)), self.stop_flags)
            ]
        return returns


__all__: List[str] = ["BatchUntilOOMSweeper", "BatchUntilOOMSweeperConf", "goes_on"]
