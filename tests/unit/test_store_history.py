"""History from the results store (aggregate/store/history.py, text.py, trend.py, cli.py):
three sweeps at three commits, a 30% drop in output tokens/s planted at the third."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from aggregate.outputs import write_outputs
from aggregate.store.cli import main as cli
from aggregate.store.db import add_records, read_rows
from aggregate.store.history import BY_AXES, cell_key, histories
from aggregate.store.trend import TITLE
from tests.unit.store_records import cell_records

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


@pytest.fixture
def three_commits(tmp_path: Path) -> Path:
    db = tmp_path / "results.duckdb"
    add_records(db, tmp_path / "s1", cell_records(C1, [100.0, 101.0, 99.0], day=1))
    add_records(db, tmp_path / "s2", cell_records(C2, [100.5, 99.5, 100.8], day=2))
    add_records(db, tmp_path / "s3", cell_records(C3, [70.0, 70.5, 69.8], day=3))  # -30%
    # Another cell, steady all along: never a regression.
    for day, c in enumerate((C1, C2, C3), 1):
        add_records(db, tmp_path / f"s{day}", cell_records(c, [50.0, 50.5, 49.5], "beef" * 4, day))
    return db


def test_planted_regression_is_found_and_noise_is_noise(three_commits: Path) -> None:
    hs = {h.key: h for h in histories(read_rows(three_commits))}
    h = hs["cafe0000cafe0000"]
    assert [r.commit for r in h.runs] == [C1, C2, C3]
    assert [s.verdict for s in h.steps] == ["noise", "regression"]
    assert all(s.method == "95% CI" for s in h.steps)  # repeats: the intervals decide
    assert h.steps[1].delta_pct == pytest.approx(-30.1, abs=0.2)
    assert h.overall is not None and h.overall.regression and h.latest_regression
    value, iv = h.runs[2].value("output_tokens_per_s")
    assert value == pytest.approx(70.1, abs=0.01) and iv is not None and iv.n == 3
    steady = hs["beefbeefbeefbeef"]
    assert [s.verdict for s in steady.steps] == ["noise", "noise"]
    assert not steady.latest_regression


def test_same_verdict_as_the_baseline_gate(three_commits: Path) -> None:
    from aggregate.baseline.compare import compare

    rows = (
        read_rows(three_commits, {"git_commit": C3}),
        read_rows(three_commits, {"git_commit": C2}),
    )
    new, old = ([r for _, r in side] for side in rows)
    compared, n_regressions = compare(new, old, 5.0)
    assert n_regressions == 1  # the planted cell, and only it, as --baseline says


def test_history_command_exit_codes_and_filters(three_commits: Path, capsys) -> None:
    db = str(three_commits)
    assert cli(["history", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "-30.1% regression (95% CI)" in out and "+0.3% noise (95% CI)" in out
    assert "latest vs first:" in out and "1 cell(s) whose latest run is a regression" in out
    assert cli(["history", "--db", db, "--fail-on-regression"]) == 3
    assert cli(["history", "--db", db, "--cell", "beef", "--fail-on-regression"]) == 0
    assert cli(["history", "--db", db, "--batch", "4", "--model", "tiny"]) == 0
    assert cli(["history", "--db", db, "--batch", "8"]) == 2  # nothing matches
    assert cli(["history", "--db", str(three_commits.parent / "none.duckdb")]) == 2
    assert cli(["history", "--db", db, "--metric", "nope"]) == 2
    out_md = three_commits.parent / "history.md"
    assert cli(["history", "--db", db, "--by", BY_AXES, "-o", str(out_md)]) == 0
    assert "regression" in out_md.read_text()


def test_nothing_compared_is_exit_4(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    add_records(db, tmp_path / "s1", cell_records(C1, [10.0]))
    assert cli(["history", "--db", str(db), "--fail-on-regression"]) == 4


def test_other_hardware_is_noted(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    add_records(db, tmp_path / "s1", cell_records(C1, [10.0, 10.1], day=1))
    add_records(db, tmp_path / "s2", cell_records(C2, [10.0, 10.1], day=2, device_name="cpu-y"))
    [h] = histories(read_rows(db))
    assert any(n.startswith("other hardware: device_name") for n in h.steps[0].env_notes)


def test_trend_panel_in_report_html(three_commits: Path, tmp_path: Path) -> None:
    latest = [r for _, r in read_rows(three_commits, {"git_commit": C3})]
    out = tmp_path / "s3"
    write_outputs(out, latest, plots=False, trend_db=three_commits)
    page = (out / "report.html").read_text()
    assert TITLE in page and page.count("<svg") == 2 and 'fill="#c62828"' in page
    assert "-30.1% regression" in page
    # No store, or a store without history of these cells: no panel, same report.
    write_outputs(out, latest, plots=False, trend_db=tmp_path / "absent.duckdb")
    assert TITLE not in (out / "report.html").read_text()
    lone = tmp_path / "lone.duckdb"
    add_records(lone, out, latest)
    write_outputs(out, latest, plots=False, trend_db=lone)
    assert TITLE not in (out / "report.html").read_text()
    # The panel reads only the rows of cells with a history (min_rows=2), counted by DuckDB.
    keys = sorted({cell_key(r) for r in latest})
    for db in (lone, three_commits):
        rows = read_rows(db, identities=keys)
        per_cell = Counter(cell_key(r) for _, r in rows)  # repeats share their cell's key
        fewest, most = min(per_cell.values()), max(per_cell.values())
        assert read_rows(db, identities=keys, min_rows=fewest) == rows
        assert read_rows(db, identities=keys, min_rows=most + 1) == []
    rows = read_rows(three_commits, identities=keys)
    one_each = {cell_key(r): (d, r) for d, r in rows}  # one row of each cell
    single = tmp_path / "single.duckdb"
    for d, r in one_each.values():
        add_records(single, d, [r])
    assert len(read_rows(single, identities=keys)) == len(keys)
    assert read_rows(single, identities=keys, min_rows=2) == []


class _Key(str):
    """A cell key that counts its comparisons."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _Key.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_trend_panel_looks_each_cell_up_once(monkeypatch, tmp_path: Path) -> None:
    """The panel's cells are found by hashing, not by scanning a list: a 100,000-cell sweep's
    end spent minutes here (docs/benchmarks.md §4)."""
    from types import SimpleNamespace

    from aggregate.store import trend

    n = 2000
    keys = [_Key(f"cell-{i:05d}") for i in range(n)]
    monkeypatch.setattr(trend, "cell_key", lambda r: r["k"])
    asked = {}
    monkeypatch.setattr(trend, "read_rows", lambda db, **kw: asked.update(kw) or [])
    monkeypatch.setattr(
        trend, "histories", lambda rows, m, t: [SimpleNamespace(key=k, steps=[]) for k in keys]
    )
    _Key.compared = 0
    assert trend.trend_panel(tmp_path / "db", [{"k": k} for k in keys]) is None  # no steps
    assert _Key.compared <= 4 * n, _Key.compared  # a list scan: ~n * n / 2
    assert asked["min_rows"] == 2 and sorted(asked["identities"]) == sorted(keys)
