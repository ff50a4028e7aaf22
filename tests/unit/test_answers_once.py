"""write_outputs computes each answer once: folding repeats, the SLO answers, the Pareto
front and the OOM frontier are each computed a single time per call, then only rendered
(report.md, report.html, slo.csv, pareto.csv and every plot)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import aggregate.render.plots.static  # noqa: F401  (loaded, so its names are patched too)
from aggregate import write_outputs
from aggregate.answers import compute, confidence, frontier, pareto, slo
from tests.unit.test_aggregate import make_record

COUNTED = (
    (confidence, "fold_repeats"),
    (slo, "records_slo"),
    (slo, "slo_answers"),
    (pareto, "pareto_points"),
    (frontier, "oom_frontier"),
    (compute, "compute_answers"),
)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls of each answer's function, wherever a module of aggregate/ holds it."""
    counts: Counter[str] = Counter()
    for home, name in COUNTED:
        original = getattr(home, name)

        def counted(*args: Any, _f: Any = original, _n: str = name, **kw: Any) -> Any:
            counts[_n] += 1
            return _f(*args, **kw)

        for mod in [m for n, m in sys.modules.items() if n.split(".")[0] == "aggregate"]:
            if getattr(mod, name, None) is original:
                monkeypatch.setattr(mod, name, counted)
    return counts


def records() -> list[dict[str, Any]]:
    """Static cells with an SLO budget of their own, one OOM, one cell repeated 3 times."""
    out = []
    for b in (1, 2, 4, 8):
        rec = make_record(b, 64, slo_tpot_ms=4.5)
        rec.update(tpot_s_p99=b * 1e-3, tpot_s_mean=b * 0.9e-3)
        out.append(rec)
    err = {"type": "OutOfMemoryError", "message": "out of memory", "traceback": ""}
    out.append(make_record(16, 64, status="oom", error=err, slo_tpot_ms=4.5))
    for i in range(3):
        rec = make_record(2, 128, salt="rep", repeat_of="cell-rep", repeat=i, slo_tpot_ms=4.5)
        rec["cell_id"] = f"rep-{i}"
        out.append(rec)
    return out


def test_each_answer_is_computed_once_per_write_outputs(
    tmp_path: Path, calls: Counter[str]
) -> None:
    out = write_outputs(tmp_path, records())
    for name in ("slo.csv", "pareto.csv", "plots/pareto.png", "plots/oom-frontier.png"):
        assert name in out, name  # every answer was rendered, in files and in figures
    report = (tmp_path / "report.md").read_text()
    assert "### SLO: TPOT p99 <= 4.5 ms" in report and "### Repeats" in report
    assert calls == {name: 1 for _, name in COUNTED}


def test_a_given_slo_is_not_looked_up_in_the_records(tmp_path: Path, calls: Counter[str]):
    write_outputs(tmp_path, records(), plots=False, slo_tpot_ms=3)
    assert calls == {name: 1 for _, name in COUNTED if name != "records_slo"}
