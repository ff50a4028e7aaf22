"""What a sweep's driver pays per record for its file: the atomic write with and without an
fsync, a batch with one filesystem sync, and the record's JSON (the file's text and its
results.jsonl line, by orjson and by json where orjson is not installed), and what it pays to
send a cell to its worker (pickled as Ray does: the planned cell, or its plain values).

    python bench/record_write.py [--dir DIR] [--files 1000] [--batch 8]

The record is a real one: the simulator's outcome of one cell (llama3_8b on a declared NPU),
built by the driver's own code. Files go to a new directory under ``--dir`` (default: the
temporary directory), removed at the end; on ext4 without a journal, run it where nothing was
deleted in the minutes before (docs/benchmarks.md section 4). Times are per file or per
record: wall, and the process's CPU (user + system) for the files; for the in-memory pieces
(JSON, rows, pickles, YAML keys) the best of 5 repeats of ``timeit``.
"""

from __future__ import annotations

import argparse
import itertools
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
RECORD: dict[str, Any] = {}
# The override lines bench/scale_driver.py's jobs share, besides their batch and seq.
SCALE_LINES = ["backend=sim", "device=npu", "model=llama3_8b", "bench=quick", "prompt_len=32",
               "backend.sim.noise=0", "backend.sim.time_scale=0"]  # fmt: skip


def sample_planned() -> Any:
    from jobs.config import from_values
    from jobs.identity import PlannedCell

    values = {"backend": {"name": "sim", "sim": {"noise": 0.0, "time_scale": 0.0}},
              "device": {"name": "npu"}, "model": {"name": "llama3_8b"},
              "batch": 8, "seq": 16, "prompt_len": 32}  # fmt: skip
    return PlannedCell.of(from_values(values))


def sample_record() -> dict[str, Any]:
    from jobs.record import build_record
    from workers.run import run_planned

    planned = sample_planned()
    return build_record(planned, run_planned(planned))


def without_orjson(fn: Any) -> Any:
    """``fn(the record)`` where orjson is not installed (the json fallback)."""
    from jobs import files

    saved, files.orjson = files.orjson, None
    try:
        return fn(RECORD)
    finally:
        files.orjson = saved


def timed(fn: Any, n: int) -> tuple[float, float]:
    """(wall, CPU) ms per call of ``fn`` over ``n`` calls."""
    t0, c0 = time.perf_counter(), os.times()
    for i in range(n):
        fn(i)
    c1 = os.times()
    return ((time.perf_counter() - t0) / n * 1e3,
            ((c1.user - c0.user) + (c1.system - c0.system)) / n * 1e3)  # fmt: skip


def mkstemp_write(path: str, data: bytes) -> None:
    """The atomic write as it was before stop 36 (no fsync): a random temp name from
    mkstemp, a file object, a chmod to 0644, the rename; the reference for the new one."""
    parent, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    import marshal
    import pickle

    import cloudpickle

    from jobs.files import atomic_write_bytes, record_json, record_line, sync_filesystem
    from jobs.identity import PlannedCell
    from jobs.record import flat_row
    from jobs.values import plain
    from sweep.finish import summary_row
    from sweep.records import overrides_yaml

    global RECORD

    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    rec = RECORD = sample_record()
    text = record_json(rec)
    data = text.encode()
    root = tempfile.mkdtemp(prefix="record-write-", dir=a.dir)
    try:

        def write(sync: bool, tag: str) -> Any:
            def one(i: int) -> None:
                d = os.path.join(root, f"{tag}{i}")
                os.mkdir(d)
                if tag == "m":
                    mkstemp_write(os.path.join(d, "record.json"), data)
                else:
                    atomic_write_bytes(os.path.join(d, "record.json"), data, sync=sync)
                if not sync and a.batch and (i + 1) % a.batch == 0 and tag == "b":
                    sync_filesystem(root)

            return one

        print(f"record: {len(data)} bytes; {a.files} files per way, under {root}")
        for name, sync, tag in (("atomic write, fsync each", True, "f"),
                                ("atomic write, no fsync", False, "n"),
                                ("the same before stop 36 (mkstemp, chmod)", False, "m"),
                                (f"atomic write, one syncfs per {a.batch}", False, "b")):  # fmt: skip
            wall, cpu = timed(write(sync, tag), a.files)
            print(f"{name}: {wall:.3f} ms wall, {cpu:.3f} ms CPU per file")
        n = 3000
        for name, fn in (
            ("record_json (orjson, indented)", lambda: record_json(rec)),
            ("record_line (orjson, compact)", lambda: record_line(rec)),
            ("record_json without orjson (json, indented)", lambda: without_orjson(record_json)),
            ("record_line without orjson (json's C encoder)", lambda: without_orjson(record_line)),
            ("flat_row: the record's flat keys", lambda: flat_row(rec)),
            ("summary_row: what the reports keep of it", lambda: summary_row(rec, {})),
        ):
            print(
                f"{name}: {min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e3:.4f} ms per record"
            )
        planned = sample_planned()
        sent = planned.wire(plain(planned.cell))
        # A job's override lines as a sweep over a range has them: its own batch=N each time.
        jobs_lines = (
            [f"batch={b}", "seq=16", *SCALE_LINES] for b in itertools.count(1)
        )  # fmt: skip
        for name, fn in (
            ("plain(cell): the cell's values (made once per cell)", lambda: plain(planned.cell)),
            ("pickle the planned cell", lambda: pickle.dumps(planned, protocol=5)),
            ("pickle its wire form (plain values)", lambda: pickle.dumps(sent, protocol=5)),
            ("cloudpickle (Ray's) the planned cell", lambda: cloudpickle.dumps(planned)),
            ("cloudpickle its wire form", lambda: cloudpickle.dumps(sent)),
            ("worker: rebuild the cell from the wire form", lambda: PlannedCell.unwire(sent)),
            (
                "overrides.yaml of a job's 9 override lines (its batch=N new)",
                lambda: overrides_yaml(next(jobs_lines)),
            ),
            (
                "YAML memo keys of the cell's entries: repr (before stop 36)",
                lambda: [repr(v) for v in sent[0].values()],
            ),
            (
                "YAML memo keys of the cell's entries: marshal",
                lambda: [marshal.dumps(v) for v in sent[0].values()],
            ),
        ):
            print(f"{name}: {min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e3:.4f} ms per cell")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
