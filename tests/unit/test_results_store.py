"""The results store (aggregate/store/db.py): one row per record, idempotent, safe with
concurrent writers (threads here; two processes in tests/integration/test_store_sweeps.py),
exported to Parquet; and the sweep's hook that writes it."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from aggregate.store import default_db
from aggregate.store.cli import main as store_cli
from aggregate.store.db import COLUMNS, add_records, count, export_parquet, read_rows
from jobs.files import write_record
from sweep.store import store_path, store_sweep
from tests.unit.store_records import cell_records, write_sweeps


def test_adding_a_sweep_twice_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    recs = cell_records("a" * 40, [100.0, 101.0, 99.0])
    assert add_records(db, tmp_path / "s1", recs) == 3
    assert add_records(db, tmp_path / "s1", recs) == 0
    assert add_records(db, tmp_path / "s1", recs[:1]) == 0
    assert count(db) == 3
    # The same records under another sweep directory are other runs.
    assert add_records(db, tmp_path / "s2", recs) == 3
    assert count(db) == 6


def test_a_row_carries_identity_commit_versions_device_and_host(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    add_records(db, tmp_path / "s1", cell_records("f" * 40, [50.0], host="node7"))
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT identity, cell_id, repeat, git_commit, git_dirty, torch, transformers, "
            "ray, sglang, host, device_name, output_tokens_per_s, sweep_dir FROM records"
        ).fetchone()
    assert row == ("cafe0000cafe0000", "cafe0000cafe0000-r0", 0, "f" * 40, False, "2.13.0",
                   "5.25.0", "2.60.0", None, "node7", "cpu-x", 50.0,
                   str((tmp_path / "s1").resolve()))  # fmt: skip
    [(_, rec)] = read_rows(db)
    assert "raw" not in rec and "config" not in rec  # bulky parts stay in the sweep
    assert rec["env"]["git_commit"] == "f" * 40


def test_threads_with_their_own_connections_lose_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "r.duckdb")
    errors: list[BaseException] = []

    def run(w: str) -> None:
        try:
            write_sweeps(db, str(tmp_path / w), 5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in "wxyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert count(db) == 4 * 5 * 4


@pytest.mark.parametrize("target", ["out", "out/x.parquet"])
def test_parquet_export_reads_back(tmp_path: Path, target: str) -> None:
    db = tmp_path / "r.duckdb"
    add_records(db, tmp_path / "s1", cell_records("a" * 40, [100.0, 101.0]))
    add_records(db, tmp_path / "s2", cell_records("b" * 40, [90.0]))
    out = export_parquet(db, tmp_path / target)
    assert out.suffix == ".parquet" and out.is_file()
    con = duckdb.connect()
    rows = con.execute(
        "SELECT cell_id, git_commit, output_tokens_per_s FROM read_parquet(?) ORDER BY 3",
        [str(out)],
    ).fetchall()
    names = [d[0] for d in con.execute("SELECT * FROM read_parquet(?)", [str(out)]).description]
    assert [r[2] for r in rows] == [90.0, 100.0, 101.0]
    assert {r[1] for r in rows} == {"a" * 40, "b" * 40}
    assert {c for c, _, _ in COLUMNS} | {"record_key", "sweep_dir", "record"} <= set(names)


def _sweep_dir(root: Path, commit: str, tps: list[float], day: int) -> Path:
    d = root / f"sweep{day}"
    for rec in cell_records(commit, tps, day=day):
        write_record(d / rec["cell_dir"], rec)
    return d


def test_store_subcommand_default_db_and_export(tmp_path: Path, capsys) -> None:
    s1 = _sweep_dir(tmp_path, "a" * 40, [100.0, 99.0], 1)
    assert store_cli(["store", str(s1)]) == 0
    assert store_cli(["store", str(s1)]) == 0
    out = capsys.readouterr().out
    assert "2 record(s), 2 new" in out and "2 record(s), 0 new" in out
    assert count(default_db(s1)) == 2
    pq = tmp_path / "shared" / "r.parquet"
    assert store_cli(["store", "--db", str(default_db(s1)), "--export-parquet", str(pq)]) == 0
    with duckdb.connect() as con:
        assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(pq)]).fetchone()[0] == 2
    assert store_cli(["store"]) == 2
    assert store_cli(["store", str(tmp_path / "nope")]) == 2


def test_sweep_hook_options_and_a_failure_only_warns(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "multirun" / "s"
    assert store_path(True, sweep) == tmp_path / "multirun" / "results.duckdb"
    assert store_path("true", sweep) == default_db(sweep)
    assert store_path(False, sweep) is None and store_path("false", sweep) is None
    assert store_path("/x/y.duckdb", sweep) == Path("/x/y.duckdb")
    rows = cell_records("a" * 40, [1.0])
    assert store_sweep(None, sweep, rows) is None
    bad = tmp_path / "a-directory.duckdb"
    bad.mkdir()
    assert store_sweep(bad, sweep, rows) is None  # never raises
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: results store {bad} not written")
    good = tmp_path / "ok.duckdb"
    assert store_sweep(good, sweep, rows) == good and count(good) == 1
