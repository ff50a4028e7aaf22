"""`python -m aggregate SWEEP_DIR [--baseline OLD_DIR] [--reference DIR] [--slo-tpot-ms MS ...]`: rebuild a
sweep's outputs (results, report.md, report.html, plots; slo.csv with an SLO).
`python -m aggregate store SWEEP_DIR... [--db PATH]` and `python -m aggregate history ...`:
the results store (aggregate/store/cli.py, its own exit codes).

Exit codes: 0 every cell ok; 1 a cell not ok or a record unreadable; 2 usage error (also:
--baseline ran on other hardware, without --allow-env-diff); 3 a regression against
--baseline, or cells of the baseline missing from the new sweep, or (fleet runs) a card
slower than the same card in the baseline (docs/fleet.md); 4 --baseline compared
nothing (no cell matched). 3 and 4 are checked last and win over 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aggregate.answers.slo import Slo, SloError
from aggregate.baseline import envdiff
from aggregate.baseline.compare import OLD_ONLY, compare, compare_markdown
from aggregate.fleet.baseline import slower_cards, slower_lines
from aggregate.leftovers import remove_stale_partial
from aggregate.outputs import write_answered
from aggregate.reader import read_records
from aggregate.render.slo import slo_lines
from aggregate.render.summary import summary_table
from aggregate.store import SUBCOMMANDS, default_db
from jobs.files import atomic_write_text
from jobs.values import finite_float

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
        "4 --baseline compared nothing. The results store: `python -m aggregate store "
        "SWEEP_DIR... [--db PATH]`, `python -m aggregate history [--db PATH]` (each --help).",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="directory searched for record.json")
    p.add_argument("--baseline", metavar="OLD_DIR", help="compare cell by cell with this sweep")
    p.add_argument(
        "--reference",
        metavar="DIR",
        help="take the output-agreement reference cells from this sweep (default: SWEEP_DIR's "
        "own hf float32 cells; docs/quality.md)",
    )
    p.add_argument(
        "--threshold",
        type=finite_float,
        default=5.0,
        metavar="PCT",
        help="smallest change in %% that counts as a regression (default 5; the cells' own "
        "noise, 2 x max(E2E CV), widens it)",
    )
    p.add_argument(
        "--allow-env-diff",
        action="store_true",
        help="compare with --baseline even when it ran on another device (software version "
        "differences only warn)",
    )
    for name, what in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E latency")):
        p.add_argument(
            f"--slo-{name}-ms",
            type=finite_float,
            metavar="MS",
            help=f"SLO: budget on the p99 {what} in ms; the report answers, per group and "
            "seq, the largest batch (serving: load) meeting every budget given (+ slo.csv)",
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


def _baseline(args: argparse.Namespace, records: list, old: list, old_unreadable: list) -> int:
    """Compare with --baseline: write compare.md; the exit code it asks for (0 when the gate
    passes)."""
    for path, reason in old_unreadable:
        print(f"baseline record unreadable, not compared: {path}: {reason}", file=sys.stderr)
    diffs = envdiff.environment_diff(records, old)
    for d in diffs:
        print(f"warning: environments differ: {d.text()}", file=sys.stderr)
    rows, n_regressions = compare(records, old, args.threshold)
    text = compare_markdown(rows, envdiff.markdown_lines(diffs, args.allow_env_diff))
    slower = slower_cards(records, old, args.threshold)  # fleet runs: each card with itself
    text += "\n" + "\n".join(slower_lines(slower)) if slower else ""
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
    for c in slower:
        r = c.row
        print(f"  slower card: node {c.node} card {c.card} ({c.serial or 'no serial'}): "
              f"{r.label} batch {r.batch} seq {r.seq} {r.tokens_per_s_delta_pct:+.1f}% tok/s")  # fmt: skip
    if not matched:
        print(
            f"error: no cell of {args.sweep_dir} matches a cell of {args.baseline}: "
            "the comparison checked nothing",
            file=sys.stderr,
        )
        return EXIT_NOTHING_COMPARED
    return EXIT_REGRESSION if n_regressions or gone or slower else EXIT_OK


def _refused_baseline(args: argparse.Namespace, records: list, old: list) -> str | None:
    """Why --baseline cannot be compared; None when it can."""
    if not old:
        return f"no readable record.json files under {args.baseline!r}"
    refused = envdiff.refused(envdiff.environment_diff(records, old))
    if not refused or args.allow_env_diff:
        return None
    what = "; ".join(d.text() for d in refused)
    return (
        f"--baseline {args.baseline!r} ran on other hardware ({what}); "
        "pass --allow-env-diff to compare anyway"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:  # `store DIR...` / `history`: the results store
        from aggregate.store.cli import main as store_main  # duckdb only when asked for

        return store_main(argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    problem = _check_dir(args.sweep_dir, "sweep directory")
    if args.baseline is not None:
        problem = problem or _check_dir(args.baseline, "baseline directory")
    if args.reference is not None:
        problem = problem or _check_dir(args.reference, "reference directory")
    if problem:
        return _usage_error(problem)
    if args.threshold < 0:
        return _usage_error(f"--threshold {args.threshold:g} must be >= 0")
    try:
        slo = Slo(ttft_ms=args.slo_ttft_ms, tpot_ms=args.slo_tpot_ms, e2e_ms=args.slo_e2e_ms)
    except SloError as exc:
        return _usage_error(str(exc).replace("slo.", "--slo-").replace("_ms=", "-ms="))

    remove_stale_partial(args.sweep_dir)  # left by a sweep that was killed
    records, unreadable = read_records(args.sweep_dir)
    if not records and not unreadable:
        return _usage_error(f"no record.json files under {args.sweep_dir!r}")
    old, old_unreadable = read_records(args.baseline) if args.baseline else ([], [])
    reference = read_records(args.reference)[0] if args.reference else []
    if args.reference and not reference:
        return _usage_error(f"no readable record.json files under --reference {args.reference!r}")
    if args.baseline is not None:
        problem = _refused_baseline(args, records, old)
        if problem:
            return _usage_error(problem)
    written, answers = write_answered(
        args.sweep_dir,
        records,
        unreadable,
        plots=not args.no_plots,
        jsonl=True,
        given=slo,
        reference=reference,
        trend_db=default_db(args.sweep_dir),  # the trend panel, when that store exists
    )
    not_ok = [r for r in records if r.get("status") != "ok"]
    if not args.quiet:
        print(summary_table(records))
        for path, reason in unreadable:
            print(f"UNREADABLE {path}: {reason}")
        print(f"\n{len(records)} cells, {len(not_ok)} not ok, {len(unreadable)} unreadable")
        print(f"wrote {written['report.md']} (+ {len(written) - 1} files)")
        if "slo.csv" in written:
            # the SLO judged: the one given, else the one the cells ran with
            print(f"\nSLO {answers.slo.text()}:")
            print("\n".join(slo_lines(answers)))
            print(f"-> {written['slo.csv']}")
    code = EXIT_NOT_OK if not_ok or unreadable else EXIT_OK

    if args.baseline is not None:
        code = _baseline(args, records, old, old_unreadable) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
