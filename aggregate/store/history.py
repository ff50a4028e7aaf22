"""A cell's history in the results store: its runs over time, and a verdict per step.

A *run* of a cell is what one sweep measured of it: one record, or the records of its
repeats (folded into their mean and 95% interval by aggregate/confidence.py). Runs are keyed
by the cell's identity (``repeat_of`` or ``cell_id``), or with ``by="axes"`` by the axes
`--baseline` falls back on (model, backend, device, dtype, batch, seq, prompt_len), and
ordered by when they finished. Each run is judged against the one before it, and the latest
against the first, by :func:`aggregate.baseline.compare.compare` itself: the very rules of
``python -m aggregate NEW --baseline OLD`` (intervals where there are repeats, else the CV
band; output tokens/s, E2E p50 and J/token), so history and the baseline gate never disagree.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregate.answers.confidence import Interval, fold_repeats, interval_of
from aggregate.baseline import envdiff
from aggregate.baseline.compare import IMPROVED, REGRESSION, WITHIN_NOISE, axes_key, compare
from aggregate.tables import ok_number

Record = dict[str, Any]

BY_CELL = "cell"
BY_AXES = "axes"
VERDICT_WORDS = {REGRESSION: "regression", IMPROVED: "improvement", WITHIN_NOISE: "noise"}


@dataclass
class Run:
    """What one sweep measured of a cell (several records when it has repeats)."""

    sweep_dir: str
    records: list[Record]

    @property
    def summary(self) -> Record:
        return fold_repeats(self.records)[0]

    @property
    def finished_at(self) -> str:
        return max(str(r.get("finished_at") or "") for r in self.records)

    def env(self, key: str) -> Any:
        env = self.records[0].get("env")
        return env.get(key) if isinstance(env, dict) else None

    @property
    def commit(self) -> str | None:
        return self.env("git_commit")

    def value(self, metric: str) -> tuple[float | None, Interval | None]:
        s = self.summary
        return ok_number(s, metric), interval_of(s, metric)


@dataclass
class Step:
    """Run ``new`` judged against run ``old``."""

    old: Run
    new: Run
    verdict: str  # regression / improvement / noise / fixed / still not ok / ...
    method: str  # what judged it: "95% CI" or "CV"
    delta_pct: float | None  # of the metric shown
    commits: list[str] | None = None  # `git log` old..new, when the repository knows both
    env_notes: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return self.verdict == VERDICT_WORDS[REGRESSION]


@dataclass
class CellHistory:
    key: str
    label: str
    runs: list[Run]
    steps: list[Step]  # each run against the one before it
    overall: Step | None  # the latest run against the first (3 runs or more)

    @property
    def latest_regression(self) -> bool:
        """The latest run is a regression against the one before it or against the first."""
        last = self.steps[-1:] + ([self.overall] if self.overall else [])
        return any(s.regression for s in last)


def cell_key(rec: Record, by: str = BY_CELL) -> str:
    if by == BY_AXES:
        return " · ".join(str(v) for v in axes_key(rec))
    return str(rec.get("repeat_of") or rec.get("cell_id"))


def label(rec: Record) -> str:
    head = " · ".join(str(rec.get(k)) for k in ("model", "backend", "device", "dtype"))
    load = f"batch {rec.get('batch')}" if rec.get("batch") is not None else ""
    if rec.get("concurrency") is not None or rec.get("request_rate") is not None:
        load = f"concurrency {rec.get('concurrency')} rate {rec.get('request_rate')}"
    sim = " (SIMULATED)" if rec.get("simulated") else ""
    return f"{head}, {load} seq {rec.get('seq')} prompt {rec.get('prompt_len')}{sim}"


def group_runs(rows: Sequence[tuple[str, Record]], by: str = BY_CELL) -> dict[str, list[Run]]:
    """Cell key -> its runs, oldest first. ``rows``: (sweep_dir, record), oldest first. The
    repeats of a cell in one sweep make one run; measured again in the same sweep directory,
    a cell starts a new run."""
    seen: dict[tuple[str, str], int] = {}
    runs: dict[tuple[str, str, str, int], Run] = {}
    for sweep_dir, rec in rows:
        cid = str(rec.get("cell_id"))
        nth = seen.get((sweep_dir, cid), 0)
        seen[(sweep_dir, cid)] = nth + 1
        ident = str(rec.get("repeat_of") or cid)
        key = (cell_key(rec, by), sweep_dir, ident, nth)
        runs.setdefault(key, Run(sweep_dir, [])).records.append(rec)
    out: dict[str, list[Run]] = {}
    for (key, *_), run in runs.items():
        out.setdefault(key, []).append(run)
    for cell_runs in out.values():
        cell_runs.sort(key=lambda r: r.finished_at)
    return out


def commits_between(repo: str | None, old: str | None, new: str | None) -> list[str] | None:
    """``git log --oneline old..new`` in ``repo`` (newest first); None when there is no
    repository, a commit is unknown, or both are the same."""
    if not repo or not old or not new or old == new:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", repo, "log", "--format=%h %s", f"{old}..{new}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [line if len(line) <= 72 else line[:71] + "…" for line in out.stdout.splitlines()]


def _env_notes(new: Run, old: Run) -> list[str]:
    diffs = envdiff.environment_diff(new.records, old.records)
    return [("other hardware: " if d.severity == envdiff.REFUSE else "") + d.text() for d in diffs]


def judge(old: Run, new: Run, metric: str, threshold_pct: float, repo: str | None = None) -> Step:
    """Run ``new`` against run ``old`` by the `--baseline` rules."""
    rows, _ = compare(new.records, old.records, threshold_pct)
    row = next((r for r in rows if r.match), None)
    verdict = "unmatched" if row is None else VERDICT_WORDS.get(row.verdict, row.verdict)
    (a, _), (b, _) = old.value(metric), new.value(metric)
    delta = (b - a) / a * 100.0 if a and b is not None else None
    return Step(
        old, new, verdict, "" if row is None else row.method, delta,
        commits_between(repo, old.commit, new.commit), _env_notes(new, old),
    )  # fmt: skip


def histories(
    rows: Sequence[tuple[str, Record]],
    metric: str = "output_tokens_per_s",
    threshold_pct: float = 5.0,
    by: str = BY_CELL,
    repo: str | None = None,
) -> list[CellHistory]:
    """Every cell's history (cells with one run have no steps), sorted by label."""
    out = []
    for key, runs in group_runs(rows, by).items():
        steps = [
            judge(a, b, metric, threshold_pct, repo) for a, b in zip(runs, runs[1:], strict=False)
        ]
        overall = judge(runs[0], runs[-1], metric, threshold_pct, repo) if len(runs) > 2 else None
        out.append(CellHistory(key, label(runs[-1].summary), runs, steps, overall))
    out.sort(key=lambda h: (h.label, h.key))
    return out
