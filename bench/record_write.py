"""What a sweep's driver pays per record for its file: the atomic write with and without an
fsync, a batch with one filesystem sync, and the record's JSON (the file's text and its
results.jsonl line).

    python bench/record_write.py [--dir DIR] [--files 1000] [--batch 8]

The record is a real one: the simulator's outcome of one cell (llama3_8b on a declared NPU),
built by the driver's own code. Files go to a new directory under ``--dir`` (default: the
temporary directory), removed at the end; on ext4 without a journal, run it where nothing was
deleted in the minutes before (docs/benchmarks.md section 4). Times are per file or per
record: wall, and the process's CPU (user + system).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sample_record() -> dict[str, Any]:
    from jobs.config import from_values
    from jobs.identity import PlannedCell
    from jobs.record import build_record
    from workers.run import run_planned

    values = {"backend": {"name": "sim", "sim": {"noise": 0.0, "time_scale": 0.0}},
              "device": {"name": "npu"}, "model": {"name": "llama3_8b"},
              "batch": 8, "seq": 16, "prompt_len": 32}  # fmt: skip
    cell = from_values(values)
    planned = PlannedCell.of(cell)
    return build_record(planned, run_planned(planned))


def timed(fn: Any, n: int) -> tuple[float, float]:
    """(wall, CPU) ms per call of ``fn`` over ``n`` calls."""
    t0, c0 = time.perf_counter(), os.times()
    for i in range(n):
        fn(i)
    c1 = os.times()
    return ((time.perf_counter() - t0) / n * 1e3,
            ((c1.user - c0.user) + (c1.system - c0.system)) / n * 1e3)  # fmt: skip


def main() -> None:
    from jobs.files import atomic_write_bytes, record_json, record_line, sync_filesystem

    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    rec = sample_record()
    text = record_json(rec)
    data = text.encode()
    root = tempfile.mkdtemp(prefix="record-write-", dir=a.dir)
    try:

        def write(sync: bool, tag: str) -> Any:
            def one(i: int) -> None:
                d = os.path.join(root, f"{tag}{i}")
                os.mkdir(d)
                atomic_write_bytes(os.path.join(d, "record.json"), data, sync=sync)
                if not sync and a.batch and (i + 1) % a.batch == 0 and tag == "b":
                    sync_filesystem(root)

            return one

        print(f"record: {len(data)} bytes; {a.files} files per way, under {root}")
        for name, sync, tag in (("atomic write, fsync each", True, "f"),
                                ("atomic write, no fsync", False, "n"),
                                (f"atomic write, one syncfs per {a.batch}", False, "b")):  # fmt: skip
            wall, cpu = timed(write(sync, tag), a.files)
            print(f"{name}: {wall:.3f} ms wall, {cpu:.3f} ms CPU per file")
        n = 3000
        for name, fn in (
            ("record_json (C encoder, a value per line)", lambda: record_json(rec)),
            ("json.dumps indent=1 (Python encoder)", lambda: json.dumps(rec, indent=1)),
            ("record_line from that text", lambda: record_line(text)),
            ("json.dumps one line", lambda: json.dumps(rec, ensure_ascii=False)),
        ):
            print(f"{name}: {timeit.timeit(fn, number=n) / n * 1e3:.3f} ms per record")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
