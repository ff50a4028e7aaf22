"""The token checks on the real tiny model, in process: a deliberately wrong backend (a
stand-in that adds noise to the logits) is flagged `divergent` while the same cells with
the right one are not; the shipped arithmetic set is scored with an honest interval; the
checks run after the timed window; the simulator says not_applicable."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from aggregate.__main__ import main as aggregate_main
from aggregate.quality import annotate
from aggregate.reader import read_records as load_records
from jobs.config import BackendConfig, BenchConfig, CellConfig, DeviceConfig, ModelConfig
from jobs.identity import PlannedCell
from jobs.quality import AccuracyConfig, QualityConfig
from jobs.record import build_record
from sweep.finish import summary_row
from workers import base, model_cache
from workers import run as measure
from workers.backends.hf import HFBackend
from workers.quality.task import SHIPPED


class _Noise:
    """A LogitsProcessor: seeded Gaussian noise three times the scores' own spread."""

    def __init__(self) -> None:
        import torch

        self.gen = torch.Generator().manual_seed(7)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        noise = torch.randn(scores.shape, generator=self.gen).to(scores.device, scores.dtype)
        return scores + 3.0 * scores.std() * noise


class NoisyHFBackend(HFBackend):
    """The hf backend with a broken "kernel": every generate call gets noisy logits."""

    events: list[str] = []

    def load(self) -> None:
        from transformers import LogitsProcessorList

        super().load()
        generate = self.model.generate

        def noisy(*args: Any, **kw: Any) -> Any:
            return generate(*args, logits_processor=LogitsProcessorList([_Noise()]), **kw)

        self.model.generate = noisy

    def run_iteration(self) -> Any:
        type(self).events.append("iteration")
        return super().run_iteration()

    def greedy_ids(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        type(self).events.append("check")
        return super().greedy_ids(prompts, new_tokens)


def cell(batch: int = 1, seq: int = 4, **kw: Any) -> CellConfig:
    return CellConfig(
        batch=batch, seq=seq, prompt_len=8, device=DeviceConfig(name="cpu"),
        bench=BenchConfig(warmup=1, iterations=2), **kw,
    )  # fmt: skip


def run_into(sweep: Path, cells: list[CellConfig]) -> list[dict]:
    """Measure each cell in this process and write its record.json as a sweep would."""
    records = []
    model_cache.drop_models()
    for c in cells:
        planned = PlannedCell.of(c)
        rec = build_record(planned, measure.measure(c))
        assert rec["status"] == "ok", rec["error"]
        (sweep / planned.cell_dir).mkdir(parents=True)
        (sweep / planned.cell_dir / "record.json").write_text(json.dumps(rec))
        records.append(rec)
    model_cache.drop_models()
    return records


def verdicts(sweep: Path) -> dict[str, str]:
    with open(sweep / "results.csv") as f:
        return {row["cell_id"]: row["agreement_verdict"] for row in csv.DictReader(f)}


@pytest.fixture
def reference(tmp_path: Path, tiny_cache: Path) -> Path:
    ref = tmp_path / "reference"
    (rec,) = run_into(ref, [cell(batch=1, seq=4)])
    assert rec["dtype"] == "float32" and rec["check_status"] == "ok"
    assert len(rec["quality"]["check_tokens"]) == 4 and rec["check_tokens"] == 4 * 32
    return ref


def test_wrong_backend_is_divergent_and_the_right_one_is_not(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [cell(batch=2, seq=4), cell(batch=1, seq=6)]
    right = tmp_path / "right"
    right_recs = run_into(right, cells)
    monkeypatch.setitem(base._REGISTRY, "hf", f"{__name__}:NoisyHFBackend")
    NoisyHFBackend.events = []
    wrong = tmp_path / "wrong"
    wrong_recs = run_into(wrong, cells)
    # The same cells (same ids), the same timed path; the check after the window.
    assert [r["cell_id"] for r in right_recs] == [r["cell_id"] for r in wrong_recs]
    assert NoisyHFBackend.events == ["iteration"] * 3 + ["check"] + ["iteration"] * 3 + ["check"]

    for sweep in (right, wrong):
        args = [str(sweep), "--reference", str(reference), "--quiet", "--no-plots"]
        assert aggregate_main(args) == 0
    assert set(verdicts(right).values()) == {"ok"}
    assert set(verdicts(wrong).values()) == {"divergent"}
    report = (wrong / "report.md").read_text()
    assert "## Output agreement" in report and "| divergent |" in report
    assert "≉" in report  # the flag's mark next to the cells' numbers
    # record.json and results.jsonl keep what the cell measured; the comparison is derived.
    lines = [json.loads(x) for x in (wrong / "results.jsonl").read_text().splitlines()]
    assert all("divergent" not in r["flags"] for r in lines)

    # What a sweep's driver keeps of each record (rows, no prompts) compares the same way.
    rows = [summary_row(r, {}) for r in wrong_recs]
    assert all("check_prompts" not in r["quality"] for r in rows)
    compared = annotate(rows, reference=load_records(reference)[0])
    assert [r["agreement_verdict"] for r in compared] == ["divergent", "divergent"]

    # Without --reference the sweep's own hf float32 cells are the reference: all agree.
    assert aggregate_main([str(right), "--quiet", "--no-plots"]) == 0
    assert sorted(verdicts(right).values()) == ["ok", "reference"]


def test_shipped_arithmetic_set_scores_with_an_honest_interval(tiny_cache: Path) -> None:
    acc = AccuracyConfig(path=str(SHIPPED), limit=12, max_new_tokens=8, min=0.5)
    model_cache.drop_models()
    rec = build_record(cell(accuracy=acc), measure.measure(cell(accuracy=acc)))
    model_cache.drop_models()
    assert rec["status"] == "ok", rec["error"]
    score, low, high = rec["accuracy"], rec["accuracy_low_95"], rec["accuracy_high_95"]
    assert rec["accuracy_n"] == 12 and 0 <= rec["accuracy_correct"] <= 12
    assert 0.0 <= low <= score <= high <= 1.0 and high - low > 0
    assert score < 0.5 and "accuracy_low" in rec["flags"]  # an untrained tiny model
    detail = rec["quality"]["accuracy"]
    assert detail["status"] == "ok" and len(detail["examples"]) == 3


def test_a_missing_task_file_leaves_the_cell_ok(tmp_path: Path, tiny_cache: Path) -> None:
    acc = AccuracyConfig(path=str(tmp_path / "none.jsonl"))
    model_cache.drop_models()
    rec = build_record(cell(accuracy=acc), measure.measure(cell(accuracy=acc)))
    model_cache.drop_models()
    assert rec["status"] == "ok" and rec["accuracy"] is None
    assert rec["quality"]["accuracy"]["status"] == "failed"
    assert "FileNotFoundError" in rec["quality"]["accuracy"]["error"]


def test_simulator_and_check_off_say_so(tiny_cache: Path) -> None:
    sim = measure.run_cell(cell(backend=BackendConfig(name="sim"), model=ModelConfig()))
    assert sim["check_status"] == "not_applicable" and sim["check_tokens"] is None
    assert "check_tokens" not in sim["quality"]
    model_cache.drop_models()
    off = measure.run_cell(cell(quality=QualityConfig(check=False)))
    model_cache.drop_models()
    assert off["status"] == "ok" and off["check_status"] == "off" and off["check_s"] is None
