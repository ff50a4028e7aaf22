# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""`hydra/sweeper=slo_search`: the highest load (or batch) whose cell meets the SLO.

    python launch.py -m hydra/sweeper=slo_search workload=serve backend=sim \\
        model=llama3_8b prompt_len=512 seq=128 slo.tpot_ms=40 prompt_len=256,512

Every combination of the other overrides is a group; each round launches the next probe of
every group still searching (``hydra.sweeper.key``: ``request_rate``, ``concurrency`` or, for
static cells, ``batch``), starting at ``hydra.sweeper.start`` (or the key's value given on the
command line), or at the knee predicted from static cells of the same model and card in the
sweep directory or ``hydra.sweeper.predict_from`` (serving keys; _slo_predict.py). What meets
the SLO and how the next value is chosen: _slo_search.py (bracketing, then bisection to
``hydra.sweeper.rel_tol``). Each probe is an ordinary job, so the search resumes like any
sweep: finished probes are skipped and their results decide the next round. After every
round the answer so far goes to SWEEP/knee.json and SWEEP/knee.md (and the section of
report.md between the knee markers).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from ._slo_predict import predict
from ._slo_search import Probe, Search, Slo, judge, pick
from ._slo_write import write_answer
from .cells_sweeper import CellsSweeper, CellsSweeperConf

log = logging.getLogger(__name__)

KEYS = ("request_rate", "concurrency", "batch")


@dataclass
class SloSearchSweeperConf(CellsSweeperConf):
    _target_: str = "hydra_plugins.ray_cells_launcher.slo_search_sweeper.SloSearchSweeper"
    # The override searched: request_rate | concurrency (serving) | batch (static).
    key: str = "request_rate"
    # The first probe when there is no prediction and the key is not given.
    start: float = 1.0
    # Precision of the answer: the search ends when (first failing - last meeting) <= rel_tol
    # x last meeting.
    rel_tol: float = 0.1
    min_value: float = 0.0
    max_value: float = 1e6
    max_probes: int = 20
    # A probe whose achieved rate is below saturation x its offered rate is over-saturated.
    saturation: float = 0.9
    # Predict each serving group's knee from static cells first (and start there).
    predict: bool = True
    # Where the static cells are; None: the sweep directory itself.
    predict_from: Optional[str] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="slo_search", node=SloSearchSweeperConf, provider="ray_cells"
)


def results(ret: Optional[JobReturn]) -> List[Dict[str, Any]]:
    """The records (rows) a job returned: ray_cells returns one row, the basic launcher the
    list of records of run_task (one per repeat)."""
    if ret is None or ret.status != JobStatus.COMPLETED:
        return []
    value = ret.return_value
    rows = value if isinstance(value, list) else [value]
    return [r for r in rows if isinstance(r, dict)]


def _fmt(value: float, integer: bool) -> str:
    return str(int(value)) if integer else f"{value:g}"


class SloSearchSweeper(CellsSweeper):
    def __init__(
        self, key: str = "request_rate", start: float = 1.0, rel_tol: float = 0.1,
        min_value: float = 0.0, max_value: float = 1e6, max_probes: int = 20,
        saturation: float = 0.9, predict: bool = True, predict_from: Optional[str] = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if key not in KEYS:
            raise SystemExit(f"error: hydra.sweeper.key={key!r} is not allowed: one of {KEYS}")
        if not 0 < rel_tol < 1:
            raise SystemExit(f"error: hydra.sweeper.rel_tol={rel_tol!r} must be in (0, 1)")
        if not start > 0 or max_probes < 1:
            raise SystemExit("error: hydra.sweeper.start must be > 0, max_probes >= 1")
        self.key, self.start, self.rel_tol = key, float(start), float(rel_tol)
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.max_probes, self.saturation = int(max_probes), float(saturation)
        self.predict, self.predict_from = predict, predict_from
        self.integer = key != "request_rate"

    def _groups(self, arguments: List[str]) -> tuple:
        """(every combination of the other overrides, the start given for the key or None)."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        mine = [o for o in overrides if o.key_or_group == self.key]
        rest = [o for o in overrides if o.key_or_group != self.key]
        if mine and mine[-1].is_sweep_override():
            raise SystemExit(f"error: give {self.key}=ONE_START (the search chooses the rest)")
        start = float(mine[-1].value()) if mine else None
        combos = [c for part in self.split_arguments(rest, None) for c in part] or [[]]
        return [list(c) for c in combos], start

    def _group(self, combo: List[str], start: Optional[float], sweep_dir: Path) -> Dict[str, Any]:
        """One group: its SLO and cell facts from its composed config, its prediction."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(combo))
        slo = Slo(float(cfg.slo.ttft_ms or 0), float(cfg.slo.tpot_ms or 0))
        group: Dict[str, Any] = {"overrides": list(combo), "slo": slo, "prediction": None}
        if self.predict and self.key != "batch" and cfg.workload.name == "serve":
            match = {"model": cfg.model.name}
            if cfg.backend.name == "sim":
                match["sim_device_spec"] = cfg.backend.sim.device_spec
            elif cfg.device.name != "auto":
                match["device"] = cfg.device.name
            where = Path(self.predict_from) if self.predict_from else sweep_dir
            group["prediction"] = predict(
                where, self.key, match, int(cfg.prompt_len), int(cfg.seq), slo
            )
        pred = group["prediction"]
        top = self.max_value
        if self.key == "concurrency" and cfg.workload.num_requests > 0:
            top = min(top, float(cfg.workload.num_requests))  # more in flight: the same cell
        group["search"] = Search(
            start=pred["value"] if pred else (start or self.start), rel_tol=self.rel_tol,
            integer=self.integer, min_value=self.min_value, max_value=top,
            max_probes=self.max_probes, predicted=pred is not None,
        )  # fmt: skip
        return group

    def run_sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        combos, start = self._groups(arguments)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        groups = [self._group(c, start, sweep_dir) for c in combos]
        from ._session import one_session  # not while Hydra looks for plugins: no Ray

        with one_session():  # Ray starts once for every round, not once per probe
            return self._rounds(groups, sweep_dir)

    def _rounds(self, groups: List[Dict[str, Any]], sweep_dir: Path) -> Any:
        assert self.launcher is not None
        returns: List[Sequence[JobReturn]] = []
        idx = 0
        while True:
            todo = [(g, v) for g in groups if (v := g["search"].next_value()) is not None]
            if not todo:
                break
            batch = [[*g["overrides"], f"{self.key}={_fmt(v, self.integer)}"] for g, v in todo]
            done = {tuple(r.overrides or ()): r for r in self.launcher.launch(batch, idx)}
            idx += len(batch)
            returns.append(list(done.values()))
            for (g, v), job in zip(todo, batch):
                rows = results(done.get(tuple(job)))
                meets, why, sat = judge(rows, g["slo"], self.saturation)
                g["search"].add(Probe(v, meets, why, sat, pick(rows[0]) if rows else {}))
            write_answer(sweep_dir, self._answer(groups))
        write_answer(sweep_dir, self._answer(groups))
        return returns

    def _answer(self, groups: List[Dict[str, Any]]) -> Dict[str, Any]:
        out = []
        for g in groups:
            ans = g["search"].answer()
            pred = g["prediction"]
            knee = ans["knee"]
            found = ans["status"] == "found"
            error = (pred["value"] - knee) / knee if pred and knee and found else None
            out.append({
                "overrides": g["overrides"], "slo": g["slo"].text(), **ans,
                "predicted": pred["value"] if pred else None, "prediction": pred,
                "prediction_error": error,
            })  # fmt: skip
        return {
            "key": self.key, "rel_tol": self.rel_tol, "saturation": self.saturation,
            "meets": "status ok, every p99 within its slo.* limit, and not over-saturated "
            "(achieved rate >= saturation x offered, queue not growing)",
            "groups": out,
        }  # fmt: skip


__all__: List[str] = ["SloSearchSweeper", "SloSearchSweeperConf", "results"]
