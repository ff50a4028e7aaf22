"""What handing a cell's files to the sweep's writer process costs the driver (sweep/writer.py):
the CPU of the sending process per cell (a job's two .hydra files, then its record of about
15 KB, each one message), against writing the same files itself (jobs.files), on one
filesystem. The writer's own work runs in its process, on another core.

    python bench/writer_send.py [--cells 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.files import RecordSync, write_hydra_files, write_record_files  # noqa: E402
from sweep.writer import FileWriter  # noqa: E402

RECORD = json.dumps({f"key{i}": "x" * 60 for i in range(200)}, indent=2) + "\n"  # ~15 KB
CONFIG = b"batch: 1\n" * 70  # ~600 B
OVERRIDES = b"- batch=1\n- seq=8\n"


def one_way(root: str, cells: int, writer: bool) -> tuple[float, float]:
    """(driver CPU ms per cell, wall ms per cell until every file is written)."""
    os.makedirs(root)
    files = [("config.yaml", CONFIG), ("overrides.yaml", OVERRIDES)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if writer:
        w = FileWriter(root)
        for i in range(cells):
            w.job_files(f"{root}/c{i}", files)
            w.record(f"{root}/c{i}", RECORD, {})
        cpu = time.process_time() - cpu0
        w.close()
    else:
        sync = RecordSync(root)
        for i in range(cells):
            write_hydra_files(f"{root}/c{i}", files)
            write_record_files(f"{root}/c{i}", RECORD, {}, sync)
        sync.flush()
        cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return cpu / cells * 1e3, wall / cells * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--dir", help="where the files go (default: the temporary directory)")
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="writer-send-", dir=a.dir)
    try:
        for name, writer in (
            ("driver", False),
            ("writer", True),
            ("driver", False),
            ("writer", True),
        ):
            cpu, wall = one_way(
                os.path.join(base, f"{name}-{time.monotonic_ns()}"), a.cells, writer
            )
            print(f"{name:7} {a.cells} cells: driver CPU {cpu:.4f} ms per cell, "
                  f"wall {wall:.4f} ms per cell until all written")  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
