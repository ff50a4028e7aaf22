"""The end of a sweep: gather this sweep's records, write results and reports, summarise."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from cells.files import RecordError, read_record

log = logging.getLogger(__name__)


def finish_sweep(
    sweep_dir: Path, cell_dirs: list[Path], interrupted: bool = False, plots: bool = True
) -> list[dict]:
    """Write results.jsonl (+ csv, report, plots) for the cells of this sweep and print a
    summary. Cells without a readable record are listed as missing; a sweep that produced no
    record at all (e.g. it could not start) writes nothing."""
    from aggregate import summary_table, write_outputs

    records, missing = [], []
    for d in cell_dirs:
        try:
            records.append(read_record(d))
        except RecordError:
            missing.append(d.name)
    if not records:
        print(
            f"sweep {'interrupted' if interrupted else 'ended'}: no cell has a record",
            file=sys.stdout,
        )
        return records
    unreadable = [(str(sweep_dir / m / "record.json"), "missing or cut short") for m in missing]
    paths = write_outputs(sweep_dir, records, unreadable, plots=plots)
    out = sys.stdout
    print(summary_table(records), file=out)
    bad = [r for r in records if r.get("status") != "ok"]
    state = "interrupted" if interrupted else "finished"
    print(
        f"sweep {state}: {len(records) - len(bad)} ok, {len(bad)} not ok, "
        f"{len(missing)} missing of {len(cell_dirs)} cells; results in {paths.get('results.jsonl', sweep_dir)}",
        file=out,
    )
    for r in bad:
        err = r.get("error") or {}
        print(
            f"  {r.get('status', '?'):6} {r.get('cell_dir')}: {err.get('message', '')[:160]}",
            file=out,
        )
    for m in missing:
        print(f"  missing {m}: run the same command again to finish it", file=out)
    return records
