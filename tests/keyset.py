"""The shape of a sweep directory: which files it holds and which keys they carry.

What a layout change must leave alone, held as data: the files of the sweep directory (cell
directories by their names, which carry the cell id, so a changed identity shows), every key
path of every record (nested dicts too; values are not compared), the columns of results.csv
in their order, the keys of results.jsonl and the report's headings. ``python -m tests.keyset
SWEEP_DIR`` prints it as JSON (how the fixtures under tests/fixtures/layout/ were written).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

# Keys whose children are data, not schema (named by the host or the run).
_DATA_KEYS = ("env.",)


def key_paths(obj: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}{key}"
            out.add(path)
            if not any(path.startswith(p) for p in _DATA_KEYS):
                out |= key_paths(value, path + ".")
    return out


def sweep_shape(sweep_dir: Path) -> dict[str, Any]:
    files = sorted(str(p.relative_to(sweep_dir)) for p in sweep_dir.rglob("*") if p.is_file())
    records = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/record.json"))]
    lines = [
        json.loads(line)
        for line in (sweep_dir / "results.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with (sweep_dir / "results.csv").open() as f:
        columns = next(csv.reader(f))
    headings = [
        line for line in (sweep_dir / "report.md").read_text().splitlines() if line.startswith("#")
    ]
    return {
        "files": files,
        "record_keys": sorted(set().union(*(key_paths(r) for r in records))),
        "jsonl_keys": sorted(set().union(*(key_paths(r) for r in lines))),
        "csv_columns": columns,
        "report_headings": headings,
    }


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "layout"
# The sweeps the fixtures were written from (python launch.py -m ...), by fixture name.
SWEEPS = {
    "sim15": ["batch=1,2,4,8,16", "seq=64,128,256", "backend=sim"],
    "hf2": ["batch=1,2", "seq=8", "bench=quick"],
    "serve2": [
        "workload=serve",
        "concurrency=1,2",
        "seq=8",
        "prompt_len=16",
        "workload.num_requests=4",
    ],  # fmt: skip
}


def assert_same_shape(sweep_dir: Path, name: str) -> None:
    """The sweep's shape is the fixture ``name``'s (tests/fixtures/layout/NAME.json): the same
    files, record, jsonl and csv keys, csv columns and report headings in their order."""
    got = sweep_shape(sweep_dir)
    want = json.loads((FIXTURES / f"{name}.json").read_text())
    for part in want:
        if part in ("csv_columns", "report_headings"):
            assert got[part] == want[part], f"{name}: {part}"
        else:
            missing = sorted(set(want[part]) - set(got[part]))
            extra = sorted(set(got[part]) - set(want[part]))
            assert not missing and not extra, f"{name}: {part}: missing {missing}, extra {extra}"


if __name__ == "__main__":
    print(json.dumps(sweep_shape(Path(sys.argv[1])), indent=1))
