"""What the end of a sweep costs its driver: the outputs of a finished sweep, made again.

    python bench/end_outputs.py SWEEP_DIR [--repeat 3] [--store]

SWEEP_DIR is a finished sweep (e.g. one that `bench/scale_driver.py` made, or any sweep of
record.json files). Each repeat copies it to a new temporary directory, hands its records to
the sweep's results as the driver does when they come back (:meth:`SweepResults.add`: their
results.jsonl lines and summary rows), and then times :meth:`SweepResults.finish` alone:
results.jsonl put in place, results.csv, report.md, report.html, pareto/slo csv (plots off),
and with ``--store`` the results store beside it (a new database each repeat) and report.html's
trend panel from it. Printed: wall and CPU (user + system) per cell of ``finish``, and a
sha256 of each output file, so that two versions of the code can be checked to write the same
bytes (the store: a sha256 of its rows' values, in order, without the sweep's path, the
row's key made of it and the time it was added; its record JSON compared as values).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUTPUTS = ("results.jsonl", "results.csv", "report.md", "report.html", "pareto.csv", "slo.csv")


def _store_digest(db: Path) -> str:
    """The store's rows, in order, as values: its paths (the temporary sweep's), the time
    each was added and its key (made of the path) left out, its record JSON parsed."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [r[0] for r in con.execute("DESCRIBE records").fetchall()]
        keep = [c for c in cols if c not in ("record_key", "sweep_dir", "added_at")]
        rows = con.execute(
            f"SELECT {', '.join(f'{c!r}'.replace(chr(39), chr(34)) for c in keep)} FROM records "
            "ORDER BY identity, started_at"
        ).fetchall()
    finally:
        con.close()
    at = keep.index("record")
    values = [(*r[:at], json.loads(r[at]), *r[at + 1 :]) for r in rows]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def once(src: Path, store: bool) -> tuple[float, float, int, dict[str, str]]:
    from aggregate.reader import read_records
    from sweep.finish import SweepResults

    tmp = Path(tempfile.mkdtemp(prefix="end-outputs-"))
    try:
        sweep = tmp / "sweep"
        shutil.copytree(src, sweep, ignore=shutil.ignore_patterns(*OUTPUTS, ".results.*"))
        records, _ = read_records(sweep)
        results = SweepResults(sweep)
        results.register([str(r["cell_dir"]) for r in records])
        for rec in records:
            results.add(rec)
        db = tmp / "results.duckdb" if store else None
        t = os.times()
        wall = time.perf_counter()
        results.finish(plots=False, store=db)
        wall = time.perf_counter() - wall
        u = os.times()
        cpu = (u.user - t.user) + (u.system - t.system)
        digests = {
            name: hashlib.sha256((sweep / name).read_bytes()).hexdigest()[:16]
            for name in OUTPUTS
            if (sweep / name).is_file()
        }
        if db is not None and db.is_file():
            digests["store"] = _store_digest(db)
        return wall, cpu, len(records), digests
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", action="store_true", help="also the results store")
    a = ap.parse_args()
    devnull = open(os.devnull, "w")
    for i in range(a.repeat):
        out, sys.stdout = sys.stdout, devnull  # finish's summary table: not timed output
        try:
            wall, cpu, n, digests = once(a.sweep_dir, a.store)
        finally:
            sys.stdout = out
        print(f"run {i + 1}: {n} cells, finish {wall / n * 1000:.3f} ms wall, "
              f"{cpu / n * 1000:.3f} ms CPU per cell", flush=True)  # fmt: skip
    for name, digest in digests.items():
        print(f"  {name}: {digest}")


if __name__ == "__main__":
    main()
