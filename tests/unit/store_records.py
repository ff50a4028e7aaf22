"""Records for the results-store tests: one cell measured at a commit, with repeats."""

from __future__ import annotations

import itertools
from typing import Any

from aggregate.store.db import add_records
from jobs.record import FLAT_KEYS, SCHEMA_VERSION

_CLOCK = itertools.count()
BATCH, SEQ = 4, 32


def cell_records(
    commit: str,
    tokens_per_s: list[float],
    cell: str = "cafe0000cafe0000",
    day: int = 1,
    host: str = "box",
    device_name: str = "cpu-x",
) -> list[dict[str, Any]]:
    """One record per repeat of ``cell`` at ``commit`` (output tokens/s as given)."""
    out = []
    for k, tps in enumerate(tokens_per_s):
        n = next(_CLOCK)
        rec: dict[str, Any] = dict.fromkeys(FLAT_KEYS)
        e2e = BATCH * SEQ / tps
        rec.update(
            schema_version=SCHEMA_VERSION, cell_id=f"{cell}-r{k}", repeat=k, repeat_of=cell,
            cell_dir=f"tiny-hf-cpu-b{BATCH}-s{SEQ}-p16-{cell[:8]}-r{k}", status="ok",
            simulated=False, batch=BATCH, seq=SEQ, prompt_len=16, backend="hf", model="tiny",
            dtype="float32", device="cpu", device_name=device_name, workload="static",
            output_tokens_per_s=tps, e2e_s_p50=e2e, e2e_s_mean=e2e, e2e_cv=0.01, flags=[],
            started_at=f"2026-12-{day:02d}T10:00:{n % 60:02d}.{n:03d}+00:00",
            finished_at=f"2026-12-{day:02d}T10:01:{n % 60:02d}.{n:03d}+00:00",
            raw={"e2e_s": [e2e] * 3},
            config={"batch": BATCH},
        )  # fmt: skip
        rec["env"] = {"git_commit": commit, "git_dirty": False, "host": host,
                      "torch": "2.13.0", "transformers": "5.25.0", "ray": "2.60.0"}  # fmt: skip
        out.append(rec)
    return out


def write_sweeps(db: str, base: str, sweeps: int) -> None:
    """``sweeps`` sweeps of one cell (4 repeats each) under ``base``, added to the store
    ``db`` one sweep at a time: a writer of the concurrency tests."""
    for i in range(sweeps):
        recs = cell_records(f"{i:040d}", [10.0 + i, 11.0, 12.0, 13.0], cell=f"{base}{i:04d}")
        add_records(db, f"{base}/sweep{i}", recs)
