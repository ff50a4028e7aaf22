"""`python -m aggregate SWEEP_DIR [--baseline OLD_DIR]`: rebuild a sweep's outputs.

Exit codes: 0 every cell ok; 1 a cell not ok or a record unreadable; 2 usage error;
3 a regression against --baseline, or cells of the baseline missing from the new sweep;
4 --baseline compared nothing (no cell matched). 3 and 4 are checked last and win over 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aggregate.compare import OLD_ONLY, compare, compare_markdown
from aggregate.load import load_records
from aggregate.outputs import write_outputs
from aggregate.summary import summary_table
from cells.files import atomic_write_text

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_OK = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3
EXIT_NOTHING_COMPARED = 4
COMPARE_MD = "compare.md"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aggregate",
        description="Rebuild results.jsonl, results.csv, report.md and plots/ from the "
        "record.json files under SWEEP_DIR, and print a summary.",
        epilog="exit codes: 0 all cells ok; 1 a cell not ok or a record unreadable; "
        "2 usage error; 3 a regression against --baseline or baseline cells missing; "
        "4 --baseline compared nothing",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="directory searched for record.json")
    p.add_argument("--baseline", metavar="OLD_DIR", help="compare cell by cell with this sweep")
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        metavar="PCT",
        help="smallest change in %% that counts as a regression (default 5; the cells' own "
        "noise, 2 x max(E2E CV), widens it)",
    )
    p.add_argument("--quiet", action="store_true", help="do not print the summary tables")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return p


def _usage_error(msg: str) -> int:
    print(f"python -m aggregate: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _check_dir(path: str, what: str) -> str | None:
    p = Path(path)
    if not p.exists():
        return f"{what} {path!r} does not exist"
    if not p.is_dir():
        return f"{what} {path!r} is not a directory"
    return None


def _baseline(args: argparse.Namespace, records: list) -> int | None:
    """Compare with --baseline: the exit code it asks for (0 when the gate passes), None
    when the baseline has no records (a usage error)."""
    old, old_unreadable = load_records(args.baseline)
    if not old:
        return None
    for path, reason in old_unreadable:
        print(f"baseline record unreadable, not compared: {path}: {reason}", file=sys.stderr)
    rows, n_regressions = compare(records, old, args.threshold)
    text = compare_markdown(rows)
    path = atomic_write_text(Path(args.sweep_dir) / COMPARE_MD, text)
    if not args.quiet:
        print()
        print(text)
    matched = sum(bool(r.match) for r in rows)
    gone = [r for r in rows if r.verdict == OLD_ONLY]
    print(
        f"compare: {matched} matched cell(s), {n_regressions} regression(s) beyond "
        f"max({args.threshold:g}%, noise), {len(gone)} baseline cell(s) missing, "
        f"against {args.baseline} -> {path}"
    )
    for r in gone:
        print(f"  missing in new: {r.label} batch {r.batch} seq {r.seq} prompt {r.prompt_len}")
    if not matched:
        print(
            f"error: no cell of {args.sweep_dir} matches a cell of {args.baseline}: "
            "the comparison checked nothing",
            file=sys.stderr,
        )
        return EXIT_NOTHING_COMPARED
    return EXIT_REGRESSION if n_regressions or gone else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    problem = _check_dir(args.sweep_dir, "sweep directory")
    if args.baseline is not None:
        problem = problem or _check_dir(args.baseline, "baseline directory")
    if problem:
        return _usage_error(problem)
    if args.threshold < 0:
        return _usage_error(f"--threshold {args.threshold:g} must be >= 0")

    records, unreadable = load_records(args.sweep_dir)
    if not records and not unreadable:
        return _usage_error(f"no record.json files under {args.sweep_dir!r}")
    written = write_outputs(args.sweep_dir, records, unreadable, plots=not args.no_plots)
    not_ok = [r for r in records if r.get("status") != "ok"]
    if not args.quiet:
        print(summary_table(records))
        for path, reason in unreadable:
            print(f"UNREADABLE {path}: {reason}")
        print(f"\n{len(records)} cells, {len(not_ok)} not ok, {len(unreadable)} unreadable")
        print(f"wrote {written['report.md']} (+ {len(written) - 1} files)")
    code = EXIT_NOT_OK if not_ok or unreadable else EXIT_OK

    if args.baseline is not None:
        gate = _baseline(args, records)
        if gate is None:
            return _usage_error(f"no readable record.json files under {args.baseline!r}")
        code = gate or code
    return code


if __name__ == "__main__":
    sys.exit(main())
