"""`python -m aggregate store ...` and `python -m aggregate history ...`.

store: exit 0 stored (or exported); 1 the store could not be written (locked too long, a
database error); 2 usage error.
history: exit 0; 2 usage error (no store, nothing matches the filter); with
--fail-on-regression, 3 when a cell's latest run is a regression against the run before it or
against its first run, 4 when no cell has two runs (nothing was compared). 3 and 4 are the
codes of `--baseline`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from aggregate.answers.confidence import CI_METRICS
from aggregate.reader import read_records as load_records
from aggregate.store import default_db
from aggregate.store.db import StoreBusy, add_records, export_parquet, read_rows
from aggregate.store.history import BY_AXES, BY_CELL, histories
from aggregate.store.text import history_markdown, summary_line
from jobs.values import finite_float

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REGRESSION, EXIT_NOTHING_COMPARED = 0, 1, 2, 3, 4
# The store of sweeps under the default hydra.sweep.dir (multirun/<sweep name>).
DEFAULT_DB = Path("multirun") / "results.duckdb"
FILTERS = ("model", "backend", "device", "dtype", "batch", "seq", "prompt_len")


def _error(prog: str, msg: str, code: int = EXIT_USAGE) -> int:
    print(f"python -m aggregate {prog}: error: {msg}", file=sys.stderr)
    return code


def store_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aggregate store",
        description="Add the records under each SWEEP_DIR to the results store (DuckDB); "
        "adding a sweep again adds nothing.",
    )
    p.add_argument("sweep_dirs", nargs="*", metavar="SWEEP_DIR")
    p.add_argument("--db", metavar="PATH", help="the store (default: results.duckdb beside "
                   f"each SWEEP_DIR; with no SWEEP_DIR, {DEFAULT_DB})")  # fmt: skip
    p.add_argument("--export-parquet", metavar="DIR_OR_FILE",
                   help="then write the whole store as Parquet (a *.parquet file, or "
                   "results.parquet in a directory)")  # fmt: skip
    return p


def store_main(argv: Sequence[str]) -> int:
    args = store_parser().parse_args(argv)
    if not args.sweep_dirs and not args.export_parquet:
        return _error("store", "give SWEEP_DIR(s) to add, or --export-parquet")
    for d in args.sweep_dirs:
        if not Path(d).is_dir():
            return _error("store", f"sweep directory {d!r} is not a directory")
    db = Path(args.db) if args.db else None
    try:
        for d in args.sweep_dirs:
            records, unreadable = load_records(d)
            for path, reason in unreadable:
                print(f"record unreadable, not stored: {path}: {reason}", file=sys.stderr)
            target = db or default_db(d)
            new = add_records(target, d, records)
            print(f"store: {d}: {len(records)} record(s), {new} new -> {target}")
        if args.export_parquet:
            source = db or (default_db(args.sweep_dirs[0]) if args.sweep_dirs else DEFAULT_DB)
            if not source.is_file():
                return _error("store", f"no results store at {str(source)!r}")
            print(f"store: exported {source} -> {export_parquet(source, args.export_parquet)}")
    except (StoreBusy, duckdb.Error, OSError) as exc:
        return _error("store", str(exc), EXIT_FAILED)
    return EXIT_OK


def history_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aggregate history",
        description="Each cell's runs in the results store over time, with their 95%% "
        "intervals, the commits between, and the --baseline verdict of each run against the "
        "one before it and of the latest against the first.",
    )
    p.add_argument("--db", metavar="PATH", default=str(DEFAULT_DB),
                   help=f"the store (default {DEFAULT_DB})")  # fmt: skip
    for key in FILTERS:
        kind = str if key in ("model", "backend", "device", "dtype") else int
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, help="only these cells")
    p.add_argument("--cell", metavar="ID", help="only this cell id (a prefix will do)")
    p.add_argument("--metric", default="output_tokens_per_s",
                   help="the figure shown (default output_tokens_per_s); the verdict is "
                   "--baseline's (output tokens/s, E2E p50, J/token)")  # fmt: skip
    p.add_argument("--threshold", type=finite_float, default=5.0, metavar="PCT",
                   help="as for --baseline (default 5)")  # fmt: skip
    p.add_argument("--by", choices=(BY_CELL, BY_AXES), default=BY_CELL,
                   help="a cell is its identity (cell id; default) or its axes (model, "
                   "backend, device, dtype, batch, seq, prompt_len: the --baseline fallback)")  # fmt: skip
    p.add_argument("--repo", default=".", metavar="DIR",
                   help="git repository whose log lists the commits between runs (default .)")  # fmt: skip
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 3 when a cell's latest run is a regression, 4 when nothing "
                   "had two runs to compare")  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="also write the Markdown here")
    return p


def history_main(argv: Sequence[str]) -> int:
    args = history_parser().parse_args(argv)
    if args.metric not in CI_METRICS:
        return _error("history", f"--metric {args.metric!r}: one of {', '.join(CI_METRICS)}")
    if args.threshold < 0:
        return _error("history", f"--threshold {args.threshold:g} must be >= 0")
    if not Path(args.db).is_file():
        return _error("history", f"no results store at {args.db!r} (--db PATH)")
    where = {k: getattr(args, k) for k in FILTERS}
    try:
        rows = read_rows(args.db, where)
    except (StoreBusy, duckdb.Error) as exc:
        return _error("history", str(exc), EXIT_FAILED)
    if args.cell:
        rows = [(d, r) for d, r in rows if str(r.get("repeat_of") or r.get("cell_id")).startswith(args.cell)]  # fmt: skip
    if not rows:
        return _error("history", f"no stored record in {args.db!r} matches the filter")
    hs = histories(rows, args.metric, args.threshold, args.by, args.repo)
    text = history_markdown(hs, args.metric)
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if not args.fail_on_regression:
        return EXIT_OK
    if not any(h.steps for h in hs):
        print(f"error: {summary_line(hs)}: nothing was compared", file=sys.stderr)
        return EXIT_NOTHING_COMPARED
    return EXIT_REGRESSION if any(h.latest_regression for h in hs) else EXIT_OK


def main(argv: Sequence[str]) -> int:
    """``argv[0]`` is the subcommand (store or history)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return store_main(argv[1:]) if argv[0] == "store" else history_main(argv[1:])
