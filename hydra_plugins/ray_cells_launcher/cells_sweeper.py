# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=cells`: Hydra's basic sweeper, one live sweep per directory, no double pass.

Before anything is written, the sweep directory must be usable and not in use by another
live sweep (an flock on SWEEP/.sweep.lock, taken before Hydra writes multirun.yaml, so a
refused launch changes nothing of the live one); a sweep refused for bad input (exit 2) leaves
the directory as it found it (none, when it made it). Hydra's BasicSweeper composes each job once
just to validate it, and the launcher then composes it again to run it: with thousands of
cells that doubles the planning time. The `ray_cells` launcher plans (and so validates) every
job before it starts anything, so under it this sweeper skips the extra pass. Under Hydra's
basic launcher (the jobs run one after another in this process) it validates exactly like
BasicSweeper and hands the launcher the configs it composed, so each job is composed once
(a batch of up to 256 jobs: their configs are kept until each job starts). With any other
launcher it validates exactly like BasicSweeper.
"""

import dataclasses
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

# The most jobs of one batch whose composed configs are kept for the basic launcher (a
# composed config of this project is ~0.1-0.3 MB); a larger batch is composed twice.
KEEP_COMPOSED_MAX = 256


@dataclass
class CellsSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.cells_sweeper.CellsSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="cells", node=CellsSweeperConf, provider="ray_cells"
)


def _unusable(sweep_dir: Path) -> Optional[str]:
    """Why the sweep directory cannot be written, or None."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        probe = sweep_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class _Before:
    """What a sweep directory was before this launch, to put back when the sweep is refused
    (bad input, exit 2): a directory the launch created goes (with its parents it created),
    an existing one gets its multirun.yaml back and loses the lock file it did not have."""

    KEEP_OUT = ("multirun.yaml", ".sweep.lock")

    def __init__(self, sweep_dir: Path) -> None:
        self.dir = sweep_dir.absolute()
        self.created: Optional[Path] = None
        for p in [self.dir, *self.dir.parents]:
            if p.exists():
                break
            self.created = p
        self.multirun = self._read(self.dir / "multirun.yaml")
        self.had_lock = (self.dir / ".sweep.lock").exists()

    @staticmethod
    def _read(path: Path) -> Optional[bytes]:
        try:
            return path.read_bytes()
        except OSError:
            return None

    def undo(self) -> None:
        try:
            if self.created is not None:
                files = [p for p in self.created.rglob("*") if p.is_file()]
                if all(p.name in self.KEEP_OUT and p.parent == self.dir for p in files):
                    shutil.rmtree(self.created)
                return
            if self.multirun is None:
                (self.dir / "multirun.yaml").unlink(missing_ok=True)
            else:
                (self.dir / "multirun.yaml").write_bytes(self.multirun)
            if not self.had_lock:
                (self.dir / ".sweep.lock").unlink(missing_ok=True)
        except OSError:
            pass  # best effort: the refusal's own message matters more


class _ComposedOnce:
    """The config loader as the basic launcher sees it: a job's config that validation has
    composed already is handed over (once) instead of being composed again; anything else
    goes to the loader itself. The launcher composes with the same master config and
    overrides that validation used, in this process, moments later: the same config."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.kept: dict = {}

    def keep(self, master: DictConfig, overrides: Sequence[str]) -> None:
        cfg = self.loader.load_sweep_config(master_config=master, sweep_overrides=list(overrides))
        self.kept.setdefault((id(master), tuple(overrides)), []).append(cfg)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: List[str]) -> Any:
        key = (id(master_config), tuple(sweep_overrides))
        kept = self.kept.get(key)
        if kept:
            cfg = kept.pop(0)
            if not kept:
                del self.kept[key]
            return cfg
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def _stop(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class CellsSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        from ._lock import SweepBusy, SweepLock

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        before = _Before(sweep_dir)
        problem = _unusable(sweep_dir)
        if problem:
            before.undo()
            _stop(f"hydra.sweep.dir={sweep_dir} cannot be used: {problem}")
        lock = SweepLock(sweep_dir)
        try:
            lock.acquire()
        except SweepBusy as exc:
            _stop(str(exc))
        refused = False
        try:
            return self.run_sweep(arguments)
        except SystemExit as exc:
            refused = exc.code == 2  # bad input: nothing ran, nothing may stay
            raise
        finally:
            lock.release()
            if refused:
                before.undo()

    def run_sweep(self, arguments: List[str]) -> Any:
        """The sweep itself, once the directory is ours (subclasses plan their own rounds)."""
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from .ray_cells_launcher import RayCellsLauncher

        if isinstance(self.launcher, RayCellsLauncher):
            return  # the launcher composes every job before anything runs
        launcher = self.launcher
        if type(launcher) is not BasicLauncher or len(batch) > KEEP_COMPOSED_MAX:
            super().validate_batch_is_legal(batch)
            return
        context = launcher.hydra_context
        loader = context.config_loader
        if isinstance(loader, _ComposedOnce):  # an earlier round's
            loader = loader.loader
        once = _ComposedOnce(loader)
        assert self.config is not None
        # Each kept config copies the master's resolver cache now, as the launcher's own
        # composition would later: the master's hydra.sweep.dir (a ${now:} in it too) was
        # resolved in sweep(), before this, so every job sees the same sweep directory.
        for overrides in batch:  # a job that cannot be composed fails here, as in Hydra's
            once.keep(self.config, overrides)
        launcher.hydra_context = dataclasses.replace(context, config_loader=once)


__all__: List[str] = ["CellsSweeper", "CellsSweeperConf"]
